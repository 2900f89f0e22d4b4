// The CUDA backend on a device: ops::matmul / matmul_bwd against the CPU reference for every
// layout, batch form and ragged shape, on both GEMM backends; the cuBLASLt baseline's bias and
// residual epilogues; streams, guards and events; stream-ordered reuse of allocator blocks.
//
// Most products use small-integer inputs: bf16 holds them exactly and their products sum
// exactly in fp32 in any order, so the device must equal the f64 reference (rounded to the
// output dtype) bit for bit, whichever tiles or split the GEMM picks.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <thread>

#include "core/caching_allocator.h"
#include "cuda/gemm_backend.h"
#include "hone/tensor.h"
#include "support/device_tag.h"
#include "ops/ops.h"
#include "support/random.h"
#include "support/tolerance.h"

#ifdef HONE_WITH_CUDA
#include "cuda/blas.h"
#include "cuda/context.h"
#endif

using namespace hone;
using Catch::Matchers::Contains;

namespace {

const Device kGpu = Device::cuda(0);

// Integers in [-3, 3] as an f64 host tensor.
Tensor int_tensor(const Shape& shape, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(-3, 3);
  std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)));
  for (double& x : v) x = dist(rng);
  return Tensor::from_vector<double>(shape, v);
}

// A device tensor of `dtype` holding the host tensor's values.
Tensor on_gpu(const Tensor& host, DType dtype) { return host.to(dtype).to(kGpu); }

Tensor nan_gpu(const Shape& shape, DType dtype) {
  return Tensor::full(shape, std::numeric_limits<double>::quiet_NaN(), dtype).to(kGpu);
}

// The f64 reference rounded to `dtype`, back in f64.
Tensor rounded(const Tensor& ref, DType dtype) { return ref.to(dtype).to(DType::f64); }

Shape operand_shape(bool batched, std::int64_t batch, std::int64_t rows, std::int64_t cols) {
  return batched ? Shape{batch, rows, cols} : Shape{rows, cols};
}

struct Case {
  std::int64_t m, n, k;
};
const std::vector<Case> kShapes = {{1, 1, 1}, {31, 33, 129}, {128, 127, 32}, {129, 1, 33},
                                   {1, 129, 127}, {33, 32, 31}};

// The backends this build can run: cublas, plus hone when its kernel is compiled in.
std::vector<ops::GemmBackend> backends() {
  std::vector<ops::GemmBackend> b = {ops::GemmBackend::cublas};
  if (ops::gemm_backend_available(ops::GemmBackend::hone)) b.push_back(ops::GemmBackend::hone);
  return b;
}

std::string label(ops::GemmBackend be, const Case& s, bool ta, bool tb, int form, DType out) {
  return cat(ops::gemm_backend_name(be), " m=", s.m, " n=", s.n, " k=", s.k, " trans_a=", ta,
             " trans_b=", tb, " batch form ", form, " out ", dtype_name(out));
}

}  // namespace

TEST_CASE("matmul on cuda equals the CPU reference for every layout and batch form", HONE_DEVICE_TAG) {
  const std::int64_t batch = 3;
  for (ops::GemmBackend be : backends()) {
    ops::set_gemm_backend(be);
    for (const Case& s : kShapes)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (int form = 0; form < 4; ++form)  // 0: 2-D, 1: a batched, 2: b batched, 3: both
            for (DType out : {DType::f32, DType::bf16}) {
              const bool ab = form == 1 || form == 3, bb = form == 2 || form == 3;
              const Tensor a = int_tensor(operand_shape(ab, batch, ta ? s.k : s.m, ta ? s.m : s.k), 1);
              const Tensor b = int_tensor(operand_shape(bb, batch, tb ? s.n : s.k, tb ? s.k : s.n), 2);
              const Shape cs = form == 0 ? Shape{s.m, s.n} : Shape{batch, s.m, s.n};
              ops::MatmulArgs args;
              args.trans_a = ta;
              args.trans_b = tb;
              INFO(label(be, s, ta, tb, form, out));
              // beta = 0 on a NaN-filled output, then alpha/beta on prior contents.
              const Tensor ref0 = Tensor::empty(cs, DType::f64);
              ops::matmul(a, b, ref0, args);
              const Tensor c0 = nan_gpu(cs, out);
              ops::matmul(on_gpu(a, DType::bf16), on_gpu(b, DType::bf16), c0, args);
              REQUIRE(test::compare(c0, rounded(ref0, out), {0.0, 0.0}) == "");

              args.alpha = 0.5;
              args.beta = -2.0;
              const Tensor prior = int_tensor(cs, 3);
              const Tensor ref1 = prior.clone();
              ops::matmul(a, b, ref1, args);
              const Tensor c1 = on_gpu(prior, out);
              ops::matmul(on_gpu(a, DType::bf16), on_gpu(b, DType::bf16), c1, args);
              REQUIRE(test::compare(c1, rounded(ref1, out), {0.0, 0.0}) == "");
            }
  }
  ops::set_gemm_backend(ops::default_gemm_backend());
}

TEST_CASE("matmul_bwd on cuda accumulates the CPU reference gradients", HONE_DEVICE_TAG) {
  const std::int64_t batch = 3;
  for (ops::GemmBackend be : backends()) {
    ops::set_gemm_backend(be);
    for (const Case& s : kShapes)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (int form = 0; form < 4; ++form)
            for (DType out : {DType::f32, DType::bf16}) {
              const bool ab = form == 1 || form == 3, bb = form == 2 || form == 3;
              const Shape as = operand_shape(ab, batch, ta ? s.k : s.m, ta ? s.m : s.k);
              const Shape bs = operand_shape(bb, batch, tb ? s.n : s.k, tb ? s.k : s.n);
              const Shape cs = form == 0 ? Shape{s.m, s.n} : Shape{batch, s.m, s.n};
              const Tensor a = int_tensor(as, 4), b = int_tensor(bs, 5), dc = int_tensor(cs, 6);
              const Tensor da0 = int_tensor(as, 7), db0 = int_tensor(bs, 8);
              ops::MatmulArgs args;
              args.trans_a = ta;
              args.trans_b = tb;
              args.alpha = 0.5;
              INFO(label(be, s, ta, tb, form, out));
              const Tensor da_ref = da0.clone(), db_ref = db0.clone();
              ops::matmul_bwd(a, b, dc, da_ref, db_ref, args);
              const Tensor da = on_gpu(da0, out), db = on_gpu(db0, out);
              ops::matmul_bwd(on_gpu(a, DType::bf16), on_gpu(b, DType::bf16),
                              on_gpu(dc, DType::bf16), da, db, args);
              REQUIRE(test::compare(da, rounded(da_ref, out), {0.0, 0.0}) == "");
              REQUIRE(test::compare(db, rounded(db_ref, out), {0.0, 0.0}) == "");
            }
  }
  ops::set_gemm_backend(ops::default_gemm_backend());
}

TEST_CASE("matmul on cuda with random bf16 and f32 inputs is within tolerance", HONE_DEVICE_TAG) {
  for (ops::GemmBackend be : backends()) {
    ops::set_gemm_backend(be);
    for (const Case& s : std::vector<Case>{{257, 129, 511}, {64, 1024, 256}, {1, 4096, 384}}) {
      INFO(cat(ops::gemm_backend_name(be), " m=", s.m, " n=", s.n, " k=", s.k));
      // Inputs rounded to bf16 first, so the reference sees the device's operands.
      const Tensor a = test::random_tensor({s.m, s.k}, DType::bf16, 11).to(DType::f64);
      const Tensor b = test::random_tensor({s.n, s.k}, DType::bf16, 12).to(DType::f64);
      ops::MatmulArgs args;
      args.trans_b = true;  // the linear-layer forward y = x·Wᵀ
      const Tensor ref = Tensor::empty({s.m, s.n}, DType::f64);
      ops::matmul(a, b, ref, args);
      const Tensor c = nan_gpu({s.m, s.n}, DType::f32);
      ops::matmul(on_gpu(a, DType::bf16), on_gpu(b, DType::bf16), c, args);
      CHECK(test::compare(c, ref, {1e-4, 1e-4}) == "");
      // f32 on cuda: cuBLASLt in fp32 (no TF32), whatever the backend.
      const Tensor c32 = nan_gpu({s.m, s.n}, DType::f32);
      const Tensor a32 = test::random_tensor({s.m, s.k}, DType::f32, 13);
      const Tensor b32 = test::random_tensor({s.n, s.k}, DType::f32, 14);
      const Tensor ref32 = Tensor::empty({s.m, s.n}, DType::f64);
      ops::matmul(a32.to(DType::f64), b32.to(DType::f64), ref32, args);
      ops::matmul(a32.to(kGpu), b32.to(kGpu), c32, args);
      CHECK(test::compare(c32, ref32, {1e-5, 1e-5}) == "");
    }
  }
  ops::set_gemm_backend(ops::default_gemm_backend());
}

TEST_CASE("hone's GEMM kernel agrees with cuBLAS", HONE_DEVICE_TAG) {
  if (!ops::gemm_backend_available(ops::GemmBackend::hone)) {
    // Without the kernel only the baseline runs, and selecting hone says why.
    CHECK_THROWS_WITH(ops::set_gemm_backend(ops::GemmBackend::hone),
                      Contains("kernels/gemm is not compiled in"));
    CHECK(ops::default_gemm_backend() == ops::GemmBackend::cublas);
    return;
  }
  for (const Case& s : std::vector<Case>{{1024, 1024, 1024}, {8, 4096, 4096}, {1000, 333, 777}}) {
    INFO(cat("m=", s.m, " n=", s.n, " k=", s.k));
    const Tensor a = on_gpu(test::random_tensor({s.m, s.k}, DType::f32, 21), DType::bf16);
    const Tensor b = on_gpu(test::random_tensor({s.n, s.k}, DType::f32, 22), DType::bf16);
    ops::MatmulArgs args;
    args.trans_b = true;
    Tensor out[2];
    int i = 0;
    for (ops::GemmBackend be : {ops::GemmBackend::hone, ops::GemmBackend::cublas}) {
      ops::set_gemm_backend(be);
      out[i] = nan_gpu({s.m, s.n}, DType::f32);
      ops::matmul(a, b, out[i++], args);
    }
    CHECK(test::compare(out[0], out[1], {1e-3, 1e-3}) == "");
  }
  ops::set_gemm_backend(ops::default_gemm_backend());
}

TEST_CASE("matmul on cuda rejects dtypes and devices it cannot run", HONE_DEVICE_TAG) {
  const Tensor a64 = Tensor::zeros({4, 4}, DType::f64, kGpu);
  CHECK_THROWS_WITH(ops::matmul(a64, a64, Tensor::zeros({4, 4}, DType::f64, kGpu)),
                    Contains("[matmul] argument 'a' has dtype f64; expected bf16 or f32 on cuda:0"));
  const Tensor a32 = Tensor::zeros({4, 4}, DType::f32, kGpu);
  CHECK_THROWS_WITH(ops::matmul(a32, a32, Tensor::zeros({4, 4}, DType::bf16, kGpu)),
                    Contains("argument 'c' has dtype bf16; expected f32 for f32 inputs"));
  CHECK_THROWS_WITH(ops::matmul(a32, a32, Tensor::zeros({4, 4}, DType::f32)),
                    Contains("argument 'c' is on cpu but a is on cuda:0"));
  const Tensor bf = Tensor::zeros({4, 4}, DType::bf16, kGpu);
  CHECK_THROWS_WITH(ops::matmul_bwd(bf, bf, bf, Tensor::zeros({4, 4}, DType::f64, kGpu), Tensor{}),
                    Contains("argument 'da' has dtype f64; expected bf16 or f32"));
  CHECK_THROWS_WITH(ops::matmul(bf, Tensor::zeros({5, 4}, DType::bf16, kGpu),
                                Tensor::zeros({4, 4}, DType::bf16, kGpu)),
                    Contains("inner dimension K' = 5; expected K = 4"));
}

#ifdef HONE_WITH_CUDA

TEST_CASE("the cuBLASLt baseline applies bias and residual like GemmParams says", HONE_DEVICE_TAG) {
  using kernels::GemmType;
  const std::int64_t m = 33, n = 65, k = 31, batch = 2;
  const Tensor a = int_tensor({batch, m, k}, 31), b = int_tensor({k, n}, 32);
  const Tensor bias = int_tensor({n}, 33), res = int_tensor({batch, m, n}, 34);
  const Tensor prior = int_tensor({batch, m, n}, 35);
  // C = alpha·A·B + beta·C + bias + residual, per entry, on the host in f64.
  auto reference = [&](float alpha, float beta, std::int64_t kk) {
    std::vector<double> r = prior.to_vector<double>();
    const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
    const auto biv = bias.to_vector<double>(), rv = res.to_vector<double>();
    for (std::int64_t e = 0; e < batch; ++e)
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (std::int64_t p = 0; p < kk; ++p) acc += av[(e * m + i) * k + p] * bv[p * n + j];
          double& c = r[(e * m + i) * n + j];
          c = alpha * acc + (beta == 0 ? 0.0 : beta * c) + biv[j] + rv[(e * m + i) * n + j];
        }
    return Tensor::from_vector<double>({batch, m, n}, r);
  };
  for (DType out : {DType::f32, DType::bf16})
    for (DType extra : {DType::f32, DType::bf16})  // bias/residual type: fused when equal to C's
      for (float beta : {0.0f, 1.5f})
        for (std::int64_t kk : {k, std::int64_t{0}}) {
          INFO(cat("out ", dtype_name(out), " bias/residual ", dtype_name(extra), " beta ", beta,
                   " k ", kk));
          const Tensor da = on_gpu(a, DType::bf16), db = on_gpu(b, DType::bf16);
          const Tensor dbias = on_gpu(bias, extra), dres = on_gpu(res, extra);
          const Tensor c = beta == 0 ? nan_gpu({batch, m, n}, out) : on_gpu(prior, out);
          kernels::GemmParams p;
          p.m = m, p.n = n, p.k = kk;
          p.a = da.raw(), p.lda = k, p.stride_a = m * k;
          p.b = db.raw(), p.ldb = n, p.stride_b = 0;  // shared B: entry by entry
          p.c = c.raw(), p.ldc = n, p.stride_c = m * n;
          p.c_type = out == DType::f32 ? GemmType::f32 : GemmType::bf16;
          p.alpha = 0.5f, p.beta = beta;
          p.bias = dbias.raw(), p.bias_type = extra == DType::f32 ? GemmType::f32 : GemmType::bf16;
          p.residual = dres.raw(), p.ldr = n, p.stride_r = m * n, p.residual_type = p.bias_type;
          p.batch = batch;
          cuda::blas_gemm(p, cuda::current_stream(0));
          // Exact in fp32. A bf16 C finished by the separate pass rounds twice (the GEMM's
          // |alpha·A·B + beta·C| < 256 here: at most half a unit, then half an ulp of the sum).
          const Tensor ref = reference(0.5f, beta, kk);
          if (out == DType::f32)
            CHECK(test::compare(c, ref, {0.0, 0.0}) == "");
          else
            CHECK(test::compare(c, rounded(ref, out), {1.0, 1.0 / 128}) == "");
        }
}

TEST_CASE("blas_gemm names the bad field", HONE_DEVICE_TAG) {
  kernels::GemmParams p;
  p.m = 4, p.n = 4, p.k = 4, p.lda = 2, p.ldb = 4, p.ldc = 4;
  CHECK_THROWS_WITH(cuda::check_gemm_params(p), Contains("lda = 2; expected at least 4"));
  p.lda = 4;
  p.batch = 0;
  CHECK_THROWS_WITH(cuda::check_gemm_params(p), Contains("batch = 0"));
  p.batch = 1;
  CHECK_THROWS_WITH(cuda::check_gemm_params(p), Contains("c is null"));
  p.c_type = kernels::GemmType::bf16;
  CHECK_THROWS_WITH(cuda::check_gemm_params(p, kernels::GemmType::f32),
                    Contains("c_type = bf16 with f32 A and B"));
}

TEST_CASE("devices and streams: guards nest, restore and stay per thread", HONE_DEVICE_TAG) {
  cuda::set_device(0);
  CHECK(cuda::current_device() == 0);
  CHECK_THROWS_WITH(cuda::set_device(cuda_device_count()),
                    Contains(cat("device ", cuda_device_count(), " does not exist")));
  {
    cuda::DeviceGuard guard(0);
    CHECK(cuda::current_device() == 0);
  }
  const cudaStream_t main = cuda::main_stream(0);
  CHECK(main != nullptr);
  CHECK(cuda::current_stream() == main);
  cuda::Stream s1(0), s2(0);
  {
    cuda::StreamGuard g1(s1.get());
    CHECK(cuda::current_stream() == s1.get());
    {
      cuda::StreamGuard g2(s2.get(), 0);
      CHECK(cuda::current_stream(0) == s2.get());
    }
    CHECK(cuda::current_stream() == s1.get());
    cudaStream_t seen = nullptr;
    std::thread other([&] { seen = cuda::current_stream(0); });
    other.join();
    CHECK(seen == main);  // guards belong to the thread that made them
  }
  CHECK(cuda::current_stream() == main);
}

TEST_CASE("ops run on the guarded stream, ordered by events", HONE_DEVICE_TAG) {
  const std::int64_t n = 512;
  const Tensor a = int_tensor({n, n}, 41), b = int_tensor({n, n}, 42);
  const Tensor ref = Tensor::empty({n, n}, DType::f64);
  ops::matmul(a, b, ref);
  const Tensor ref2 = Tensor::empty({n, n}, DType::f64);
  ops::matmul(ref.to(DType::bf16).to(DType::f64), b, ref2);

  const Tensor da = on_gpu(a, DType::bf16), db = on_gpu(b, DType::bf16);
  const Tensor c = nan_gpu({n, n}, DType::bf16), c2 = nan_gpu({n, n}, DType::bf16);
  cuda::Stream side(0);
  cuda::Event start, done;
  {
    cuda::StreamGuard guard(side.get());
    start.record(side.get());
    ops::matmul(da, db, c);  // on the side stream
    done.record(side.get());
  }
  done.wait(cuda::main_stream(0));  // the main stream's next op sees c complete
  ops::matmul(c, db, c2);
  done.synchronize();
  CHECK(start.elapsed_ms(done) > 0.0f);
  CHECK(test::compare(c2, rounded(ref2, DType::bf16), {0.0, 0.0}) == "");

  // uniform_ follows the current stream too.
  const Tensor host = Tensor::empty({1000}, DType::f32);
  const Tensor dev = Tensor::empty({1000}, DType::f32, kGpu);
  ops::uniform_(host, 7, 3);
  {
    cuda::StreamGuard guard(side.get());
    ops::uniform_(dev, 7, 3);
    side.synchronize();
  }
  CHECK(dev.to_vector<float>() == host.to_vector<float>());
}

TEST_CASE("a block freed and reused at once is safe on the ops stream", HONE_DEVICE_TAG) {
  // The allocator is not stream-aware: a block handed back while a kernel may still write it
  // is handed out again at once. On one stream the next user's kernels queue behind, so the
  // second product must win. (An odd width gives the block a size no other test leaves.)
  const std::int64_t n = 512, w = 509;
  const Tensor a1 = int_tensor({n, n}, 51), a2 = int_tensor({n, n}, 52), b = int_tensor({n, w}, 53);
  const Tensor ref = Tensor::empty({n, w}, DType::f64);
  ops::matmul(a2, b, ref);
  const Tensor g1 = on_gpu(a1, DType::bf16), g2 = on_gpu(a2, DType::bf16), gb = on_gpu(b, DType::bf16);
  void* first = nullptr;
  {
    const Tensor c = Tensor::empty({n, w}, DType::f32, kGpu);
    first = c.raw();
    ops::matmul(g1, gb, c);  // still queued when c is released
  }
  const std::size_t hits = cuda_allocator(0).stats().cache_hits;
  const Tensor c2 = Tensor::empty({n, w}, DType::f32, kGpu);
  CHECK(c2.raw() == first);
  CHECK(cuda_allocator(0).stats().cache_hits == hits + 1);
  ops::matmul(g2, gb, c2);
  CHECK(test::compare(c2, ref, {0.0, 0.0}) == "");
}

#endif  // HONE_WITH_CUDA

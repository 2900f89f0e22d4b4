// The parts of the CUDA backend that need no device: the GEMMs that ops::matmul / matmul_bwd
// become on CUDA (executed here by a host GEMM with GemmParams' semantics), GEMM backend
// selection (names, HONE_GEMM, availability per build), CUDA tensors where no device is
// visible, and benchmarks/gpu_check.sh on a machine without a GPU.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

#include <random>

#include "cuda/gemm_backend.h"
#include "cuda/matmul_plan.h"
#include "cuda/runtime.h"
#include "hone/tensor.h"
#include "ops/ops.h"

using namespace hone;
using Catch::Matchers::Contains;
using ops::GemmBackend;

namespace {

// GemmParams executed on the host over f64 data (strides and leading dimensions in elements),
// as kernels/gemm/gemm.h defines it; a shared output (stride_c = 0) sums the entries in order.
void host_gemm(const kernels::GemmParams& p) {
  for (std::int64_t e = 0; e < p.batch; ++e) {
    const double* a = static_cast<const double*>(p.a) + e * p.stride_a;
    const double* b = static_cast<const double*>(p.b) + e * p.stride_b;
    double* c = static_cast<double*>(p.c) + e * p.stride_c;
    const double beta = p.stride_c == 0 && e > 0 ? 1.0 : p.beta;
    for (std::int64_t i = 0; i < p.m; ++i)
      for (std::int64_t j = 0; j < p.n; ++j) {
        double acc = 0;
        for (std::int64_t l = 0; l < p.k; ++l)
          acc += (p.a_trans ? a[l * p.lda + i] : a[i * p.lda + l]) *
                 (p.b_trans ? b[j * p.ldb + l] : b[l * p.ldb + j]);
        double& out = c[i * p.ldc + j];
        out = p.alpha * acc + (beta == 0 ? 0.0 : beta * out);
      }
  }
}

Tensor ints(const Shape& shape, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(-3, 3);
  std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)));
  for (double& x : v) x = dist(rng);
  return Tensor::from_vector<double>(shape, v);
}

}  // namespace

TEST_CASE("the CUDA GEMM plan of matmul and matmul_bwd equals the CPU reference", "[cpu]") {
  // Every layout and batch form (0: 2-D, 1: a batched, 2: b batched, 3: both) on ragged sizes;
  // small integers, so equality is exact.
  const std::int64_t batch = 3;
  for (const auto& [m, n, k] : std::vector<std::array<std::int64_t, 3>>{{1, 1, 1}, {5, 7, 3}, {33, 2, 31}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (int form = 0; form < 4; ++form) {
          const bool ab = form == 1 || form == 3, bb = form == 2 || form == 3;
          INFO("m=" << m << " n=" << n << " k=" << k << " trans_a=" << ta << " trans_b=" << tb
                    << " form " << form);
          auto shape = [&](bool batched, std::int64_t r, std::int64_t c) {
            return batched ? Shape{batch, r, c} : Shape{r, c};
          };
          const Tensor a = ints(shape(ab, ta ? k : m, ta ? m : k), 1);
          const Tensor b = ints(shape(bb, tb ? n : k, tb ? k : n), 2);
          const Shape cs = form == 0 ? Shape{m, n} : Shape{batch, m, n};
          cpu::MatmulDims d;
          d.batch = form == 0 ? 1 : batch;
          d.m = m, d.n = n, d.k = k;
          d.a_batched = ab, d.b_batched = bb, d.trans_a = ta, d.trans_b = tb;
          ops::MatmulArgs args;
          args.trans_a = ta, args.trans_b = tb, args.alpha = 0.5, args.beta = -2.0;

          const Tensor ref = ints(cs, 3), got = ref.clone();
          ops::matmul(a, b, ref, args);
          host_gemm(cuda::matmul_plan(d, a.raw(), b.raw(), got.raw(), kernels::GemmType::f32,
                                      args.alpha, args.beta));
          REQUIRE(got.to_vector<double>() == ref.to_vector<double>());

          const Tensor dc = ints(cs, 4);
          const Tensor da_ref = ints(a.shape(), 5), db_ref = ints(b.shape(), 6);
          const Tensor da = da_ref.clone(), db = db_ref.clone();
          ops::matmul_bwd(a, b, dc, da_ref, db_ref, args);
          const auto plan = cuda::matmul_bwd_plan(d, a.raw(), b.raw(), dc.raw(), da.raw(),
                                                  kernels::GemmType::f32, db.raw(),
                                                  kernels::GemmType::f32, args.alpha);
          REQUIRE(plan.size() == 2);
          for (const auto& p : plan) host_gemm(p);
          REQUIRE(da.to_vector<double>() == da_ref.to_vector<double>());
          REQUIRE(db.to_vector<double>() == db_ref.to_vector<double>());
          // Overwriting instead of accumulating: the old values (NaN here) are never read.
          const Tensor da_new = Tensor::full(a.shape(), NAN, a.dtype());
          const Tensor db_new = Tensor::full(b.shape(), NAN, b.dtype());
          const Tensor da_w = Tensor::full(a.shape(), NAN, a.dtype());
          const Tensor db_w = Tensor::full(b.shape(), NAN, b.dtype());
          ops::matmul_bwd(a, b, dc, da_new, db_new, args, {false, false});
          for (const auto& p : cuda::matmul_bwd_plan(d, a.raw(), b.raw(), dc.raw(), da_w.raw(),
                                                     kernels::GemmType::f32, db_w.raw(),
                                                     kernels::GemmType::f32, args.alpha, 0.0, 0.0))
            host_gemm(p);
          REQUIRE(da_w.to_vector<double>() == da_new.to_vector<double>());
          REQUIRE(db_w.to_vector<double>() == db_new.to_vector<double>());
          // Undefined gradients are left out of the plan.
          CHECK(cuda::matmul_bwd_plan(d, a.raw(), b.raw(), dc.raw(), nullptr, kernels::GemmType::f32,
                                      db.raw(), kernels::GemmType::f32, 1.0).size() == 1);
        }
}

TEST_CASE("GEMM backend names parse both ways and unknown names are rejected", "[cpu]") {
  CHECK(ops::parse_gemm_backend("hone") == GemmBackend::hone);
  CHECK(ops::parse_gemm_backend("cublas") == GemmBackend::cublas);
  CHECK(ops::gemm_backend_name(GemmBackend::hone) == "hone");
  CHECK(ops::gemm_backend_name(GemmBackend::cublas) == "cublas");
  CHECK_THROWS_WITH(ops::parse_gemm_backend("cuBLAS"),
                    Contains("[gemm] unknown GEMM backend 'cuBLAS' (expected hone or cublas)"));
}

TEST_CASE("HONE_GEMM: unset or empty means the default, bad values name the variable", "[cpu]") {
  CHECK(ops::gemm_backend_from_env(nullptr) == ops::default_gemm_backend());
  CHECK(ops::gemm_backend_from_env("") == ops::default_gemm_backend());
  CHECK_THROWS_WITH(ops::gemm_backend_from_env("fast"),
                    Contains("HONE_GEMM='fast' is not a GEMM backend (expected hone or cublas)"));
  for (GemmBackend b : {GemmBackend::hone, GemmBackend::cublas}) {
    const std::string name(ops::gemm_backend_name(b));
    if (ops::gemm_backend_available(b))
      CHECK(ops::gemm_backend_from_env(name.c_str()) == b);
    else
      CHECK_THROWS_WITH(ops::gemm_backend_from_env(name.c_str()),
                        Contains("HONE_GEMM='" + name + "' asks for a backend this build lacks"));
  }
}

TEST_CASE("backend availability follows the build", "[cpu]") {
  // The default is hone exactly when its kernel is compiled in.
  const bool hone = ops::gemm_backend_available(GemmBackend::hone);
  CHECK(ops::default_gemm_backend() == (hone ? GemmBackend::hone : GemmBackend::cublas));
  if (!cuda::built_with_cuda()) {
    CHECK_FALSE(hone);
    CHECK_FALSE(ops::gemm_backend_available(GemmBackend::cublas));
    CHECK_THROWS_WITH(ops::set_gemm_backend(GemmBackend::cublas),
                      Contains("GEMM backend 'cublas' is not available in this build (built without CUDA)"));
  } else {
    CHECK(ops::gemm_backend_available(GemmBackend::cublas));
    ops::set_gemm_backend(GemmBackend::cublas);  // explicit choice: HONE_GEMM is not consulted
    CHECK(ops::gemm_backend() == GemmBackend::cublas);
    if (hone) {
      ops::set_gemm_backend(GemmBackend::hone);
      CHECK(ops::gemm_backend() == GemmBackend::hone);
    } else {
      CHECK_THROWS_WITH(ops::set_gemm_backend(GemmBackend::hone),
                        Contains("kernels/gemm is not compiled in"));
      CHECK(ops::gemm_backend() == GemmBackend::cublas);  // a refused choice changes nothing
    }
  }
}

TEST_CASE("CUDA tensors without a visible device fail with a clear error", "[cpu]") {
  if (cuda_device_count() > 0) {
    // On a GPU machine the [gpu] tests cover the device; here the host path still holds.
    CHECK(Tensor::zeros({2}, DType::f32, Device::cuda(0)).to_vector<float>() ==
          std::vector<float>{0.0f, 0.0f});
    return;
  }
  CHECK_THROWS_WITH(Tensor::empty({4, 4}, DType::bf16, Device::cuda(0)),
                    Contains("CUDA device 0 does not exist (0 devices visible"));
  if (!cuda::built_with_cuda())
    CHECK_THROWS_WITH(Tensor::empty({1}, DType::f32, Device::cuda(0)),
                      Contains("hone was built without CUDA"));
  // The CPU path of matmul keeps its own rules: bf16 host tensors are not computed there.
  const Tensor a = Tensor::zeros({2, 2}, DType::bf16);
  CHECK_THROWS_WITH(ops::matmul(a, a, Tensor::zeros({2, 2}, DType::bf16)),
                    Contains("[matmul] argument 'a' has dtype bf16; expected f32 or f64"));
}

namespace {

// Runs benchmarks/gpu_check.sh with `args` and the environment prefix `env`; returns the exit
// code and fills `out` with stdout and stderr.
int run_gpu_check(const std::string& env, const std::string& args, std::string& out) {
  const std::string script = std::string(HONE_TEST_DATA_DIR) + "/../../benchmarks/gpu_check.sh";
  const std::string command = env + " bash '" + script + "' " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf{};
  out.clear();
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) out += buf.data();
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("gpu_check.sh reports a missing device cleanly and checks its options", "[cpu]") {
  std::string out;
  // Forced no-device mode (also what a machine without nvidia-smi or a GPU gets): the skip
  // code 77, one clear line, nothing built or run.
  CHECK(run_gpu_check("HONE_GPU_CHECK_DEVICE=none", "--quick", out) == 77);
  CHECK_THAT(out, Contains("gpu_check: no device"));
  CHECK_THAT(out, !Contains("bench_gpu"));

  CHECK(run_gpu_check("", "--help", out) == 0);
  CHECK_THAT(out, Contains("--quick"));
  CHECK_THAT(out, Contains("--mode"));

  CHECK(run_gpu_check("", "--fast", out) == 2);
  CHECK_THAT(out, Contains("unknown option '--fast'"));
  CHECK(run_gpu_check("", "--mode nowhere", out) == 2);
  CHECK_THAT(out, Contains("--mode must be auto, prebuilt or source (got 'nowhere')"));
}

// The memory-bound ops on cuda:0 against the same ops on the CPU: norms, RoPE, activations,
// element-wise, embedding, cross-entropy, AdamW and the gradient norm, sampling. Inputs are bf16
// (or f32 where the kernels take it); the CPU runs the op in f32 on the same values. Ragged
// sizes, outputs poisoned with NaN, two runs bitwise identical, and the CUDA argument errors.
// Skipped without a device.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "hone/tensor.h"
#include "support/device_tag.h"
#include "ops/ops.h"
#include "support/random.h"
#include "support/tolerance.h"

#ifdef HONE_WITH_CUDA

using namespace hone;
using Catch::Matchers::Contains;

namespace {

const Device kGpu = Device::cuda(0);
// bf16 outputs: the f32 reference rounded to bf16, within tolerance.h's bf16 tolerance.
const test::Tolerance kBf16 = test::tolerance_for(DType::bf16);
// f32 per-row values (statistics, losses): the same fp32 math in another order.
const test::Tolerance kRow{5e-5, 5e-5};
// f32 sums over many rows (weight and bias gradients): another summation order.
const test::Tolerance kSum{1e-3, 1e-3};

Tensor gpu(const Tensor& host) { return host.to(kGpu); }
Tensor cpu_of(const Tensor& t) { return t.to(Device::cpu()); }
// A host f32 copy holding exactly the values of a bf16 (or f32) tensor on any device.
Tensor f32(const Tensor& t) { return cpu_of(t).to(DType::f32); }
Tensor poisoned_gpu(const Shape& s, DType dt) { return gpu(test::poisoned(s, dt)); }

std::vector<unsigned char> bytes(const Tensor& t) {
  const Tensor h = cpu_of(t);
  std::vector<unsigned char> b(h.nbytes());
  if (!b.empty()) std::memcpy(b.data(), h.raw(), b.size());
  return b;
}

// The bytes of several device tensors, for the bitwise comparison of two runs.
std::vector<unsigned char> all_bytes(const std::vector<Tensor>& ts) {
  std::vector<unsigned char> out;
  for (const Tensor& t : ts) {
    const auto b = bytes(t);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

// A device output against the f32 CPU reference rounded to the output's dtype.
std::string close(const Tensor& dev, const Tensor& ref_f32, test::Tolerance tol) {
  const Tensor a = cpu_of(dev);
  return test::compare(a, ref_f32.to(a.dtype()), tol);
}

}  // namespace

// ---------------------------------------------------------------- norms

namespace {

void norm_case(bool layer, std::int64_t rows, std::int64_t dim, DType grad_dtype,
               std::uint64_t seed) {
  INFO((layer ? "layernorm" : "rmsnorm") << " rows " << rows << " dim " << dim << " grads "
                                         << dtype_name(grad_dtype));
  const double eps = 1e-5;
  const Tensor x = test::random_tensor({rows, dim}, DType::bf16, seed + 1, -2, 2);
  const Tensor w = test::random_tensor({dim}, DType::bf16, seed + 2, 0.5, 1.5);
  const Tensor b = test::random_tensor({dim}, DType::bf16, seed + 3, -0.5, 0.5);
  const Tensor dy = test::random_tensor({rows, dim}, DType::bf16, seed + 4);
  const Tensor dw0 = test::random_tensor({dim}, grad_dtype, seed + 5);
  const Tensor db0 = test::random_tensor({dim}, grad_dtype, seed + 6);

  // CPU reference in f32 on the same values.
  const Tensor y32 = Tensor::empty({rows, dim}, DType::f32), dx32 = Tensor::empty({rows, dim}, DType::f32);
  const Tensor mean32 = Tensor::empty({rows}, DType::f32), rstd32 = Tensor::empty({rows}, DType::f32);
  const Tensor dw32 = f32(dw0), db32 = f32(db0);
  if (layer) {
    ops::layernorm_fwd(f32(x), f32(w), f32(b), eps, y32, mean32, rstd32);
    ops::layernorm_bwd(f32(dy), f32(x), f32(w), mean32, rstd32, dx32, dw32, db32);
  } else {
    ops::rmsnorm_fwd(f32(x), f32(w), eps, y32, rstd32);
    ops::rmsnorm_bwd(f32(dy), f32(x), f32(w), rstd32, dx32, dw32);
  }

  const Tensor xd = gpu(x), wd = gpu(w), bd = gpu(b), dyd = gpu(dy);
  auto run = [&] {
    const Tensor y = poisoned_gpu({rows, dim}, DType::bf16), dx = poisoned_gpu({rows, dim}, DType::bf16);
    const Tensor mean = poisoned_gpu({rows}, DType::f32), rstd = poisoned_gpu({rows}, DType::f32);
    const Tensor dw = gpu(dw0), db = gpu(db0);
    if (layer) {
      ops::layernorm_fwd(xd, wd, bd, eps, y, mean, rstd);
      ops::layernorm_bwd(dyd, xd, wd, mean, rstd, dx, dw, db);
      return std::vector<Tensor>{y, dx, mean, rstd, dw, db};
    }
    ops::rmsnorm_fwd(xd, wd, eps, y, rstd);
    ops::rmsnorm_bwd(dyd, xd, wd, rstd, dx, dw);
    return std::vector<Tensor>{y, dx, rstd, dw};
  };
  const std::vector<Tensor> r = run();
  CHECK(all_bytes(run()) == all_bytes(r));  // weight gradients included
  CHECK(close(r[0], y32, kBf16) == "");
  CHECK(close(r[1], dx32, kBf16) == "");
  const test::Tolerance grad_tol = grad_dtype == DType::f32 ? kSum : kBf16;
  if (layer) {
    CHECK(close(r[2], mean32, kRow) == "");
    CHECK(close(r[3], rstd32, kRow) == "");
    CHECK(close(r[4], dw32, grad_tol) == "");
    CHECK(close(r[5], db32, grad_tol) == "");
  } else {
    CHECK(close(r[2], rstd32, kRow) == "");
    CHECK(close(r[3], dw32, grad_tol) == "");
  }
}

}  // namespace

TEST_CASE("ops norms on cuda match the CPU ops", HONE_DEVICE_TAG) {
  std::uint64_t seed = 1000;
  for (bool layer : {false, true})
    for (std::int64_t rows : {std::int64_t{1}, std::int64_t{33}, std::int64_t{129},
                              std::int64_t{test::kEmulatedDevice ? 300 : 2048}})
      for (std::int64_t dim : {1, 31, 128, 129, 4096})
        for (DType g : {DType::f32, DType::bf16}) norm_case(layer, rows, dim, g, seed += 10);
}

TEST_CASE("ops norms on cuda skip undefined gradients and accept no rows", HONE_DEVICE_TAG) {
  const Tensor x = gpu(test::random_tensor({5, 64}, DType::bf16, 1));
  const Tensor w = gpu(test::random_tensor({64}, DType::bf16, 2, 0.5, 1.5));
  const Tensor y = poisoned_gpu({5, 64}, DType::bf16), rstd = poisoned_gpu({5}, DType::f32);
  ops::rmsnorm_fwd(x, w, 1e-6, y, rstd);
  const Tensor dx = poisoned_gpu({5, 64}, DType::bf16), dx_only = poisoned_gpu({5, 64}, DType::bf16);
  const Tensor dw = gpu(Tensor::zeros({64}, DType::f32));
  const Tensor dy = gpu(test::random_tensor({5, 64}, DType::bf16, 3));
  ops::rmsnorm_bwd(dy, x, w, rstd, dx, dw);
  ops::rmsnorm_bwd(dy, x, w, rstd, dx_only, Tensor{});
  CHECK(bytes(dx_only) == bytes(dx));
  const Tensor empty = gpu(Tensor::empty({0, 64}, DType::bf16));
  ops::rmsnorm_fwd(empty, w, 1e-6, empty, gpu(Tensor::empty({0}, DType::f32)));
}

// ---------------------------------------------------------------- RoPE

TEST_CASE("ops rope on cuda matches the CPU op, in place too", HONE_DEVICE_TAG) {
  ops::RopeArgs llama3;
  llama3.theta = 500000.0;
  llama3.scaling.kind = ops::RopeScaling::Kind::llama3;
  std::uint64_t seed = 2000;
  for (const ops::RopeArgs& args : {ops::RopeArgs{}, llama3})
    for (std::int64_t tokens : test::kRaggedSizes)
      for (std::int64_t heads : {1, 3})
        for (std::int64_t hd : {2, 34, 64, 128})
          for (DType pdt : {DType::i32, DType::i64}) {
            INFO("tokens " << tokens << " heads " << heads << " head_dim " << hd << " positions "
                           << dtype_name(pdt) << " theta " << args.theta);
            seed += 10;
            const Tensor x = test::random_tensor({tokens, heads, hd}, DType::bf16, seed, -2, 2);
            const Tensor dy = test::random_tensor({tokens, heads, hd}, DType::bf16, seed + 1);
            const Tensor pos = test::random_ids({tokens}, 8192, pdt, seed + 2);
            const Tensor y32 = Tensor::empty(x.shape(), DType::f32), dx32 = Tensor::empty(x.shape(), DType::f32);
            ops::rope_fwd(f32(x), pos, args, y32);
            ops::rope_bwd(f32(dy), pos, args, dx32);

            const Tensor xd = gpu(x), dyd = gpu(dy), posd = gpu(pos);
            auto run = [&] {
              const Tensor y = poisoned_gpu(x.shape(), DType::bf16), dx = poisoned_gpu(x.shape(), DType::bf16);
              ops::rope_fwd(xd, posd, args, y);
              ops::rope_bwd(dyd, posd, args, dx);
              return std::vector<Tensor>{y, dx};
            };
            const std::vector<Tensor> r = run();
            CHECK(all_bytes(run()) == all_bytes(r));
            CHECK(close(r[0], y32, kBf16) == "");
            CHECK(close(r[1], dx32, kBf16) == "");
            const Tensor inplace = xd.clone();
            ops::rope_fwd(inplace, posd, args, inplace);
            CHECK(bytes(inplace) == bytes(r[0]));
          }
}

// ---------------------------------------------------------------- activations

TEST_CASE("ops swiglu and gelu on cuda match the CPU ops", HONE_DEVICE_TAG) {
  std::vector<std::int64_t> sizes = test::kRaggedSizes;
  sizes.push_back(100003);
  for (std::int64_t n : sizes) {
    INFO("n " << n);
    const Tensor gate = test::random_tensor({n}, DType::bf16, 3000 + n, -6, 6);
    const Tensor up = test::random_tensor({n}, DType::bf16, 3001 + n, -2, 2);
    const Tensor dout = test::random_tensor({n}, DType::bf16, 3002 + n);
    const Tensor out32 = Tensor::empty({n}, DType::f32), dg32 = Tensor::empty({n}, DType::f32),
                 du32 = Tensor::empty({n}, DType::f32), y32 = Tensor::empty({n}, DType::f32),
                 dx32 = Tensor::empty({n}, DType::f32);
    ops::swiglu_fwd(f32(gate), f32(up), out32);
    ops::swiglu_bwd(f32(dout), f32(gate), f32(up), dg32, du32);
    ops::gelu_fwd(f32(gate), y32);
    ops::gelu_bwd(f32(dout), f32(gate), dx32);

    const Tensor gd = gpu(gate), ud = gpu(up), dd = gpu(dout);
    auto run = [&] {
      const Tensor out = poisoned_gpu({n}, DType::bf16), dg = poisoned_gpu({n}, DType::bf16),
                   du = poisoned_gpu({n}, DType::bf16), y = poisoned_gpu({n}, DType::bf16),
                   dx = poisoned_gpu({n}, DType::bf16);
      ops::swiglu_fwd(gd, ud, out);
      ops::swiglu_bwd(dd, gd, ud, dg, du);
      ops::gelu_fwd(gd, y);
      ops::gelu_bwd(dd, gd, dx);
      return std::vector<Tensor>{out, dg, du, y, dx};
    };
    const std::vector<Tensor> r = run();
    CHECK(all_bytes(run()) == all_bytes(r));
    CHECK(close(r[0], out32, kBf16) == "");
    CHECK(close(r[1], dg32, kBf16) == "");
    CHECK(close(r[2], du32, kBf16) == "");
    CHECK(close(r[3], y32, kBf16) == "");
    CHECK(close(r[4], dx32, kBf16) == "");
  }
}

// ---------------------------------------------------------------- element-wise

TEST_CASE("ops add_, scale_, bias_add_ and bias_bwd on cuda match the CPU ops", HONE_DEVICE_TAG) {
  for (DType dt : {DType::bf16, DType::f32}) {
    const test::Tolerance tol = test::tolerance_for(dt);
    for (std::int64_t rows : {1, 33, 129, 8192})
      for (std::int64_t features : {1, 31, 128, 4096}) {
        if (rows * features > (std::int64_t{1} << 24)) continue;
        INFO(dtype_name(dt) << " rows " << rows << " features " << features);
        const std::uint64_t seed = 4000 + rows * 7 + features;
        const Tensor x = test::random_tensor({rows, features}, dt, seed, -2, 2);
        const Tensor s = test::random_tensor({rows, features}, dt, seed + 1, -2, 2);
        const Tensor b = test::random_tensor({features}, dt, seed + 2);
        const Tensor db0 = test::random_tensor({features}, DType::f32, seed + 3);

        const Tensor add32 = f32(x), scale32 = f32(x), bias32 = f32(x), db32 = db0.clone();
        ops::add_(add32, f32(s), -0.5);
        ops::scale_(scale32, 3.0);
        ops::bias_add_(bias32, f32(b));
        ops::bias_bwd(f32(s), db32);

        const Tensor xd = gpu(x), sd = gpu(s), bd = gpu(b);
        auto run = [&] {
          const Tensor a = xd.clone(), c = xd.clone(), e = xd.clone(), db = gpu(db0);
          ops::add_(a, sd, -0.5);
          ops::scale_(c, 3.0);
          ops::bias_add_(e, bd);
          ops::bias_bwd(sd, db);
          return std::vector<Tensor>{a, c, e, db};
        };
        const std::vector<Tensor> r = run();
        CHECK(all_bytes(run()) == all_bytes(r));
        CHECK(close(r[0], add32, tol) == "");
        CHECK(close(r[1], scale32, tol) == "");
        CHECK(close(r[2], bias32, tol) == "");
        CHECK(close(r[3], db32, kSum) == "");
        if (dt == DType::bf16) {  // a bf16 bias gradient
          const Tensor dbh = gpu(db0.to(DType::bf16)), ref = f32(db0.to(DType::bf16));
          ops::bias_bwd(sd, dbh);
          ops::bias_bwd(f32(s), ref);
          CHECK(close(dbh, ref, kBf16) == "");
        }
      }
    // dst += alpha · dst on the device as on the host.
    const Tensor x = test::random_tensor({1000}, dt, 4999);
    const Tensor xd = gpu(x), x32 = f32(x);
    ops::add_(xd, xd, 0.25);
    ops::add_(x32, x32, 0.25);
    CHECK(close(xd, x32, tol) == "");
  }
}

TEST_CASE("ops mul_ and dropout_mask_ on cuda match the CPU ops bit for bit", HONE_DEVICE_TAG) {
  // mul_: one fp32 product per element, so the device gives the f32 CPU product rounded to x's
  // dtype exactly, in every f32/bf16 mix; sizes around the 8-element step, one element in (no
  // pointer 16-byte aligned: the scalar path) and m as x.
  for (DType xt : {DType::bf16, DType::f32})
    for (DType mt : {DType::bf16, DType::f32})
      for (std::int64_t n : {1, 7, 8, 9, 33, 1000, 4099, 65539}) {
        INFO("x " << dtype_name(xt) << ", m " << dtype_name(mt) << ", n " << n);
        const std::uint64_t seed = 6000 + static_cast<std::uint64_t>(n);
        const Tensor x = test::random_tensor({n + 1}, xt, seed, -3, 3);
        const Tensor m = test::random_tensor({n + 1}, mt, seed + 1, -2, 2);
        const Tensor ref = f32(x.slice(1, n + 1)), sq = f32(x.slice(1, n + 1));
        ops::mul_(ref, f32(m.slice(1, n + 1)));
        ops::mul_(sq, sq);
        const Tensor md = gpu(m);
        auto run = [&](std::int64_t at) {
          const Tensor xd = gpu(x);
          ops::mul_(xd.slice(at, at + n), md.slice(at, at + n));
          return xd.slice(at, at + n);
        };
        const Tensor a32 = f32(x.slice(0, n));  // x[0, n) ⊙ m[0, n): the aligned start
        ops::mul_(a32, f32(m.slice(0, n)));
        CHECK(bytes(run(0)) == bytes(a32.to(xt)));
        CHECK(bytes(run(1)) == bytes(ref.to(xt)));
        const Tensor xs = gpu(x.slice(1, n + 1).clone());
        ops::mul_(xs, xs);
        CHECK(bytes(xs) == bytes(sq.to(xt)));
      }

  // dropout_mask_ on the device's own Philox draw equals the CPU's mask on its f32 and f64
  // draws: p = 0.7 is above 0.7f, so the device must not compare against p rounded to f32.
  for (double p : {0.0, 0.1, 0.25, 0.5, 0.7})
    for (std::int64_t n : {1, 13, 4096, 70001}) {
      INFO("p " << p << ", n " << n);
      const Tensor ud = gpu(Tensor::empty({n}, DType::f32));
      const Tensor u32 = Tensor::empty({n}, DType::f32), u64 = Tensor::empty({n}, DType::f64);
      ops::uniform_(ud, 99, 7);
      ops::uniform_(u32, 99, 7);
      ops::uniform_(u64, 99, 7);
      ops::dropout_mask_(ud, p);
      ops::dropout_mask_(u32, p);
      ops::dropout_mask_(u64, p);
      CHECK(bytes(ud) == bytes(u32));
      CHECK(bytes(ud) == bytes(u64.to(DType::f32)));
    }
  // Uniforms at either side of p, on the scalar path and in 8-element steps.
  std::vector<float> edge;
  for (double p : {0.1, 0.25, 0.7}) {
    const float f = static_cast<float>(p);
    for (float v : {std::nextafter(f, 0.0f), f, std::nextafter(f, 1.0f)}) edge.push_back(v);
  }
  const auto ne = static_cast<std::int64_t>(edge.size());
  for (std::int64_t at : {0, 1}) {
    std::vector<float> padded = edge;  // edge at [at, at + ne)
    padded.insert(at == 0 ? padded.end() : padded.begin(), 0.5f);
    for (double p : {0.1, 0.25, 0.7}) {
      INFO("edges at " << at << ", p " << p);
      const Tensor d = gpu(Tensor::from_vector<float>({ne + 1}, padded));
      const Tensor h = Tensor::from_vector<float>({ne}, edge);
      ops::dropout_mask_(d.slice(at, at + ne), p);
      ops::dropout_mask_(h, p);
      CHECK(bytes(d.slice(at, at + ne)) == bytes(h));
    }
  }

  // What the kernels do not take.
  const Tensor xd = gpu(test::random_tensor({4, 8}, DType::bf16, 1));
  CHECK_THROWS_WITH(ops::mul_(xd, gpu(Tensor::zeros({4, 8}, DType::f64))),
                    Contains("[mul_] argument 'm' has dtype f64; expected f32 or bf16 on cuda:0"));
  CHECK_THROWS_WITH(ops::mul_(gpu(Tensor::zeros({4, 8}, DType::f64)), xd),
                    Contains("[mul_] argument 'x' has dtype f64; expected f32 or bf16 on cuda:0"));
  CHECK_THROWS_WITH(ops::mul_(xd, Tensor::zeros({4, 8}, DType::f32)),
                    Contains("[mul_] argument 'm' is on cpu but x is on cuda:0"));
  CHECK_THROWS_WITH(ops::mul_(xd, gpu(Tensor::zeros({8, 4}, DType::bf16))),
                    Contains("[mul_] argument 'm' has shape (8, 4); expected (4, 8)"));
  CHECK_THROWS_WITH(ops::dropout_mask_(xd, 0.5),
                    Contains("[dropout_mask_] argument 'u' has dtype bf16; expected f32 on cuda:0"));
  CHECK_THROWS_WITH(ops::dropout_mask_(gpu(Tensor::zeros({3}, DType::f32)), 1.0),
                    Contains("[dropout_mask_] p is 1"));
}

// ---------------------------------------------------------------- embedding

TEST_CASE("ops embedding on cuda matches the CPU ops, the backward bit for bit", HONE_DEVICE_TAG) {
  std::uint64_t seed = 5000;
  for (DType table_dt : {DType::bf16, DType::f32})
    for (DType idt : {DType::i32, DType::i64})
      for (std::int64_t vocab : {1, 50, 1000})
        for (std::int64_t dim : {1, 33, 128})
          for (std::int64_t tokens : {1, 31, 129, 1000}) {
            INFO(dtype_name(table_dt) << " ids " << dtype_name(idt) << " vocab " << vocab << " dim "
                                      << dim << " tokens " << tokens);
            seed += 10;
            const Tensor ids = test::random_ids({tokens}, vocab, idt, seed);
            const Tensor table = test::random_tensor({vocab, dim}, table_dt, seed + 1);
            const Tensor dout = test::random_tensor({tokens, dim}, DType::bf16, seed + 2);
            const Tensor dtable0 = test::random_tensor({vocab, dim}, DType::f32, seed + 3);
            const Tensor out32 = Tensor::empty({tokens, dim}, DType::f32), dtable32 = dtable0.clone();
            ops::embedding_fwd(ids, f32(table), out32);
            ops::embedding_bwd(ids, f32(dout), dtable32);

            const Tensor idd = gpu(ids), td = gpu(table), dd = gpu(dout);
            auto run = [&] {
              const Tensor out = poisoned_gpu({tokens, dim}, table_dt), dt = gpu(dtable0);
              ops::embedding_fwd(idd, td, out);
              ops::embedding_bwd(idd, dd, dt);
              return std::vector<Tensor>{out, dt};
            };
            const std::vector<Tensor> r = run();
            CHECK(all_bytes(run()) == all_bytes(r));
            CHECK(close(r[0], out32, {0.0, 0.0}) == "");  // rows copied
            // Token order from the row's old value, as the CPU sums: the same f32 bits.
            CHECK(close(r[1], dtable32, {0.0, 0.0}) == "");
          }
}

// ---------------------------------------------------------------- cross-entropy

TEST_CASE("ops cross_entropy on cuda matches the CPU ops", HONE_DEVICE_TAG) {
  std::uint64_t seed = 6000;
  for (DType dt : {DType::bf16, DType::f32})
    for (std::int64_t rows : {1, 33, 129})
      for (std::int64_t vocab : {1, 31, 1000, 50000})
        for (bool weighted : {false, true}) {
          INFO(dtype_name(dt) << " rows " << rows << " vocab " << vocab << (weighted ? " weighted" : ""));
          seed += 10;
          const Tensor logits = test::random_tensor({rows, vocab}, dt, seed, -4, 4);
          std::vector<std::int64_t> t = test::random_ids({rows}, vocab, DType::i64, seed + 1)
                                            .to_vector<std::int64_t>();
          for (std::size_t i = 0; i < t.size(); i += 5) t[i] = -100;  // ignored rows
          const Tensor targets = Tensor::from_vector<std::int64_t>({rows}, t);
          const Tensor weights = test::random_tensor({rows}, DType::f32, seed + 2, 0.5, 1.5);
          const Tensor dlosses = test::random_tensor({rows}, DType::f32, seed + 3);

          ops::CrossEntropyArgs host_args;
          if (weighted) host_args.weights = weights;
          const Tensor losses32 = Tensor::empty({rows}, DType::f32), lse32 = Tensor::empty({rows}, DType::f32);
          const Tensor dlogits32 = Tensor::empty({rows, vocab}, DType::f32);
          ops::cross_entropy_fwd(f32(logits), targets, host_args, losses32, lse32);
          ops::cross_entropy_bwd(dlosses, f32(logits), targets, lse32, host_args, dlogits32);

          ops::CrossEntropyArgs args;
          if (weighted) args.weights = gpu(weights);
          const Tensor ld = gpu(logits), td = gpu(targets), gd = gpu(dlosses);
          auto run = [&] {
            const Tensor losses = poisoned_gpu({rows}, DType::f32), lse = poisoned_gpu({rows}, DType::f32);
            const Tensor dlogits = poisoned_gpu({rows, vocab}, dt);
            ops::cross_entropy_fwd(ld, td, args, losses, lse);
            ops::cross_entropy_bwd(gd, ld, td, lse, args, dlogits);
            return std::vector<Tensor>{losses, lse, dlogits};
          };
          const std::vector<Tensor> r = run();
          CHECK(all_bytes(run()) == all_bytes(r));
          {
            // One launch for both, with one upstream gradient for every row: the same bytes as
            // the two launches with that gradient, in place of the logits too.
            const double dloss = 0.37;
            const Tensor losses = poisoned_gpu({rows}, DType::f32), lse = poisoned_gpu({rows}, DType::f32);
            const Tensor dlogits = poisoned_gpu({rows, vocab}, dt);
            ops::cross_entropy_fwd(ld, td, args, losses, lse);
            ops::cross_entropy_bwd(Tensor::full({rows}, dloss, DType::f32, ld.device()), ld, td, lse, args, dlogits);
            const Tensor l1 = poisoned_gpu({rows}, DType::f32), s1 = poisoned_gpu({rows}, DType::f32);
            const Tensor d1 = poisoned_gpu({rows, vocab}, dt);
            ops::cross_entropy_fwd_bwd(ld, td, args, dloss, l1, s1, d1);
            const Tensor l2 = poisoned_gpu({rows}, DType::f32), s2 = poisoned_gpu({rows}, DType::f32);
            const Tensor in_place = ld.clone();
            ops::cross_entropy_fwd_bwd(in_place, td, args, dloss, l2, s2, in_place);
            CHECK(all_bytes({l1, s1, d1}) == all_bytes({losses, lse, dlogits}));
            CHECK(all_bytes({l2, s2, in_place}) == all_bytes({losses, lse, dlogits}));
          }
          CHECK(close(r[0], losses32, kRow) == "");
          CHECK(close(r[1], lse32, kRow) == "");
          // Probabilities are small: relative to the reference, within about one bf16 ulp.
          const test::Tolerance grad_tol = dt == DType::bf16 ? test::Tolerance{1e-7, 8e-3}
                                                             : test::Tolerance{1e-7, 1e-4};
          CHECK(close(r[2], dlogits32, grad_tol) == "");
        }
}

// ---------------------------------------------------------------- optimizer

TEST_CASE("ops adamw_step on cuda matches the CPU op for f32 and bf16 gradients", HONE_DEVICE_TAG) {
  for (DType gdt : {DType::f32, DType::bf16})
    for (std::int64_t n : {1, 33, 129, 100003}) {
      INFO("grad " << dtype_name(gdt) << " n " << n);
      const std::uint64_t seed = 7000 + n;
      const Tensor p0 = test::random_tensor({n}, DType::f32, seed);
      const Tensor m0 = test::random_tensor({n}, DType::f32, seed + 1, -1e-2, 1e-2);
      const Tensor v0 = test::random_tensor({n}, DType::f32, seed + 2, 0.0, 1e-3);
      const Tensor g = test::random_tensor({n}, gdt, seed + 3);
      ops::AdamWArgs args;
      args.lr = 1e-3;
      args.weight_decay = 0.1;
      const Tensor p32 = p0.clone(), m32 = m0.clone(), v32 = v0.clone();
      const Tensor pd = gpu(p0), md = gpu(m0), vd = gpu(v0), gd = gpu(g);
      for (std::int64_t step : {1, 2, 10}) {
        args.step = step;
        ops::adamw_step(p32, f32(g), m32, v32, args);
        ops::adamw_step(pd, gd, md, vd, args);
      }
      const test::Tolerance tol{1e-6, 1e-5};
      CHECK(close(pd, p32, tol) == "");
      CHECK(close(md, m32, tol) == "");
      CHECK(close(vd, v32, tol) == "");
      // The same three steps again from the start: the same bits, and with a bf16 compute copy
      // that holds the updated master weights rounded to bf16.
      const Tensor pd2 = gpu(p0), md2 = gpu(m0), vd2 = gpu(v0), copy = poisoned_gpu({n}, DType::bf16);
      for (std::int64_t step : {1, 2, 10}) {
        args.step = step;
        ops::adamw_step(pd2, gd, md2, vd2, args, copy);
      }
      CHECK(all_bytes({pd2, md2, vd2}) == all_bytes({pd, md, vd}));
      CHECK(bytes(copy) == bytes(cpu_of(pd).to(DType::bf16)));
    }
}

TEST_CASE("ops adamw_step on cuda reads the gradient times grad_scale, leaving it alone", HONE_DEVICE_TAG) {
  const std::int64_t n = 4099;
  const Tensor p0 = test::random_tensor({n}, DType::f32, 7101);
  const Tensor m0 = test::random_tensor({n}, DType::f32, 7102, -1e-2, 1e-2);
  const Tensor v0 = test::random_tensor({n}, DType::f32, 7103, 0.0, 1e-3);
  const Tensor g = test::random_tensor({n}, DType::f32, 7104, -5.0, 5.0);
  ops::AdamWArgs args;
  args.lr = 1e-3;
  args.step = 4;
  args.grad_scale = 0.125;
  const Tensor p32 = p0.clone(), m32 = m0.clone(), v32 = v0.clone();
  ops::adamw_step(p32, g, m32, v32, args);
  const Tensor pd = gpu(p0), md = gpu(m0), vd = gpu(v0), gd = gpu(g);
  ops::adamw_step(pd, gd, md, vd, args);
  const test::Tolerance tol{1e-6, 1e-5};
  CHECK(close(pd, p32, tol) == "");
  CHECK(close(md, m32, tol) == "");
  CHECK(close(vd, v32, tol) == "");
  CHECK(bytes(gd) == bytes(g));
  // Scaling by 1/8 is not the unscaled step: the moments differ by the factor.
  const Tensor pu = gpu(p0), mu = gpu(m0), vu = gpu(v0);
  args.grad_scale = 1.0;
  ops::adamw_step(pu, gd, mu, vu, args);
  CHECK(close(mu, m32, tol) != "");
}

TEST_CASE("ops adamw_step over a group on cuda equals the per-tensor steps", HONE_DEVICE_TAG) {
  // f32 and bf16 gradients in one group (one launch each), compute copies on some, a scale.
  const std::vector<std::int64_t> sizes = {5, 1000, 4097, 64};
  const std::vector<DType> gdts = {DType::f32, DType::bf16, DType::f32, DType::bf16};
  std::vector<ops::AdamWTensors> group, single;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::int64_t n = sizes[i];
    const std::uint64_t seed = 7200 + 10 * i;
    const Tensor p0 = test::random_tensor({n}, DType::f32, seed);
    const Tensor m0 = test::random_tensor({n}, DType::f32, seed + 1, -1e-2, 1e-2);
    const Tensor v0 = test::random_tensor({n}, DType::f32, seed + 2, 0.0, 1e-3);
    const Tensor g = gpu(test::random_tensor({n}, gdts[i], seed + 3));
    const bool copy = i % 2 == 0;
    group.push_back({gpu(p0), g, gpu(m0), gpu(v0), copy ? poisoned_gpu({n}, DType::bf16) : Tensor()});
    single.push_back({gpu(p0), g, gpu(m0), gpu(v0), copy ? poisoned_gpu({n}, DType::bf16) : Tensor()});
  }
  ops::AdamWArgs args;
  args.lr = 1e-3;
  args.weight_decay = 0.05;
  args.step = 3;
  args.grad_scale = 0.25;
  ops::adamw_step(group, args);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    INFO("tensor " << i);
    const ops::AdamWTensors& e = single[i];
    ops::adamw_step(e.param, e.grad, e.m, e.v, args, e.param_copy);
    CHECK(all_bytes({group[i].param, group[i].m, group[i].v}) == all_bytes({e.param, e.m, e.v}));
    if (e.param_copy.defined()) CHECK(bytes(group[i].param_copy) == bytes(e.param_copy));
  }
}

TEST_CASE("ops grad_norm and clip_grad_norm on cuda match the CPU ops", HONE_DEVICE_TAG) {
  // Mixed f32 and bf16 gradients (one launch per dtype), and each dtype alone.
  const std::vector<std::pair<DType, std::int64_t>> mixed = {
      {DType::f32, 1000}, {DType::bf16, 33}, {DType::f32, 129}, {DType::bf16, 100003}, {DType::f32, 0}};
  const std::vector<std::pair<DType, std::int64_t>> bf16_only = {{DType::bf16, 31}, {DType::bf16, 4097}};
  const std::vector<std::pair<DType, std::int64_t>> f32_only = {{DType::f32, 1}, {DType::f32, 65537}};
  std::uint64_t seed = 8000;
  for (const auto& list : {mixed, bf16_only, f32_only}) {
    std::vector<Tensor> host, host32, dev;
    for (const auto& [dt, n] : list) {
      host.push_back(test::random_tensor({n}, dt, ++seed));
      host32.push_back(f32(host.back()));
      dev.push_back(gpu(host.back()));
    }
    const double want = ops::grad_norm(host32);
    const double got = ops::grad_norm(dev);
    CHECK(std::fabs(got - want) <= 1e-5 * want);  // fp32 within chunks, an f32 result
    CHECK(ops::grad_norm(dev) == got);  // deterministic

    // Clipping to half the norm scales every gradient by the same factor as on the host.
    const double max_norm = want / 2;
    const double clipped_host = ops::clip_grad_norm(host32, max_norm);
    const double clipped_dev = ops::clip_grad_norm(dev, max_norm);
    CHECK(clipped_host == want);
    CHECK(clipped_dev == got);
    for (std::size_t i = 0; i < dev.size(); ++i) {
      INFO("grads[" << i << "]");
      CHECK(close(dev[i], host32[i], test::tolerance_for(dev[i].dtype())) == "");
    }
    const double after = ops::grad_norm(dev);
    CHECK(std::fabs(after - max_norm) <= 1e-2 * max_norm);
  }
}

// ---------------------------------------------------------------- sampling

TEST_CASE("ops sample and argmax on cuda draw the CPU's tokens", HONE_DEVICE_TAG) {
  std::vector<ops::SampleArgs> configs(5);
  configs[0].temperature = 0.0;                          // greedy
  configs[1].temperature = 0.8, configs[1].top_k = 50;   // top-k
  configs[2].temperature = 1.0, configs[2].top_p = 0.9;  // top-p
  configs[3].temperature = 1.3, configs[3].top_k = 1;    // greedy through top_k
  configs[4].temperature = 0.7, configs[4].top_k = 20, configs[4].top_p = 0.5;
  std::uint64_t seed = 9000;
  for (DType dt : {DType::f32, DType::bf16})
    for (std::int64_t rows : {1, 5, 33})
      for (std::int64_t vocab : {1, 100, 50000}) {
        INFO(dtype_name(dt) << " rows " << rows << " vocab " << vocab);
        const Tensor logits = test::random_tensor({rows, vocab}, dt, ++seed, -4, 4);
        const Tensor l32 = f32(logits), ld = gpu(logits);
        for (std::size_t c = 0; c < configs.size(); ++c) {
          ops::SampleArgs args = configs[c];
          args.seed = seed;
          args.offset = 3 * c;
          const Tensor want = Tensor::empty({rows}, DType::i64);
          ops::sample(l32, args, want);
          const Tensor got = gpu(Tensor::full({rows}, -1, DType::i64));
          ops::sample(ld, args, got);
          INFO("config " << c);
          CHECK(cpu_of(got).to_vector<std::int64_t>() == want.to_vector<std::int64_t>());
        }
        const Tensor want = Tensor::empty({rows}, DType::i64);
        ops::argmax(l32, want);
        const Tensor got = gpu(Tensor::full({rows}, -1, DType::i64));
        ops::argmax(ld, got);
        CHECK(cpu_of(got).to_vector<std::int64_t>() == want.to_vector<std::int64_t>());
      }
  // Ties go to the lowest index and NaN counts as −inf, as on the CPU.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor tied = test::values({2, 5}, {1, 3, nan, 3, 2, nan, -1, nan, -1, -5}, DType::f32);
  const Tensor want = Tensor::empty({2}, DType::i64);
  ops::argmax(tied, want);
  CHECK(want.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 1});
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor got = gpu(Tensor::full({2}, -1, DType::i64));
    ops::argmax(gpu(tied.to(dt)), got);
    CHECK(cpu_of(got).to_vector<std::int64_t>() == want.to_vector<std::int64_t>());
  }
}

// ---------------------------------------------------------------- argument errors on cuda

TEST_CASE("ops on cuda reject dtypes their kernels do not take, naming op and argument", HONE_DEVICE_TAG) {
  const Tensor x32 = gpu(test::random_tensor({4, 8}, DType::f32, 1));
  const Tensor x = gpu(test::random_tensor({4, 8}, DType::bf16, 1));
  const Tensor w = gpu(test::random_tensor({8}, DType::bf16, 2));
  const Tensor rstd = gpu(Tensor::empty({4}, DType::f32));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x32, gpu(Tensor::empty({8}, DType::f32)), 1e-5, x32, rstd),
                    Contains("[rmsnorm_fwd]") && Contains("argument 'x' has dtype f32; expected bf16 on cuda:0"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, w, 1e-5, x.clone(), gpu(Tensor::empty({4}, DType::bf16))),
                    Contains("argument 'rstd' has dtype bf16; expected f32 on cuda:0"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, cpu_of(w), 1e-5, x.clone(), rstd),
                    Contains("argument 'w' is on cpu but x is on cuda:0"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, w, -1.0, x.clone(), rstd), Contains("eps is -1"));
  CHECK_THROWS_WITH(ops::gelu_fwd(x32, x32.clone()),
                    Contains("[gelu_fwd] argument 'x' has dtype f32; expected bf16 on cuda:0"));
  CHECK_THROWS_WITH(ops::add_(gpu(Tensor::empty({3}, DType::f64)), gpu(Tensor::empty({3}, DType::f64))),
                    Contains("[add_] argument 'dst' has dtype f64; expected f32 or bf16 on cuda:0"));
  CHECK_THROWS_WITH(ops::adamw_step(x, x, x, x, {}),
                    Contains("[adamw_step] argument 'param' has dtype bf16; expected f32 on cuda:0"));
  CHECK_THROWS_WITH(ops::grad_norm({x32, gpu(Tensor::empty({2}, DType::f64))}),
                    Contains("[grad_norm] argument 'grads[1]' has dtype f64"));
  ops::CrossEntropyArgs ce;
  ce.weights = gpu(Tensor::empty({4}, DType::bf16));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(x, gpu(Tensor::zeros({4}, DType::i64)), ce, rstd, rstd),
                    Contains("[cross_entropy_fwd] argument 'weights' has dtype bf16; expected f32"));
  CHECK_THROWS_WITH(ops::sample(x, {}, gpu(Tensor::empty({4}, DType::i32))),
                    Contains("[sample] argument 'out' has dtype i32; expected i64"));
  CHECK_THROWS_WITH(ops::embedding_bwd(gpu(Tensor::zeros({4}, DType::i64)), x32,
                                       gpu(Tensor::zeros({3, 8}, DType::f32))),
                    Contains("[embedding_bwd] argument 'dout' has dtype f32; expected bf16 on cuda:0"));
}

#endif  // HONE_WITH_CUDA

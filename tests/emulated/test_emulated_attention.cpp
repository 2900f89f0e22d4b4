// ops::attention_fwd / attention_bwd / attention_decode on cuda:0 — the engine's CUDA branches
// running the flash-attention kernels on the emulator — against the same ops on the CPU in f32
// on the same bf16 values: head dims 64 and 128, causal or not, GQA groups 1 and 4, padded and
// packed (ragged lengths, empty sequences), sliding windows, the grid bound of packed batches
// (max_seqlen, or cu_seqlens read back), decode with split-KV, determinism and the CUDA argument
// errors. Sizes stay small: the emulator runs every thread of a block as a fiber.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "hone/tensor.h"
#include "ops/ops.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using Catch::Matchers::Contains;

namespace {

const Device kGpu = Device::cuda(0);
// bf16 outputs and gradients: the f32 reference rounded to bf16, within tolerance.h's bf16
// tolerance (the kernels also round P and dS to bf16 for the tensor-core products).
const test::Tolerance kBf16 = test::tolerance_for(DType::bf16);
// lse: f32 math on the same inputs in another order (exp2 with a log2(e) factor).
const test::Tolerance kLse{1e-4, 1e-5};

Tensor gpu(const Tensor& host) { return host.to(kGpu); }
Tensor cpu_of(const Tensor& t) { return t.to(Device::cpu()); }
// A host f32 copy holding exactly the values of a bf16 (or f32) tensor on any device.
Tensor f32(const Tensor& t) { return cpu_of(t).to(DType::f32); }
Tensor poisoned_gpu(const Shape& s, DType dt) { return gpu(test::poisoned(s, dt)); }

std::vector<unsigned char> all_bytes(const std::vector<Tensor>& ts) {
  std::vector<unsigned char> out;
  for (const Tensor& t : ts) {
    const Tensor h = cpu_of(t);
    const auto* p = static_cast<const unsigned char*>(h.raw());
    out.insert(out.end(), p, p + h.nbytes());
  }
  return out;
}

// A device output against the f32 CPU reference rounded to the output's dtype.
std::string close(const Tensor& dev, const Tensor& ref_f32, test::Tolerance tol) {
  const Tensor a = cpu_of(dev);
  return test::compare(a, ref_f32.to(a.dtype()), tol);
}

// One problem: padded (every sequence T long) or packed by cu_seqlens.
struct Problem {
  std::vector<std::int64_t> lens;
  bool packed = false;
  std::int64_t hq = 4, hkv = 4, hd = 64;
  bool causal = true;
  std::int64_t window = 0;
  std::int64_t max_seqlen = 0;

  std::int64_t tokens() const {
    std::int64_t n = 0;
    for (std::int64_t l : lens) n += l;
    return n;
  }
  std::int64_t batch() const { return static_cast<std::int64_t>(lens.size()); }
  Shape shape(std::int64_t heads) const {
    return packed ? Shape{tokens(), heads, hd} : Shape{batch(), lens[0], heads, hd};
  }
  Shape lse_shape() const {
    return packed ? Shape{hq, tokens()} : Shape{batch(), hq, lens[0]};
  }
  ops::AttentionArgs args(Device device) const {
    ops::AttentionArgs a;
    a.causal = causal;
    a.window = window;
    a.max_seqlen = max_seqlen;
    if (packed) {
      std::vector<std::int32_t> cu{0};
      for (std::int64_t l : lens) cu.push_back(cu.back() + static_cast<std::int32_t>(l));
      a.cu_seqlens = Tensor::from_vector<std::int32_t>({batch() + 1}, cu).to(device);
    }
    return a;
  }
  std::string describe() const {
    std::string s = packed ? "packed" : "padded";
    for (std::int64_t l : lens) s += " " + std::to_string(l);
    return s + " hq " + std::to_string(hq) + " hkv " + std::to_string(hkv) + " hd " +
           std::to_string(hd) + (causal ? " causal" : " full") + " window " +
           std::to_string(window) + " max_seqlen " + std::to_string(max_seqlen);
  }
};

// Forward and backward on cuda:0 against the CPU in f32; two device runs bitwise equal.
void check_fwd_bwd(const Problem& pb, std::uint64_t seed) {
  INFO(pb.describe());
  const Tensor q = test::random_tensor(pb.shape(pb.hq), DType::bf16, seed, -1.5, 1.5);
  const Tensor k = test::random_tensor(pb.shape(pb.hkv), DType::bf16, seed + 1, -1.5, 1.5);
  const Tensor v = test::random_tensor(pb.shape(pb.hkv), DType::bf16, seed + 2, -1.5, 1.5);
  const Tensor dout = test::random_tensor(pb.shape(pb.hq), DType::bf16, seed + 3);

  const ops::AttentionArgs host_args = pb.args(Device::cpu());
  const Tensor out32 = Tensor::empty(pb.shape(pb.hq), DType::f32);
  const Tensor lse32 = Tensor::empty(pb.lse_shape(), DType::f32);
  const Tensor dq32 = Tensor::empty(pb.shape(pb.hq), DType::f32);
  const Tensor dk32 = Tensor::empty(pb.shape(pb.hkv), DType::f32);
  const Tensor dv32 = Tensor::empty(pb.shape(pb.hkv), DType::f32);
  ops::attention_fwd(f32(q), f32(k), f32(v), host_args, out32, lse32);
  ops::attention_bwd(f32(dout), f32(q), f32(k), f32(v), out32, lse32, host_args, dq32, dk32,
                     dv32);

  const ops::AttentionArgs args = pb.args(kGpu);
  const Tensor qd = gpu(q), kd = gpu(k), vd = gpu(v), doutd = gpu(dout);
  auto run = [&] {
    const Tensor out = poisoned_gpu(pb.shape(pb.hq), DType::bf16);
    const Tensor lse = poisoned_gpu(pb.lse_shape(), DType::f32);
    const Tensor dq = poisoned_gpu(pb.shape(pb.hq), DType::bf16);
    const Tensor dk = poisoned_gpu(pb.shape(pb.hkv), DType::bf16);
    const Tensor dv = poisoned_gpu(pb.shape(pb.hkv), DType::bf16);
    ops::attention_fwd(qd, kd, vd, args, out, lse);
    ops::attention_bwd(doutd, qd, kd, vd, out, lse, args, dq, dk, dv);
    return std::vector<Tensor>{out, lse, dq, dk, dv};
  };
  const std::vector<Tensor> r = run();
  CHECK(close(r[0], out32, kBf16) == "");
  CHECK(close(r[1], lse32, kLse) == "");
  CHECK(close(r[2], dq32, kBf16) == "");
  CHECK(close(r[3], dk32, kBf16) == "");
  CHECK(close(r[4], dv32, kBf16) == "");
  CHECK(all_bytes(run()) == all_bytes(r));
}

Problem padded(std::int64_t b, std::int64_t t, std::int64_t hkv, std::int64_t hd, bool causal) {
  Problem pb;
  pb.lens.assign(static_cast<std::size_t>(b), t);
  pb.hkv = hkv, pb.hd = hd, pb.causal = causal;
  return pb;
}

Problem packed(std::vector<std::int64_t> lens, std::int64_t hkv, std::int64_t hd, bool causal) {
  Problem pb;
  pb.lens = std::move(lens);
  pb.packed = true;
  pb.hkv = hkv, pb.hd = hd, pb.causal = causal;
  return pb;
}

}  // namespace

TEST_CASE("attention on cuda:0 matches the CPU: head dims 64/128, causal or not, GQA 1/4",
          "[emu][attention]") {
  std::uint64_t seed = 10;
  for (std::int64_t hd : {64, 128})
    for (bool causal : {true, false})
      for (std::int64_t hkv : {4, 1}) {
        check_fwd_bwd(packed({1, 5, 33}, hkv, hd, causal), seed += 10);
        check_fwd_bwd(padded(2, 17, hkv, hd, causal), seed += 10);
      }
}

TEST_CASE("attention on cuda:0 matches the CPU: sliding windows and head dims 32/96",
          "[emu][attention]") {
  Problem a = packed({1, 5, 33}, 1, 64, true);
  a.window = 4;
  check_fwd_bwd(a, 200);
  Problem b = padded(1, 40, 2, 128, false);
  b.window = 9;
  check_fwd_bwd(b, 210);
  check_fwd_bwd(padded(1, 9, 4, 32, true), 220);  // zero-padded into the 64 bucket
  check_fwd_bwd(packed({7, 2}, 2, 96, false), 230);
}

TEST_CASE("attention on cuda:0 bounds packed batches by max_seqlen or by cu_seqlens",
          "[emu][attention]") {
  // Six sequences (more than the op bounds by N): without max_seqlen the op reads cu_seqlens
  // back; with it (exact or loose) the kernels get the bound directly. All agree bitwise.
  Problem pb = packed({1, 5, 0, 33, 2, 7}, 2, 64, true);
  check_fwd_bwd(pb, 300);
  const Tensor q = gpu(test::random_tensor(pb.shape(pb.hq), DType::bf16, 301));
  const Tensor k = gpu(test::random_tensor(pb.shape(pb.hkv), DType::bf16, 302));
  auto fwd = [&](std::int64_t max_seqlen) {
    Problem p = pb;
    p.max_seqlen = max_seqlen;
    const Tensor out = poisoned_gpu(pb.shape(pb.hq), DType::bf16);
    const Tensor lse = poisoned_gpu(pb.lse_shape(), DType::f32);
    ops::attention_fwd(q, k, k, p.args(kGpu), out, lse);
    return all_bytes({out, lse});
  };
  const auto read_back = fwd(0);
  CHECK(fwd(33) == read_back);
  CHECK(fwd(48) == read_back);
}

namespace {

struct DecodeProblem {
  std::vector<std::int32_t> lens;  // cache_seqlens
  std::int64_t tq = 1, capacity = 1;
  std::int64_t hq = 4, hkv = 4, hd = 64;
  bool causal = true;
  std::int64_t window = 0;
};

// attention_decode on cuda:0 against the CPU op in f32 on the same values, with and without lse.
void check_decode(const DecodeProblem& dp, std::uint64_t seed) {
  const auto B = static_cast<std::int64_t>(dp.lens.size());
  INFO("decode B " << B << " Tq " << dp.tq << " C " << dp.capacity << " hq " << dp.hq << " hkv "
                   << dp.hkv << " hd " << dp.hd << " causal " << dp.causal << " window "
                   << dp.window);
  const Shape q_shape{B, dp.tq, dp.hq, dp.hd}, kv_shape{B, dp.capacity, dp.hkv, dp.hd};
  const Tensor q = test::random_tensor(q_shape, DType::bf16, seed, -1.5, 1.5);
  const Tensor k = test::random_tensor(kv_shape, DType::bf16, seed + 1, -1.5, 1.5);
  const Tensor v = test::random_tensor(kv_shape, DType::bf16, seed + 2, -1.5, 1.5);
  const Tensor lens = Tensor::from_vector<std::int32_t>({B}, dp.lens);
  ops::AttentionArgs args;
  args.causal = dp.causal;
  args.window = dp.window;
  const Tensor out32 = Tensor::empty(q_shape, DType::f32);
  const Tensor lse32 = Tensor::empty({B, dp.hq, dp.tq}, DType::f32);
  ops::attention_decode(f32(q), f32(k), f32(v), lens, args, out32, lse32);

  const Tensor qd = gpu(q), kd = gpu(k), vd = gpu(v), lens_d = gpu(lens);
  const Tensor out = poisoned_gpu(q_shape, DType::bf16);
  const Tensor lse = poisoned_gpu({B, dp.hq, dp.tq}, DType::f32);
  ops::attention_decode(qd, kd, vd, lens_d, args, out, lse);
  CHECK(close(out, out32, kBf16) == "");
  CHECK(close(lse, lse32, kLse) == "");
  const Tensor out_only = poisoned_gpu(q_shape, DType::bf16);
  ops::attention_decode(qd, kd, vd, lens_d, args, out_only);
  CHECK(all_bytes({out_only}) == all_bytes({out}));
}

}  // namespace

TEST_CASE("attention_decode on cuda:0 matches the CPU: split-KV, GQA 1/4, windows",
          "[emu][attention][decode]") {
  std::uint64_t seed = 400;
  for (std::int64_t hd : {64, 128})
    for (std::int64_t hkv : {4, 1})
      for (std::int64_t tq : {1, 3}) {
        DecodeProblem dp;
        dp.lens = {3, 70, 130};  // a cache of 130 rows: the launcher splits it (up to 3 ways)
        dp.capacity = 130;
        dp.tq = tq, dp.hkv = hkv, dp.hd = hd;
        dp.causal = tq == 1 || hkv == 4;
        dp.window = hkv == 1 ? 5 : 0;
        check_decode(dp, seed += 10);
      }
}

TEST_CASE("attention_decode on cuda:0 without cache_seqlens reads the whole cache",
          "[emu][attention][decode]") {
  const Tensor q = test::random_tensor({2, 2, 4, 64}, DType::bf16, 501);
  const Tensor k = test::random_tensor({2, 20, 2, 64}, DType::bf16, 502);
  const Tensor v = test::random_tensor({2, 20, 2, 64}, DType::bf16, 503);
  const Tensor full = Tensor::from_vector<std::int32_t>({2}, {20, 20});
  const Tensor a = poisoned_gpu(q.shape(), DType::bf16), b = poisoned_gpu(q.shape(), DType::bf16);
  ops::attention_decode(gpu(q), gpu(k), gpu(v), Tensor{}, {}, a);
  ops::attention_decode(gpu(q), gpu(k), gpu(v), gpu(full), {}, b);
  CHECK(all_bytes({a}) == all_bytes({b}));
  const Tensor ref = Tensor::empty(q.shape(), DType::f32);
  ops::attention_decode(f32(q), f32(k), f32(v), Tensor{}, {}, ref);
  CHECK(close(a, ref, kBf16) == "");
}

TEST_CASE("attention ops on cuda:0 name the op and argument of a CUDA-only rule",
          "[emu][attention]") {
  const Tensor q = Tensor::zeros({2, 8, 4, 64}, DType::bf16, kGpu);
  const Tensor lse = Tensor::zeros({2, 4, 8}, DType::f32, kGpu);
  const ops::AttentionArgs args;
  const Tensor q32 = Tensor::zeros(q.shape(), DType::f32, kGpu);
  CHECK_THROWS_WITH(
      ops::attention_fwd(q32, q32, q32, args, q32, lse),
      Contains("[attention_fwd] argument 'q' has dtype f32; expected bf16 on cuda:0"));
  const Tensor q48 = Tensor::zeros({2, 8, 4, 48}, DType::bf16, kGpu);
  CHECK_THROWS_WITH(ops::attention_fwd(q48, q48, q48, args, q48, lse),
                    Contains("[attention_fwd] argument 'q'") && Contains("head dim 48") &&
                        Contains("32, 64, 96 or 128 on cuda:0"));
  const Tensor lse16 = Tensor::zeros({2, 4, 8}, DType::bf16, kGpu);
  CHECK_THROWS_WITH(ops::attention_fwd(q, q, q, args, q, lse16),
                    Contains("[attention_fwd] argument 'lse' has dtype bf16; expected f32"));
  const Tensor dq32 = Tensor::zeros(q.shape(), DType::f32, kGpu);
  CHECK_THROWS_WITH(ops::attention_bwd(q, q, q, q, q, lse, args, dq32, Tensor{}, Tensor{}),
                    Contains("[attention_bwd] argument 'dq'") && Contains("f32") &&
                        Contains("bf16"));
  ops::AttentionArgs host_cu;
  host_cu.cu_seqlens = Tensor::from_vector<std::int32_t>({2}, {0, 16});
  CHECK_THROWS_WITH(ops::attention_fwd(q.view({16, 4, 64}), q.view({16, 4, 64}),
                                       q.view({16, 4, 64}), host_cu, q.view({16, 4, 64}),
                                       lse.view({4, 16})),
                    Contains("[attention_fwd] argument 'cu_seqlens' is on cpu but q is on cuda:0"));
  const Tensor q40 = Tensor::zeros({1, 1, 4, 40}, DType::bf16, kGpu);
  const Tensor k40 = Tensor::zeros({1, 8, 4, 40}, DType::bf16, kGpu);
  CHECK_THROWS_WITH(ops::attention_decode(q40, k40, k40, Tensor{}, args, q40),
                    Contains("[attention_decode] argument 'q'") && Contains("head dim 40"));
  const Tensor q64 = Tensor::zeros({1, 1, 4, 64}, DType::bf16, kGpu);
  const Tensor k64 = Tensor::zeros({1, 8, 4, 64}, DType::bf16, kGpu);
  CHECK_THROWS_WITH(
      ops::attention_decode(q64, k64, k64, Tensor::from_vector<std::int32_t>({1}, {8}), args, q64),
      Contains("[attention_decode] argument 'cache_seqlens' is on cpu but q is on cuda:0"));
  CHECK_THROWS_WITH(ops::attention_decode(q64, k64, k64, Tensor{}, args, q64,
                                          Tensor::zeros({1, 4, 1}, DType::bf16, kGpu)),
                    Contains("[attention_decode] argument 'lse' has dtype bf16; expected f32"));
}

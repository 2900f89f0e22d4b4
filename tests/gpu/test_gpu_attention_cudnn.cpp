// hone's flash-attention kernels (kernels/attention) against cuDNN's fused attention
// (benchmarks/cudnn_attention.h) on the same device inputs: forward output and log-sum-exp,
// backward dq/dk/dv, at head dims 64/128, causal and not, grouped-query ratios 1 and 4, 128 and
// 1000 tokens (not a multiple of any tile). Both compute in f32 from bf16 inputs and round their
// outputs to bf16, so they agree to about one bf16 ulp plus what the bf16 rounding of the
// softmax probabilities inside each kernel contributes (see check() below).
//
// The binary exits with the skip code without a device. Built without the cuDNN frontend
// (benchmarks/CMakeLists.txt), it holds no test case: there is nothing to compare against.
#include <catch2/catch.hpp>

#if defined(HONE_WITH_CUDA) && defined(HONE_WITH_CUDNN_ATTENTION)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "benchmarks/cudnn_attention.h"
#include "cuda/check.h"
#include "hone/dtype.h"
#include "hone/tensor.h"
#include "kernels/attention/attention.h"
#include "support/device.h"
#include "support/tolerance.h"

using hone::kernels::AttentionBwdParams;
using hone::kernels::AttentionParams;
using hone::kernels::AttentionTensor;
using DeviceBuffer = hone::test::DeviceArray;

namespace {

std::uint16_t bf16_bits(double x) { return hone::to_bf16(static_cast<float>(x)).bits; }

// Uniform bf16 values in [-1.5, 1.5) as raw bits.
std::vector<std::uint16_t> random_bf16(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(-1.5, 1.5);
  std::vector<std::uint16_t> v(static_cast<std::size_t>(n));
  for (std::uint16_t& x : v) x = bf16_bits(dist(rng));
  return v;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// A bf16 device buffer as a host tensor of `shape` (bf16_close reads its values).
hone::Tensor bf16_tensor(const DeviceBuffer& b, const hone::Shape& shape) {
  const std::vector<std::uint16_t> bits = b.to_host<std::uint16_t>();
  const hone::Tensor t = hone::Tensor::empty(shape, hone::DType::bf16);
  REQUIRE(static_cast<std::size_t>(t.nbytes()) == bits.size() * 2);
  std::memcpy(t.raw(), bits.data(), t.nbytes());
  return t;
}

// Outputs of one implementation, each in its own poisoned (NaN) buffers so an element it did not
// write fails the comparison.
struct Outputs {
  DeviceBuffer out, lse, dq, dk, dv;
  Outputs(std::size_t q_bytes, std::size_t kv_bytes, std::size_t lse_bytes)
      : out(q_bytes), lse(lse_bytes), dq(q_bytes), dk(kv_bytes), dv(kv_bytes) {
    for (DeviceBuffer* b : {&out, &lse, &dq, &dk, &dv}) b->poison();
  }
};

struct Case {
  int batch = 2, seq, hq, hkv = 2, hd;
  bool causal;
};

void check(const Case& c, hone::bench::CudnnAttention& cudnn) {
  CAPTURE(c.batch, c.seq, c.hq, c.hkv, c.hd, c.causal);
  const std::int64_t rows = static_cast<std::int64_t>(c.batch) * c.seq;
  const std::vector<std::uint16_t> q_bits = random_bf16(rows * c.hq * c.hd, 1000 + c.seq + c.hd),
                                   k_bits = random_bf16(rows * c.hkv * c.hd, 2000 + c.hq),
                                   v_bits = random_bf16(rows * c.hkv * c.hd, 3000 + c.causal),
                                   do_bits = random_bf16(rows * c.hq * c.hd, 4000);
  DeviceBuffer q(q_bits), k(k_bits), v(v_bits), dout(do_bits);
  const std::size_t lse_bytes = static_cast<std::size_t>(c.batch) * c.hq * c.seq * sizeof(float);
  Outputs hone_out(q.bytes(), k.bytes(), lse_bytes), cudnn_out(q.bytes(), k.bytes(), lse_bytes);

  auto tensor = [&](const DeviceBuffer& b, int heads) {
    AttentionTensor t;
    t.ptr = b.get();
    t.row_stride = static_cast<std::int64_t>(heads) * c.hd;
    t.head_stride = c.hd;
    t.batch_stride = t.row_stride * c.seq;
    return t;
  };
  // One problem description; each implementation writes its own outputs.
  auto params = [&](Outputs& o) {
    AttentionBwdParams bp;
    AttentionParams& p = bp.fwd;
    p.q = tensor(q, c.hq), p.k = tensor(k, c.hkv), p.v = tensor(v, c.hkv), p.out = tensor(o.out, c.hq);
    p.lse = static_cast<float*>(o.lse.get());
    p.lse_batch_stride = static_cast<std::int64_t>(c.hq) * c.seq, p.lse_head_stride = c.seq;
    p.batch = c.batch, p.seqlen = c.seq, p.heads = c.hq, p.kv_heads = c.hkv, p.head_dim = c.hd;
    p.causal = c.causal;
    bp.dout = tensor(dout, c.hq);
    bp.dq = tensor(o.dq, c.hq), bp.dk = tensor(o.dk, c.hkv), bp.dv = tensor(o.dv, c.hkv);
    return bp;
  };

  AttentionBwdParams hp = params(hone_out);
  DeviceBuffer ws(hone::kernels::attention_bwd_workspace_bytes(hp.fwd));
  hp.workspace = ws.get(), hp.workspace_bytes = ws.bytes();
  hone::kernels::attention_fwd(hp.fwd, nullptr);
  hone::kernels::attention_bwd(hp, nullptr);
  const AttentionBwdParams cp = params(cudnn_out);
  cudnn.fwd(cp.fwd, nullptr);
  cudnn.bwd(cp, nullptr);
  hone::test::sync();

  const hone::Shape q_shape = {c.batch, c.seq, c.hq, c.hd}, kv_shape = {c.batch, c.seq, c.hkv, c.hd};
  auto values = [](const hone::Tensor& t) { return t.to_vector<double>(); };
  const hone::Tensor h_out = bf16_tensor(hone_out.out, q_shape), c_out = bf16_tensor(cudnn_out.out, q_shape);
  const hone::Tensor h_dq = bf16_tensor(hone_out.dq, q_shape), c_dq = bf16_tensor(cudnn_out.dq, q_shape);
  const hone::Tensor h_dk = bf16_tensor(hone_out.dk, kv_shape), c_dk = bf16_tensor(cudnn_out.dk, kv_shape);
  const hone::Tensor h_dv = bf16_tensor(hone_out.dv, kv_shape), c_dv = bf16_tensor(cudnn_out.dv, kv_shape);

  // Both kernels round the softmax probabilities P to bf16 (relative error ≤ 2^-9 each) before
  // P·V, so an output element out = Σ p·v differs by up to 2^-8 · max|v| between them, beyond
  // the bf16 rounding of the outputs themselves (one ulp, which bf16_close allows).
  std::vector<double> v_values(v_bits.size());
  for (std::size_t i = 0; i < v_bits.size(); ++i) v_values[i] = hone::from_bf16(hone::bf16{v_bits[i]});
  const double out_slack = std::ldexp(max_abs(v_values), -8);
  {
    INFO("forward output");
    const std::string diff = hone::test::bf16_close(h_out, values(c_out), out_slack);
    CHECK(diff == "");
  }
  // lse is f32 in both: the same sums in another order and another exp/log approximation.
  {
    INFO("log-sum-exp");
    const std::vector<float> hl = hone_out.lse.to_host<float>(), cl = cudnn_out.lse.to_host<float>();
    const std::string diff = hone::test::compare(std::vector<double>(hl.begin(), hl.end()),
                                                 std::vector<double>(cl.begin(), cl.end()), {1e-4, 1e-5});
    CHECK(diff == "");
  }
  // The gradients go through dS = P ∘ (dP − rowsum(dO ∘ O)), rounded to bf16 before the dq and
  // dk products, where the difference of two f32 terms loses relative precision: allow 2^-6 of
  // each gradient's largest magnitude, a few bf16 ulps of it (the device test against f64 allows
  // each implementation 2e-2 of the largest value).
  for (const auto& [name, h, ref] : {std::tuple<const char*, const hone::Tensor*, const hone::Tensor*>{"dq", &h_dq, &c_dq},
                                     {"dk", &h_dk, &c_dk},
                                     {"dv", &h_dv, &c_dv}}) {
    INFO(name);
    const std::vector<double> r = values(*ref);
    const double scale = max_abs(r);
    CHECK(scale > 0);  // cuDNN wrote a gradient that is not all zeros
    CHECK(hone::test::bf16_close(*h, r, std::ldexp(scale, -6)) == "");
  }
}

}  // namespace

TEST_CASE("attention matches cuDNN's fused attention on the same inputs", "[gpu][attention][cudnn]") {
  hone::bench::CudnnAttention cudnn;
  INFO(cudnn.version());
  for (int hd : {64, 128})
    for (bool causal : {false, true})
      for (int ratio : {1, 4})
        for (int seq : {128, 1000}) check({2, seq, 2 * ratio, 2, hd, causal}, cudnn);
  CHECK(cudnn.cached_graphs() == 2 * 16);  // one forward and one backward graph per shape
}

TEST_CASE("the cuDNN attention baseline rejects what it does not support", "[gpu][attention][cudnn]") {
  hone::bench::CudnnAttention cudnn;
  DeviceBuffer q(std::size_t{2} * 64 * 4 * 64 * 2), lse(std::size_t{2} * 4 * 64 * 4);
  AttentionParams p;
  for (AttentionTensor* t : {&p.q, &p.k, &p.v, &p.out}) {
    t->ptr = q.get(), t->row_stride = 4 * 64, t->head_stride = 64, t->batch_stride = 64 * 4 * 64;
  }
  p.lse = static_cast<float*>(lse.get());
  p.lse_batch_stride = 4 * 64, p.lse_head_stride = 64;
  p.batch = 2, p.seqlen = 64, p.heads = 4, p.kv_heads = 4, p.head_dim = 64;
  auto error_of = [&](AttentionParams bad) {
    try {
      cudnn.fwd(bad, nullptr);
    } catch (const hone::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  AttentionParams window = p;
  window.window = 16;
  CHECK_THAT(error_of(window), Catch::Contains("window"));
  AttentionParams lse_layout = p;
  lse_layout.lse_head_stride = 128;
  CHECK_THAT(error_of(lse_layout), Catch::Contains("lse_head_stride 128"));
  AttentionParams groups = p;
  groups.kv_heads = 3;
  CHECK_THAT(error_of(groups), Catch::Contains("kv_heads (3)"));
  AttentionParams head_dim = p;
  head_dim.head_dim = 60;
  CHECK_THAT(error_of(head_dim), Catch::Contains("head_dim"));
  AttentionParams packed = p;
  packed.cu_seqlens = static_cast<const std::int32_t*>(lse.get());  // never read: rejected first
  CHECK_THAT(error_of(packed), Catch::Contains("cu_seqlens"));
  CHECK(cudnn.cached_graphs() == 0);
}

#endif  // HONE_WITH_CUDA && HONE_WITH_CUDNN_ATTENTION

// The flash-attention kernels (kernels/attention) on a CUDA device against engine/cpu's
// attention in f64 on the same bf16 inputs: forward and backward on ragged lengths, GQA, head
// dims 64/128 (and 96 in its bucket), causal, sliding window, packed variable-length batches,
// split-KV decode; bitwise-identical gradients across runs; and forward/backward TFLOP/s at a
// training shape printed for the record (benchmarks/bench_gpu measures the full table). The
// binary exits with the skip code without a device.
#include <catch2/catch.hpp>

#if defined(HONE_WITH_CUDA)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/attention.h"
#include "cuda/check.h"
#include "hone/dtype.h"
#include "kernels/attention/attention.h"
#include "support/device.h"

using hone::kernels::AttentionBwdParams;
using hone::kernels::AttentionDecodeParams;
using hone::kernels::AttentionParams;
using hone::kernels::AttentionTensor;

namespace {

std::uint16_t bf16_bits(double x) { return hone::to_bf16(static_cast<float>(x)).bits; }
double bf16_value(std::uint16_t b) { return hone::from_bf16(hone::bf16{b}); }

using DeviceBuffer = hone::test::DeviceArray;

// A problem with contiguous (tokens, heads, hd) tensors, padded (equal lengths) or packed.
struct Problem {
  std::vector<int> lens;
  bool packed = false;
  int hq = 2, hkv = 1, hd = 64;
  bool causal = true;
  int window = 0;
  std::uint64_t seed = 1;
  std::int64_t tokens() const {
    std::int64_t n = 0;
    for (int l : lens) n += l;
    return n;
  }
  std::vector<std::int64_t> offsets() const {
    std::vector<std::int64_t> cu{0};
    for (int l : lens) cu.push_back(cu.back() + l);
    return cu;
  }
};

std::vector<double> random_values(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(-1.5, 1.5);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& x : v) x = bf16_value(bf16_bits(dist(rng)));
  return v;
}
std::vector<std::uint16_t> to_bf16(const std::vector<double>& v) {
  std::vector<std::uint16_t> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = bf16_bits(v[i]);
  return b;
}
std::vector<double> from_bf16(const std::vector<std::uint16_t>& b) {
  std::vector<double> v(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) v[i] = bf16_value(b[i]);
  return v;
}

// max |a − ref| / max |ref|.
double relative_error(const std::vector<double>& a, const std::vector<double>& ref) {
  double e = 0, s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(a[i] - ref[i]);
    e = std::isnan(d) ? INFINITY : std::max(e, d);
    s = std::max(s, std::fabs(ref[i]));
  }
  return e / std::max(s, 1e-30);
}

AttentionTensor tensor(const DeviceBuffer& b, const Problem& pb, int heads) {
  AttentionTensor t;
  t.ptr = b.get();
  t.row_stride = static_cast<std::int64_t>(heads) * pb.hd;
  t.head_stride = pb.hd;
  t.batch_stride = pb.packed ? 0 : t.row_stride * pb.lens[0];
  return t;
}

struct Run {
  std::vector<double> out, lse, dq, dk, dv;
  std::vector<std::uint16_t> dq_bits, dk_bits, dv_bits;
};

// Forward and backward on the device.
Run run_device(const Problem& pb, const std::vector<double>& q, const std::vector<double>& k,
               const std::vector<double>& v, const std::vector<double>& dout) {
  DeviceBuffer dq_in(to_bf16(q)), dk_in(to_bf16(k)), dv_in(to_bf16(v)), ddo(to_bf16(dout));
  DeviceBuffer out(q.size() * 2), lse(static_cast<std::size_t>(pb.hq * pb.tokens()) * 4);
  DeviceBuffer gq(q.size() * 2), gk(k.size() * 2), gv(v.size() * 2);
  for (DeviceBuffer* b : {&out, &lse, &gq, &gk, &gv}) b->poison();
  std::vector<std::int32_t> cu_host;
  for (std::int64_t o : pb.offsets()) cu_host.push_back(static_cast<std::int32_t>(o));
  DeviceBuffer cu(cu_host);
  AttentionParams p;
  p.q = tensor(dq_in, pb, pb.hq), p.k = tensor(dk_in, pb, pb.hkv), p.v = tensor(dv_in, pb, pb.hkv);
  p.out = tensor(out, pb, pb.hq);
  p.lse = static_cast<float*>(lse.get());
  p.lse_batch_stride = pb.packed ? 0 : static_cast<std::int64_t>(pb.hq) * pb.lens[0];
  p.lse_head_stride = pb.packed ? pb.tokens() : pb.lens[0];
  p.batch = static_cast<int>(pb.lens.size());
  p.seqlen = *std::max_element(pb.lens.begin(), pb.lens.end());
  p.heads = pb.hq, p.kv_heads = pb.hkv, p.head_dim = pb.hd;
  p.cu_seqlens = pb.packed ? static_cast<const std::int32_t*>(cu.get()) : nullptr;
  p.causal = pb.causal, p.window = pb.window;
  hone::kernels::attention_fwd(p, nullptr);
  AttentionBwdParams bp;
  bp.fwd = p;
  bp.dout = tensor(ddo, pb, pb.hq);
  bp.dq = tensor(gq, pb, pb.hq), bp.dk = tensor(gk, pb, pb.hkv), bp.dv = tensor(gv, pb, pb.hkv);
  DeviceBuffer ws(hone::kernels::attention_bwd_workspace_bytes(p));
  bp.workspace = ws.get(), bp.workspace_bytes = ws.bytes();
  hone::kernels::attention_bwd(bp, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  Run r;
  r.out = from_bf16(out.to_host<std::uint16_t>());
  const std::vector<float> l = lse.to_host<float>();
  r.lse.assign(l.begin(), l.end());
  r.dq_bits = gq.to_host<std::uint16_t>(), r.dk_bits = gk.to_host<std::uint16_t>();
  r.dv_bits = gv.to_host<std::uint16_t>();
  r.dq = from_bf16(r.dq_bits), r.dk = from_bf16(r.dk_bits), r.dv = from_bf16(r.dv_bits);
  return r;
}

void check_problem(const Problem& pb) {
  CAPTURE(pb.lens.size(), pb.lens[0], pb.packed, pb.hq, pb.hkv, pb.hd, pb.causal, pb.window);
  const std::int64_t n = pb.tokens();
  const std::vector<double> q = random_values(n * pb.hq * pb.hd, pb.seed),
                            k = random_values(n * pb.hkv * pb.hd, pb.seed + 1),
                            v = random_values(n * pb.hkv * pb.hd, pb.seed + 2),
                            dout = random_values(n * pb.hq * pb.hd, pb.seed + 3);
  const Run r = run_device(pb, q, k, v, dout);
  const std::vector<std::int64_t> cu = pb.offsets();
  hone::cpu::AttentionShape sh;
  sh.cu_seqlens = cu.data();
  sh.n_seqs = static_cast<std::int64_t>(pb.lens.size());
  sh.hq = pb.hq, sh.hkv = pb.hkv, sh.hd = pb.hd;
  sh.lse_seq_mul = pb.packed ? 1 : pb.hq;
  sh.lse_head_stride = pb.packed ? n : pb.lens[0];
  sh.scale = 1.0 / std::sqrt(static_cast<double>(pb.hd));
  sh.causal = pb.causal, sh.window = pb.window;
  std::vector<double> out(q.size()), lse(r.lse.size()), dq(q.size()), dk(k.size()), dv(v.size());
  hone::cpu::attention_fwd<double>(q.data(), k.data(), v.data(), sh, out.data(), lse.data());
  hone::cpu::attention_bwd<double>(dout.data(), q.data(), k.data(), v.data(), out.data(),
                                   lse.data(), sh, dq.data(), dk.data(), dv.data());
  // bf16 outputs of f32 math: a few bf16 ulps of the largest value.
  CHECK(relative_error(r.out, out) <= 1.5e-2);
  CHECK(relative_error(r.lse, lse) <= 1e-4);
  CHECK(relative_error(r.dq, dq) <= 2e-2);
  CHECK(relative_error(r.dk, dk) <= 2e-2);
  CHECK(relative_error(r.dv, dv) <= 2e-2);
}

Problem padded(int b, int t, int hq, int hkv, int hd, bool causal) {
  Problem pb;
  pb.lens.assign(static_cast<std::size_t>(b), t);
  pb.hq = hq, pb.hkv = hkv, pb.hd = hd, pb.causal = causal;
  pb.seed = static_cast<std::uint64_t>(t + hd + hq);
  return pb;
}

}  // namespace

TEST_CASE("attention forward and backward on the device match engine/cpu", "[gpu][attention]") {
  const int ratios[] = {1, 2, 4, 8};
  int which = 0;
  for (int hd : {64, 96, 128})
    for (int t : {1, 17, 64, 129, 1000})
      for (bool causal : {true, false}) {
        const int ratio = ratios[which++ % 4];
        check_problem(padded(2, t, ratio * 2, 2, hd, causal));
      }
  Problem window = padded(1, 700, 4, 2, 128, true);
  window.window = 100;
  check_problem(window);
  Problem varlen;
  varlen.packed = true;
  varlen.lens = {1, 5, 64, 33, 0, 513};
  varlen.hq = 8, varlen.hkv = 2, varlen.hd = 128;
  check_problem(varlen);
  varlen.causal = false, varlen.hd = 64;
  check_problem(varlen);
}

TEST_CASE("attention backward on the device is bitwise reproducible", "[gpu][attention]") {
  Problem pb = padded(2, 777, 8, 2, 128, true);
  const std::int64_t n = pb.tokens();
  const std::vector<double> q = random_values(n * 8 * 128, 1), k = random_values(n * 2 * 128, 2),
                            v = random_values(n * 2 * 128, 3), dout = random_values(n * 8 * 128, 4);
  const Run a = run_device(pb, q, k, v, dout), b = run_device(pb, q, k, v, dout);
  CHECK(a.dq_bits == b.dq_bits);
  CHECK(a.dk_bits == b.dk_bits);
  CHECK(a.dv_bits == b.dv_bits);
}

TEST_CASE("attention decode on the device matches engine/cpu", "[gpu][attention]") {
  const int B = 3, cap = 3000, q_len = 2, hq = 8, hkv = 2, hd = 128;
  const std::vector<int> lens = {3000, 517, 2};
  const std::vector<double> q = random_values(B * q_len * hq * hd, 11),
                            k = random_values(static_cast<std::int64_t>(B) * cap * hkv * hd, 12),
                            v = random_values(static_cast<std::int64_t>(B) * cap * hkv * hd, 13);
  DeviceBuffer dq(to_bf16(q)), dk(to_bf16(k)), dv(to_bf16(v)), out(q.size() * 2);
  DeviceBuffer cache_lens(std::vector<std::int32_t>(lens.begin(), lens.end()));
  out.poison();
  auto t = [](const DeviceBuffer& buf, int heads, int rows) {
    AttentionTensor x;
    x.ptr = buf.get(), x.row_stride = heads * hd, x.head_stride = hd;
    x.batch_stride = static_cast<std::int64_t>(rows) * heads * hd;
    return x;
  };
  AttentionDecodeParams p;
  p.q = t(dq, hq, q_len), p.k = t(dk, hkv, cap), p.v = t(dv, hkv, cap), p.out = t(out, hq, q_len);
  p.batch = B, p.q_len = q_len, p.kv_capacity = cap;
  p.cache_seqlens = static_cast<const std::int32_t*>(cache_lens.get());
  p.heads = hq, p.kv_heads = hkv, p.head_dim = hd;
  DeviceBuffer ws(hone::kernels::attention_decode_workspace_bytes(p));
  p.workspace = ws.get(), p.workspace_bytes = ws.bytes();
  hone::kernels::attention_decode(p, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<double> got = from_bf16(out.to_host<std::uint16_t>());
  std::vector<double> g, want;
  for (int b = 0; b < B; ++b) {
    const int L = lens[b];
    std::vector<double> qq(static_cast<std::size_t>(L) * hq * hd, 0.25);
    std::copy_n(q.begin() + b * q_len * hq * hd, q_len * hq * hd, qq.begin() + (L - q_len) * hq * hd);
    const std::vector<double> kk(k.begin() + static_cast<std::int64_t>(b) * cap * hkv * hd,
                                 k.begin() + (static_cast<std::int64_t>(b) * cap + L) * hkv * hd);
    const std::vector<double> vv(v.begin() + static_cast<std::int64_t>(b) * cap * hkv * hd,
                                 v.begin() + (static_cast<std::int64_t>(b) * cap + L) * hkv * hd);
    const std::vector<std::int64_t> cu = {0, L};
    hone::cpu::AttentionShape sh;
    sh.cu_seqlens = cu.data(), sh.n_seqs = 1, sh.hq = hq, sh.hkv = hkv, sh.hd = hd;
    sh.lse_seq_mul = 1, sh.lse_head_stride = L, sh.scale = 1.0 / std::sqrt(double(hd));
    std::vector<double> o(qq.size()), l(static_cast<std::size_t>(hq) * L);
    hone::cpu::attention_fwd<double>(qq.data(), kk.data(), vv.data(), sh, o.data(), l.data());
    want.insert(want.end(), o.begin() + (L - q_len) * hq * hd, o.end());
    g.insert(g.end(), got.begin() + b * q_len * hq * hd, got.begin() + (b + 1) * q_len * hq * hd);
  }
  CHECK(relative_error(g, want) <= 1.5e-2);
}

TEST_CASE("attention TFLOP/s at a training shape (for the record)", "[gpu][attention]") {
  // Batch 4 × 4096 tokens, 16 heads of 128 (8 kv heads), causal and not.
  Problem pb = padded(4, 4096, 16, 8, 128, false);
  const std::int64_t n = pb.tokens();
  DeviceBuffer q(to_bf16(random_values(n * 16 * 128, 1))), k(to_bf16(random_values(n * 8 * 128, 2))),
      v(to_bf16(random_values(n * 8 * 128, 3))), dout(to_bf16(random_values(n * 16 * 128, 4)));
  DeviceBuffer out(q.bytes()), lse(static_cast<std::size_t>(n) * 16 * 4), gq(q.bytes()),
      gk(k.bytes()), gv(v.bytes());
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (bool causal : {false, true}) {
    pb.causal = causal;
    AttentionParams p;
    p.q = tensor(q, pb, 16), p.k = tensor(k, pb, 8), p.v = tensor(v, pb, 8), p.out = tensor(out, pb, 16);
    p.lse = static_cast<float*>(lse.get()), p.lse_batch_stride = 16 * 4096, p.lse_head_stride = 4096;
    p.batch = 4, p.seqlen = 4096, p.heads = 16, p.kv_heads = 8, p.head_dim = 128, p.causal = causal;
    AttentionBwdParams bp;
    bp.fwd = p;
    bp.dout = tensor(dout, pb, 16), bp.dq = tensor(gq, pb, 16), bp.dk = tensor(gk, pb, 8),
    bp.dv = tensor(gv, pb, 8);
    DeviceBuffer ws(hone::kernels::attention_bwd_workspace_bytes(p));
    bp.workspace = ws.get(), bp.workspace_bytes = ws.bytes();
    auto time_ms = [&](auto&& fn) {
      fn();
      CUDA_CHECK(cudaEventRecord(start, nullptr));
      for (int i = 0; i < 5; ++i) fn();
      CUDA_CHECK(cudaEventRecord(stop, nullptr));
      CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      return ms / 5;
    };
    const double fwd_flop = 4.0 * 4 * 4096.0 * 4096.0 * 128 * 16 / (causal ? 2 : 1);
    const float f = time_ms([&] { hone::kernels::attention_fwd(p, nullptr); });
    const float b = time_ms([&] { hone::kernels::attention_bwd(bp, nullptr); });
    std::printf("attention hd 128, 4×4096, causal %d: forward %.1f TFLOP/s, backward %.1f TFLOP/s\n",
                causal, fwd_flop / f * 1e-9, 2.5 * fwd_flop / b * 1e-9);
    const std::vector<std::uint16_t> o = out.to_host<std::uint16_t>();
    CHECK(std::all_of(o.begin(), o.end(), [](std::uint16_t x) { return std::isfinite(bf16_value(x)); }));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

#endif  // HONE_WITH_CUDA

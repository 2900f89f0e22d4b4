// Sampling, one block per row, reproducing engine/cpu/sampling's rule exactly: the weights are
// integers (24-bit fixed point from a shared exp built on correctly rounded operations), so
// every sum is exact whatever the order. The kept set of top-k / top-p is a prefix of the
// candidate order, found as a threshold key by radix selection from the top digit down
// (per-digit counts or masses in shared memory, integer atomics); the draw walks the kept
// tokens in index order: each thread owns a contiguous slice, an exclusive scan of the slice
// masses says which thread's slice holds the target, and that thread walks it.
#include <cstdint>

#include "cpu/sampling.h"
#include "hone/error.h"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"
#include "kernels/sampling/sampling.h"

HONE_KERNELS_BEGIN

namespace {

using bf16_t = __nv_bfloat16;
using u64 = unsigned long long;  // the type of the 64-bit atomics and shuffles

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

struct SampleShared {
  u64 hist[256];
  u64 slice[kThreads];
  float best_x[kWarps];
  std::int64_t best_i[kWarps];
  u64 warp_sum[kWarps];
  u64 prefix, want;
  float max_x;
  std::int64_t argmax;
};

struct RowConfig {
  float inv_t;
  bool greedy;
  std::int64_t top_k;
  std::uint64_t top_p;
};

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16_t x) { return __bfloat162float(x); }

template <class T>
struct Row {
  const T* x;
  std::int64_t vocab;
  int bits;
  __device__ __forceinline__ float at(std::int64_t v) const {
    return ::hone::cpu::sampling_canonical(to_float(x[v]));
  }
  __device__ __forceinline__ std::uint64_t key(float xv, std::int64_t v) const {
    return ::hone::cpu::sampling_key(xv, v, vocab, bits);
  }
};

// Σ over the block (integers: any order gives the same value); every thread gets it.
__device__ u64 block_sum(u64 x, SampleShared* sh) {
  for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  if (threadIdx.x % 32 == 0) sh->warp_sum[threadIdx.x / 32] = x;
  HONE_SYNC("sample.sum_warps");
  u64 total = 0;
  for (int w = 0; w < kWarps; ++w) total += sh->warp_sum[w];
  HONE_SYNC("sample.sum_read");  // before warp_sum is reused
  return total;
}

// The largest canonical logit and its lowest index, in shared memory for every thread.
template <class T>
__device__ void block_argmax(const Row<T>& r, SampleShared* sh) {
  // A thread starts at (−inf, its own first index): an all −inf row still yields index 0, and
  // a thread past the vocabulary never wins a tie against a real (lower) index.
  float bx = -INFINITY;
  std::int64_t bi = threadIdx.x;
  for (std::int64_t v = threadIdx.x; v < r.vocab; v += blockDim.x) {
    const float xv = r.at(v);
    if (xv > bx) bx = xv, bi = v;
  }
  for (int off = 16; off > 0; off /= 2) {
    const float ox = __shfl_xor_sync(0xffffffffu, bx, off);
    const std::int64_t oi = __shfl_xor_sync(0xffffffffu, bi, off);
    if (ox > bx || (ox == bx && oi < bi)) bx = ox, bi = oi;
  }
  if (threadIdx.x % 32 == 0) {
    sh->best_x[threadIdx.x / 32] = bx;
    sh->best_i[threadIdx.x / 32] = bi;
  }
  HONE_SYNC("sample.argmax_warps");
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w)
      if (sh->best_x[w] > bx || (sh->best_x[w] == bx && sh->best_i[w] < bi))
        bx = sh->best_x[w], bi = sh->best_i[w];
    sh->max_x = bx;
    sh->argmax = bi;
  }
  HONE_SYNC("sample.argmax");
}

// The largest key K with Σ weight(keys ≥ K, key ≥ lower) ≥ want, by 8-bit digits from the top.
// weight is 1 (counting) or the fixed-point q.
template <class T>
__device__ std::uint64_t radix_select(const Row<T>& r, float m, float inv_t, bool mass,
                                      std::uint64_t lower, std::uint64_t want, SampleShared* sh) {
  const int top = (32 + r.bits + 7) / 8 * 8;
  std::uint64_t prefix = 0;
  for (int shift = top - 8; shift >= 0; shift -= 8) {
    sh->hist[threadIdx.x] = 0;  // blockDim.x == 256 == digits
    HONE_SYNC("sample.hist_zero");
    for (std::int64_t v = threadIdx.x; v < r.vocab; v += blockDim.x) {
      const float xv = r.at(v);
      const std::uint64_t key = r.key(xv, v);
      if (key < lower) continue;
      if (shift + 8 < 64 && (key >> (shift + 8)) != (prefix >> (shift + 8))) continue;
      const u64 w = mass ? ::hone::cpu::sampling_weight(xv, m, inv_t) : 1u;
      if (w) atomicAdd(&sh->hist[(key >> shift) & 0xffu], w);
    }
    HONE_SYNC("sample.hist_count");
    if (threadIdx.x == 0) {
      u64 acc = 0;
      int d = 255;
      for (; d > 0; --d) {
        if (acc + sh->hist[d] >= want) break;
        acc += sh->hist[d];
      }
      sh->prefix = prefix | (static_cast<std::uint64_t>(d) << shift);
      sh->want = want - acc;
    }
    HONE_SYNC("sample.digit");
    prefix = sh->prefix;
    want = sh->want;
  }
  return prefix;
}

template <class T>
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleParams p, RowConfig c) {
  HONE_DYNAMIC_SMEM(SampleShared, sh);
  const std::int64_t row = blockIdx.x;
  const Row<T> r{static_cast<const T*>(p.logits) + row * p.vocab, p.vocab,
                 ::hone::cpu::sampling_index_bits(p.vocab)};
  block_argmax(r, sh);
  const float m = sh->max_x;
  if (c.greedy || c.top_k == 1 || !(m > -INFINITY && m < INFINITY)) {
    if (threadIdx.x == 0) p.out[row] = sh->argmax;
    return;
  }
  auto weight = [&](float xv) { return ::hone::cpu::sampling_weight(xv, m, c.inv_t); };

  // Kept: key ≥ lower (0 keeps everything).
  std::uint64_t lower = 0;
  if (c.top_k > 0 && c.top_k < p.vocab)
    lower = radix_select(r, m, c.inv_t, false, 0, static_cast<std::uint64_t>(c.top_k), sh);
  if (c.top_p < (std::uint64_t{1} << 32)) {
    u64 part = 0;
    for (std::int64_t v = threadIdx.x; v < p.vocab; v += blockDim.x) {
      const float xv = r.at(v);
      if (r.key(xv, v) >= lower) part += weight(xv);
    }
    const std::uint64_t need = ::hone::cpu::sampling_top_p_mass(block_sum(part, sh), c.top_p);
    lower = radix_select(r, m, c.inv_t, true, lower, need, sh);
  }

  // Each thread's contiguous slice of the vocabulary, its kept mass, and the exclusive scan.
  const std::int64_t per = (p.vocab + blockDim.x - 1) / blockDim.x;
  const std::int64_t lo = threadIdx.x * per;
  const std::int64_t hi = lo + per < p.vocab ? lo + per : p.vocab;
  u64 mine = 0;
  for (std::int64_t v = lo; v < hi; ++v) {
    const float xv = r.at(v);
    if (r.key(xv, v) >= lower) mine += weight(xv);
  }
  sh->slice[threadIdx.x] = mine;
  HONE_SYNC("sample.slices");
  if (threadIdx.x == 0) {
    u64 run = 0;
    for (unsigned t = 0; t < blockDim.x; ++t) {
      const u64 s = sh->slice[t];
      sh->slice[t] = run;
      run += s;
    }
    sh->want = ::hone::cpu::sampling_mul_shift32(
        run, ::hone::cpu::sampling_word(p.seed, p.offset, row));
  }
  HONE_SYNC("sample.scan");
  const u64 target = sh->want;
  u64 run = sh->slice[threadIdx.x];
  if (mine == 0 || target < run || target >= run + mine) return;
  for (std::int64_t v = lo; v < hi; ++v) {
    const float xv = r.at(v);
    if (r.key(xv, v) < lower) continue;
    run += weight(xv);
    if (run > target) {
      p.out[row] = v;
      return;
    }
  }
}

}  // namespace

void sample(const SampleParams& p, cudaStream_t stream) {
  constexpr const char* op = "sample";
  HONE_CHECK(p.rows >= 0 && p.rows <= 0x7fffffff, op, "rows = ", p.rows,
             "; expected in [0, 2^31 - 1]");
  HONE_CHECK(p.vocab >= 1 && p.vocab < (std::int64_t{1} << 31), op, "vocab = ", p.vocab,
             "; expected in [1, 2^31)");
  HONE_CHECK(p.temperature >= 0.0 && p.temperature <= 1e30, op, "temperature = ",
             p.temperature, "; expected a finite value >= 0");
  HONE_CHECK(p.top_k >= 0, op, "top_k = ", p.top_k, "; expected >= 0 (0: off)");
  HONE_CHECK(p.top_p > 0.0 && p.top_p <= 1.0, op, "top_p = ", p.top_p,
             "; expected in (0, 1] (1: off)");
  if (p.rows == 0) return;
  HONE_CHECK(p.logits != nullptr, op, "logits is null");
  HONE_CHECK(p.out != nullptr, op, "out is null");
  RowConfig c;
  c.greedy = p.temperature == 0.0;
  c.inv_t = c.greedy ? 1.0f : ::hone::cpu::sampling_inv_temperature(p.temperature);
  HONE_CHECK(c.greedy || std::isfinite(c.inv_t), op, "temperature = ", p.temperature,
             "; 1 / temperature overflows f32");
  c.top_k = p.top_k;
  c.top_p = ::hone::cpu::sampling_top_p_fixed(p.top_p);
  const dim3 grid(static_cast<unsigned>(p.rows));
  if (p.logits_type == SampleLogitsType::f32)
    launch(sample_kernel<float>, grid, dim3(kThreads), sizeof(SampleShared), stream, p, c);
  else
    launch(sample_kernel<bf16_t>, grid, dim3(kThreads), sizeof(SampleShared), stream, p, c);
  check_launch(op);
}

HONE_KERNELS_END

// Softmax cross-entropy over the vocabulary: one block per row. The forward streams the row in
// chunks of blockDim × (one 16-byte pack per thread), keeping a running (max, sum of exp) per
// thread (online log-sum-exp), then merges the threads' pairs in a fixed tree; the backward
// (or the fused forward) streams the row again and writes g·w·(softmax − onehot).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "hone/error.h"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"
#include "kernels/loss/loss.h"

HONE_KERNELS_BEGIN

namespace {

constexpr int kThreads = 256;
constexpr int kMaxWarps = kThreads / 32;

struct LossShared {
  float m[kMaxWarps];
  float s[kMaxWarps];
};

using bf16_t = __nv_bfloat16;

// Elements in one 16-byte load.
template <class T>
constexpr int kPack = 16 / static_cast<int>(sizeof(T));

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16_t x) { return __bfloat162float(x); }
__device__ __forceinline__ void store_one(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_one(bf16_t* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ std::uint32_t bf16_pair(float lo, float hi) {
  return static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

// Reads kPack<T> elements from a 16-byte aligned address.
template <class T>
__device__ __forceinline__ void load_pack(const T* p, float* out) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const std::uint32_t w[4] = {u.x, u.y, u.z, u.w};
  if constexpr (std::is_same_v<T, float>) {
    for (int i = 0; i < 4; ++i) out[i] = __uint_as_float(w[i]);
  } else {
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(w[i] << 16);
      out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
}

// Writes N values (N = 4 or 8) to an address aligned to min(16, N·sizeof(D)) bytes.
template <class D, int N>
__device__ __forceinline__ void store_n(D* p, const float* v) {
  if constexpr (std::is_same_v<D, float>) {
    for (int i = 0; i < N; i += 4) {
      float4 f;
      f.x = v[i], f.y = v[i + 1], f.z = v[i + 2], f.w = v[i + 3];
      *reinterpret_cast<float4*>(p + i) = f;
    }
  } else if constexpr (N == 8) {
    uint4 u;
    u.x = bf16_pair(v[0], v[1]), u.y = bf16_pair(v[2], v[3]);
    u.z = bf16_pair(v[4], v[5]), u.w = bf16_pair(v[6], v[7]);
    *reinterpret_cast<uint4*>(p) = u;
  } else {
    uint2 u;
    u.x = bf16_pair(v[0], v[1]), u.y = bf16_pair(v[2], v[3]);
    *reinterpret_cast<uint2*>(p) = u;
  }
}

__device__ __forceinline__ bool aligned(const void* p, int bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % static_cast<std::uintptr_t>(bytes) == 0;
}

// A row as [0, head) scalar, then `packs` 16-byte packs of the source, then a scalar tail.
struct RowSplit {
  std::int64_t head, packs;
};
template <class T>
__device__ __forceinline__ RowSplit split_row(const T* x, std::int64_t vocab) {
  const std::int64_t misalign = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(x) % 16);
  std::int64_t head = misalign == 0 ? 0 : (16 - misalign) / static_cast<std::int64_t>(sizeof(T));
  if (head > vocab) head = vocab;
  return RowSplit{head, (vocab - head) / kPack<T>};
}

// Running (max, Σ exp(x − max)) of one thread; −inf elements add nothing.
struct Lse {
  float m = -INFINITY;
  float s = 0.0f;
  __device__ __forceinline__ void add(float x) {
    if (x == -INFINITY) return;
    if (x > m) {
      s = s * expf(m - x) + 1.0f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  __device__ __forceinline__ void merge(float m2, float s2) {
    const float mm = fmaxf(m, m2);
    if (mm == -INFINITY) return;
    s = s * expf(m - mm) + s2 * expf(m2 - mm);
    m = mm;
  }
};

// The row's log-sum-exp, the same value in every thread: warps by butterfly, then the warp
// results in warp order. Ends with every read of the row done (a barrier), so a fused
// in-place gradient may overwrite the logits afterwards.
__device__ float block_lse(Lse t, LossShared* sh) {
  for (int off = 16; off > 0; off /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, t.m, off);
    const float s2 = __shfl_xor_sync(0xffffffffu, t.s, off);
    t.merge(m2, s2);
  }
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  if (lane == 0) {
    sh->m[warp] = t.m;
    sh->s[warp] = t.s;
  }
  HONE_SYNC("ce.lse_partials");
  Lse all;
  const int warps = static_cast<int>(blockDim.x) / 32;
  for (int w = 0; w < warps; ++w) all.merge(sh->m[w], sh->s[w]);
  return all.m == -INFINITY ? -INFINITY : all.m + logf(all.s);
}

template <class T>
__device__ Lse thread_lse(const T* x, std::int64_t vocab) {
  Lse t;
  const RowSplit sp = split_row(x, vocab);
  const std::int64_t tid = threadIdx.x, step = blockDim.x;
  for (std::int64_t i = tid; i < sp.head; i += step) t.add(to_float(x[i]));
  for (std::int64_t k = tid; k < sp.packs; k += step) {
    float v[kPack<T>];
    load_pack(x + sp.head + k * kPack<T>, v);
    float pm = v[0];
    for (int j = 1; j < kPack<T>; ++j) pm = fmaxf(pm, v[j]);
    if (pm == -INFINITY) continue;
    if (pm > t.m) {
      t.s *= expf(t.m - pm);
      t.m = pm;
    }
    for (int j = 0; j < kPack<T>; ++j)
      if (v[j] != -INFINITY) t.s += expf(v[j] - t.m);
  }
  for (std::int64_t i = sp.head + sp.packs * kPack<T> + tid; i < vocab; i += step)
    t.add(to_float(x[i]));
  return t;
}

// dx[v] = gw · (exp(x[v] − lse) − [v == t]); zero_row writes zeros, nan_row NaN.
template <class T, class D>
__device__ void write_grad(const T* x, D* dx, std::int64_t vocab, float lse, float gw,
                           std::int64_t t, bool zero_row, bool nan_row) {
  auto grad = [&](float xv, std::int64_t v) {
    if (zero_row) return 0.0f;
    if (nan_row) return NAN;
    const float p = expf(xv - lse);
    return gw * (v == t ? p - 1.0f : p);
  };
  const RowSplit sp = split_row(x, vocab);
  constexpr int kN = kPack<T>;
  constexpr int kStoreAlign = kN * static_cast<int>(sizeof(D)) < 16 ? kN * static_cast<int>(sizeof(D)) : 16;
  const bool vec = aligned(dx + sp.head, kStoreAlign);
  const std::int64_t tid = threadIdx.x, step = blockDim.x;
  const std::int64_t body_end = vec ? sp.head + sp.packs * kN : sp.head;
  for (std::int64_t i = tid; i < sp.head; i += step) store_one(dx + i, grad(to_float(x[i]), i));
  if (vec) {
    for (std::int64_t k = tid; k < sp.packs; k += step) {
      const std::int64_t base = sp.head + k * kN;
      float v[kN];
      load_pack(x + base, v);
      for (int j = 0; j < kN; ++j) v[j] = grad(v[j], base + j);
      store_n<D, kN>(dx + base, v);
    }
  }
  for (std::int64_t i = body_end + tid; i < vocab; i += step)
    store_one(dx + i, grad(to_float(x[i]), i));
}

// The row's target, whether it is ignored, and whether it is out of range.
template <class I>
__device__ __forceinline__ std::int64_t row_target(const CrossEntropyParams& p, std::int64_t n,
                                                   bool* ignored, bool* bad) {
  const std::int64_t t = static_cast<std::int64_t>(static_cast<const I*>(p.targets)[n]);
  *ignored = t == p.ignore_index;
  *bad = !*ignored && (t < 0 || t >= p.vocab);
  return t;
}

__device__ __forceinline__ float row_gw(const CrossEntropyParams& p, std::int64_t n) {
  const float g = p.dlosses ? p.dlosses[n] : p.dloss;
  return p.weights ? g * p.weights[n] : g;
}

template <class T, class D, class I>
__global__ void __launch_bounds__(kThreads) ce_fwd_kernel(CrossEntropyParams p) {
  HONE_DYNAMIC_SMEM(LossShared, sh);
  const std::int64_t n = blockIdx.x;
  const T* x = static_cast<const T*>(p.logits) + n * p.vocab;
  bool ignored = false, bad = false;
  const std::int64_t t = row_target<I>(p, n, &ignored, &bad);
  // x[t] is read before the barrier inside block_lse: a fused in-place gradient overwrites it.
  const float xt = (threadIdx.x == 0 && !ignored && !bad) ? to_float(x[t]) : 0.0f;
  const float lse = block_lse(thread_lse(x, p.vocab), sh);
  if (threadIdx.x == 0) {
    p.lse[n] = lse;
    const float w = p.weights ? p.weights[n] : 1.0f;
    p.losses[n] = ignored ? 0.0f : (bad ? NAN : w * (lse - xt));
  }
  if (p.dlogits)
    write_grad(x, static_cast<D*>(p.dlogits) + n * p.vocab, p.vocab, lse, row_gw(p, n), t,
               ignored, bad);
}

template <class T, class D, class I>
__global__ void __launch_bounds__(kThreads) ce_bwd_kernel(CrossEntropyParams p) {
  const std::int64_t n = blockIdx.x;
  bool ignored = false, bad = false;
  const std::int64_t t = row_target<I>(p, n, &ignored, &bad);
  write_grad(static_cast<const T*>(p.logits) + n * p.vocab,
             static_cast<D*>(p.dlogits) + n * p.vocab, p.vocab, p.lse[n], row_gw(p, n), t,
             ignored, bad);
}

void check_common(const char* op, const CrossEntropyParams& p) {
  HONE_CHECK(p.rows >= 0, op, "rows = ", p.rows, " is negative");
  HONE_CHECK(p.rows <= 0x7fffffff, op, "rows = ", p.rows, " exceeds the grid limit 2^31 - 1");
  HONE_CHECK(p.vocab >= 1, op, "vocab = ", p.vocab, "; expected at least one class");
  if (p.rows == 0) return;
  HONE_CHECK(p.logits != nullptr, op, "logits is null");
  HONE_CHECK(p.targets != nullptr, op, "targets is null");
  HONE_CHECK(p.dlogits == nullptr || p.dlogits != p.logits || p.dlogits_type == p.logits_type,
             op, "dlogits aliases logits with a different dtype");
}

// Calls f(T{}, D{}, I{}) for the dtypes of p.
template <class F>
void dispatch(const CrossEntropyParams& p, F&& f) {
  auto with_index = [&](auto t, auto d) {
    if (p.target_type == LossIndexType::i32) f(t, d, std::int32_t{});
    else f(t, d, std::int64_t{});
  };
  auto with_out = [&](auto t) {
    if (p.dlogits_type == LossType::f32) with_index(t, float{});
    else with_index(t, bf16_t{});
  };
  if (p.logits_type == LossType::f32) with_out(float{});
  else with_out(bf16_t{});
}

}  // namespace

void cross_entropy_fwd(const CrossEntropyParams& p, cudaStream_t stream) {
  constexpr const char* op = "cross_entropy_fwd";
  check_common(op, p);
  if (p.rows == 0) return;
  HONE_CHECK(p.losses != nullptr, op, "losses is null");
  HONE_CHECK(p.lse != nullptr, op, "lse is null");
  dispatch(p, [&](auto t, auto d, auto i) {
    using T = decltype(t);
    using D = decltype(d);
    using I = decltype(i);
    launch(ce_fwd_kernel<T, D, I>, dim3(static_cast<unsigned>(p.rows)), dim3(kThreads),
           sizeof(LossShared), stream, p);
  });
  check_launch(op);
}

void cross_entropy_bwd(const CrossEntropyParams& p, cudaStream_t stream) {
  constexpr const char* op = "cross_entropy_bwd";
  check_common(op, p);
  if (p.rows == 0) return;
  HONE_CHECK(p.lse != nullptr, op, "lse is null");
  HONE_CHECK(p.dlogits != nullptr, op, "dlogits is null");
  dispatch(p, [&](auto t, auto d, auto i) {
    using T = decltype(t);
    using D = decltype(d);
    using I = decltype(i);
    launch(ce_bwd_kernel<T, D, I>, dim3(static_cast<unsigned>(p.rows)), dim3(kThreads), 0,
           stream, p);
  });
  check_launch(op);
}

HONE_KERNELS_END

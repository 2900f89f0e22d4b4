// Pieces shared by the norm kernels (norm_fwd.cu, norm_bwd.cu): bf16 loads and stores, the row
// layout (threads per row, elements per thread) and the row-wide sum.
//
// Layout: a block is blockDim.y rows of blockDim.x threads (a power of two, 32 to 512). Thread
// tx of a row owns the vectors tx, tx + blockDim.x, ... (kPer of them, kVec bf16 elements each),
// so a row stays in registers between its reduction and its output.
#pragma once
#include <cstdint>
#include <cstring>

#include "hone/error.h"
#include "kernels/common/bf16.cuh"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"
#include "kernels/norm/norm.h"

HONE_KERNELS_BEGIN
namespace norm_detail {

constexpr int kMaxRowsPerBlock = 4;   // rows share a block when a row needs fewer than 128 threads
constexpr int kMaxWarpsPerRow = 32;
constexpr int kMaxSums = 2;           // values reduced together (LayerNorm backward: Σg, Σg·x̂)

// Cross-warp partial sums, double-buffered by row parity so that one barrier per reduction is
// enough: a warp can only write buffer b again after the next barrier, which every reader of
// b's previous contents has passed.
struct RowSumShared {
  float part[2][kMaxRowsPerBlock][kMaxWarpsPerRow][kMaxSums];
};

using namespace bf16v;

// kVec bf16 elements as loaded: one 16-byte vector or one element.
template <int kVec>
struct Packed;
template <>
struct Packed<8> {
  uint4 u;
};
template <>
struct Packed<1> {
  unsigned short u;
};

template <int kVec>
__device__ __forceinline__ Packed<kVec> load_packed(const unsigned short* p) {
  Packed<kVec> r;
  if constexpr (kVec == 8) {
#if defined(__CUDACC__)
    r.u = *reinterpret_cast<const uint4*>(p);
#else
    std::memcpy(&r.u, p, sizeof r.u);  // no type punning under g++
#endif
  } else {
    r.u = *p;
  }
  return r;
}

template <int kVec>
__device__ __forceinline__ void unpack(const Packed<kVec>& r, float (&f)[kVec]) {
  if constexpr (kVec == 8) {
    widen8(r.u, f);
  } else {
    f[0] = bf16_to_float(r.u);
  }
}

// Sums v over the threads of this row (threadIdx.y) into every one of them, in a fixed order:
// a butterfly within each warp (both partners add the same two values, so all lanes agree
// bitwise), then the warps' sums in warp order. Every thread of the block must call it, the
// same number of times (it may hold a barrier); `buf` alternates between consecutive calls.
template <int N>
__device__ __forceinline__ void row_sum(float (&v)[N], RowSumShared* sh, int buf) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1)
#pragma unroll
    for (int i = 0; i < N; ++i) v[i] += __shfl_xor_sync(0xffffffffu, v[i], off);
  if (blockDim.x > 32) {  // the same for the whole block
    const int warp = threadIdx.x / 32;
    if (threadIdx.x % 32 == 0)
#pragma unroll
      for (int i = 0; i < N; ++i) sh->part[buf][threadIdx.y][warp][i] = v[i];
    HONE_SYNC("norm_row_sum");
    const int warps = blockDim.x / 32;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      float s = 0.0f;
      for (int w = 0; w < warps; ++w) s += sh->part[buf][threadIdx.y][w][i];
      v[i] = s;
    }
  }
}

// Threads per row and vectors per thread for a row of `dim` elements in vectors of `vec`.
struct RowConfig {
  int vec = 1;
  int per = 1;  // vectors per thread
  int tpr = 32;  // threads per row: a power of two, 32 to kMaxThreadsPerRow
  int rpb = 1;   // rows per block: 128 / tpr for short rows, else 1
};

// Threads a row is spread over at most: every kernel is compiled for blocks of up to this many
// threads (__launch_bounds__), which leaves ptxas up to 128 registers a thread.
constexpr int kMaxThreadsPerRow = 512;

// The fewest vectors per thread that spread the row over at most kMaxThreadsPerRow threads;
// false when even the most cannot (dim > 16384 with vectors of 8, > 8192 with single elements).
inline bool row_config(std::int64_t dim, bool vec8, RowConfig* c) {
  static constexpr int kPer8[] = {1, 2, 4};
  static constexpr int kPer1[] = {1, 2, 4, 8, 16};
  const int vec = vec8 ? 8 : 1;
  const int* pers = vec8 ? kPer8 : kPer1;
  const int n_pers = vec8 ? 3 : 5;
  const std::int64_t vectors = (dim + vec - 1) / vec;
  for (int i = 0; i < n_pers; ++i) {
    const std::int64_t need = (vectors + pers[i] - 1) / pers[i];
    std::int64_t tpr = 32;
    while (tpr < need) tpr *= 2;
    if (tpr > kMaxThreadsPerRow) continue;
    c->vec = vec;
    c->per = pers[i];
    c->tpr = static_cast<int>(tpr);
    c->rpb = c->tpr >= 128 ? 1 : 128 / c->tpr;
    return true;
  }
  return false;
}

inline bool aligned16(const void* p) {
  return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// Calls f(Tag<kLayer, kVec, kPer>{}) for the configuration: one kernel instantiation per case.
template <bool L, int V, int P>
struct Tag {
  static constexpr bool kLayer = L;
  static constexpr int kVec = V;
  static constexpr int kPer = P;
};

template <bool L, class F>
void dispatch_shape(const RowConfig& c, F&& f) {
  if (c.vec == 8) {
    switch (c.per) {
      case 1: f(Tag<L, 8, 1>{}); return;
      case 2: f(Tag<L, 8, 2>{}); return;
      default: f(Tag<L, 8, 4>{}); return;
    }
  }
  switch (c.per) {
    case 1: f(Tag<L, 1, 1>{}); return;
    case 2: f(Tag<L, 1, 2>{}); return;
    case 4: f(Tag<L, 1, 4>{}); return;
    case 8: f(Tag<L, 1, 8>{}); return;
    default: f(Tag<L, 1, 16>{}); return;
  }
}

template <class F>
void dispatch(bool layer, const RowConfig& c, F&& f) {
  if (layer)
    dispatch_shape<true>(c, f);
  else
    dispatch_shape<false>(c, f);
}

}  // namespace norm_detail
HONE_KERNELS_END

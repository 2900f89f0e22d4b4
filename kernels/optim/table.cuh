// What adamw.cu and grad_norm.cu share: the by-value table of up to kOptimTensorsPerLaunch
// tensors that one launch covers, cut into fixed chunks that blocks take in a grid-stride loop
// (chunk c of the launch belongs to the tensor whose [chunk_begin, chunk_begin of the next)
// holds c), and the element loads of 4-element groups.
#pragma once
#include <cstdint>

#include "kernels/common/compat.cuh"
#include "kernels/optim/optim.h"

HONE_KERNELS_BEGIN

namespace optim_detail {

constexpr int kThreads = 256;
constexpr std::int64_t kChunk = 4096;  // elements; a multiple of 4 · kThreads
constexpr int kTable = kOptimTensorsPerLaunch;

using bf16_t = __nv_bfloat16;

// Passed by value as a kernel argument (under the 4 KiB parameter limit).
struct Table {
  float* param[kTable];
  float* m[kTable];
  float* v[kTable];
  const void* grad[kTable];
  void* param_bf16[kTable];
  std::int64_t n[kTable];
  std::int64_t chunk_begin[kTable + 1];
  std::uint32_t vec;  // bit i: tensor i's pointers allow 4-element vector access
  int count;
};
static_assert(sizeof(Table) < 4000, "the table must fit the kernel parameter space");

inline bool aligned(const void* p, std::uintptr_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

// The table of tensors [first, first + count). Vector access needs 16-byte fp32 arrays and
// 8- (bf16) or 16-byte (fp32) gradients.
inline Table make_table(const AdamWTensor* t, int first, int count, bool bf16_grad) {
  Table tab{};
  tab.count = count;
  std::int64_t chunks = 0;
  for (int i = 0; i < count; ++i) {
    const AdamWTensor& x = t[first + i];
    tab.param[i] = x.param;
    tab.m[i] = x.m;
    tab.v[i] = x.v;
    tab.grad[i] = x.grad;
    tab.param_bf16[i] = x.param_bf16;
    tab.n[i] = x.n;
    tab.chunk_begin[i] = chunks;
    chunks += (x.n + kChunk - 1) / kChunk;
    const bool ok = aligned(x.param, 16) && aligned(x.m, 16) && aligned(x.v, 16) &&
                    aligned(x.grad, bf16_grad ? 8 : 16) && aligned(x.param_bf16, 8);
    if (ok) tab.vec |= 1u << i;
  }
  tab.chunk_begin[count] = chunks;
  return tab;
}

__device__ __forceinline__ int find_tensor(const Table& t, std::int64_t chunk) {
  int i = 0;
  while (i + 1 < t.count && t.chunk_begin[i + 1] <= chunk) ++i;
  return i;
}

__device__ __forceinline__ float grad_at(const float* g, std::int64_t e) { return g[e]; }
__device__ __forceinline__ float grad_at(const bf16_t* g, std::int64_t e) {
  return __bfloat162float(g[e]);
}

// Four gradient elements from an aligned address.
__device__ __forceinline__ void grad4(const float* g, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(g);
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
}
__device__ __forceinline__ void grad4(const bf16_t* g, float* out) {
  const uint2 u = *reinterpret_cast<const uint2*>(g);
  out[0] = __uint_as_float(u.x << 16), out[1] = __uint_as_float(u.x & 0xffff0000u);
  out[2] = __uint_as_float(u.y << 16), out[3] = __uint_as_float(u.y & 0xffff0000u);
}

}  // namespace optim_detail

HONE_KERNELS_END

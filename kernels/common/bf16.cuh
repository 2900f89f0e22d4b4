// bf16 storage for kernels with fp32 math: exact widening, round-to-nearest-even narrowing, and
// kVec = 8 elements through one 16-byte access (kVec = 1: a single element, for ragged tails
// and misaligned rows). Include after compat.cuh; the helpers live in the kernels' namespace
// (native or emulated, see launcher.h).
#pragma once
#include <cstring>

#include "kernels/common/compat.cuh"
#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN
namespace bf16v {

__device__ __forceinline__ float bf16_to_float(unsigned short b) {
  return __uint_as_float(static_cast<unsigned>(b) << 16);  // exact: bf16 is float's top half
}
__device__ __forceinline__ unsigned short float_to_bf16(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
__device__ __forceinline__ float round_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

// The 8 elements of a 16-byte word: the lower-addressed element is the low half of each 32 bits.
__device__ __forceinline__ void widen8(const uint4& u, float (&f)[8]) {
  const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    f[2 * k] = __uint_as_float(w[k] << 16);
    f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
  }
}

template <int kVec>
__device__ __forceinline__ void load_bf16(const unsigned short* p, float (&f)[kVec]) {
  if constexpr (kVec == 8) {
    uint4 u;
#if defined(__CUDACC__)
    u = *reinterpret_cast<const uint4*>(p);
#else
    std::memcpy(&u, p, sizeof u);  // no type punning under g++
#endif
    widen8(u, f);
  } else {
    f[0] = bf16_to_float(*p);
  }
}

template <int kVec>
__device__ __forceinline__ void store_bf16(unsigned short* p, const float (&f)[kVec]) {
  if constexpr (kVec == 8) {
    unsigned w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      w[k] = static_cast<unsigned>(float_to_bf16(f[2 * k])) |
             static_cast<unsigned>(float_to_bf16(f[2 * k + 1])) << 16;
    uint4 u;
    u.x = w[0], u.y = w[1], u.z = w[2], u.w = w[3];
#if defined(__CUDACC__)
    *reinterpret_cast<uint4*>(p) = u;
#else
    std::memcpy(p, &u, sizeof u);
#endif
  } else {
    *p = float_to_bf16(f[0]);
  }
}

}  // namespace bf16v
HONE_KERNELS_END

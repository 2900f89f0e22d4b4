// The CUDA device-side names (built-ins, __syncthreads, warp collectives, atomics, math
// intrinsics, launch) as the emulator provides them to .cu sources compiled by g++.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_types.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/emu/emu.h"

// The CUDA headers define these as GNU attributes that g++ ignores with warnings.
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __launch_bounds__
#undef __forceinline__
#undef __noinline__
#define __global__
#define __device__
#define __host__
#define __constant__ static
#define __launch_bounds__(...)
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#if defined(HONE_EMU_ASAN)
#define __shared__ static  // heap-like storage so ASan reports overflows
#else
#define __shared__ static thread_local  // one block at a time per OS thread
#endif

typedef struct CUstream_st* cudaStream_t;

// ---- barriers -------------------------------------------------------------------------
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::hone::emu::syncthreads(::hone::emu::Site{file, line, nullptr});
}
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---- warp collectives ----------------------------------------------------------------
namespace hone::emu {

template <class T>
struct ShuffleIn {
  T value;
  int arg;
  int mode;  // 0 idx, 1 up, 2 down, 3 xor
  int width;
};

template <class T>
void shuffle_fn(LaneRequest* const* lanes, unsigned present, const void*) {
  T results[32];
  for (int l = 0; l < 32; ++l) {
    if (!(present >> l & 1)) continue;
    const auto& in = *static_cast<const ShuffleIn<T>*>(lanes[l]->in);
    const int w = in.width, seg = l & ~(w - 1), pos = l & (w - 1);
    int src = l;
    switch (in.mode) {
      case 0: src = seg + (in.arg & (w - 1)); break;
      case 1: src = pos >= in.arg ? l - in.arg : l; break;
      case 2: src = pos + in.arg < w ? l + in.arg : l; break;
      default: src = l ^ in.arg; if (src >= seg + w) src = l; break;
    }
    if (src < 0 || src > 31 || !(present >> src & 1)) src = l;  // inactive source: undefined
    results[l] = static_cast<const ShuffleIn<T>*>(lanes[src]->in)->value;
  }
  for (int l = 0; l < 32; ++l)
    if (present >> l & 1) *static_cast<T*>(lanes[l]->out) = results[l];
}

template <class T>
T shuffle(const char* kind, int mode, unsigned mask, T v, int arg, int width, const Site& s) {
  static_assert(std::is_trivially_copyable_v<T>, "shuffled types must be trivially copyable");
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) width = 32;
  ShuffleIn<T> in{v, arg, mode, width};
  T out = v;
  LaneRequest req{&in, &out};
  warp_collective(kind, mask, &req, &shuffle_fn<T>, nullptr, s);
  return out;
}

void vote_fn(LaneRequest* const* lanes, unsigned present, const void* ctx);
unsigned vote(const char* kind, unsigned mask, int pred, const Site& s);

}  // namespace hone::emu

#define HONE_EMU_SITE ::hone::emu::Site{file, line, nullptr}
#define HONE_EMU_SITE_ARGS const char* file = __builtin_FILE(), int line = __builtin_LINE()

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32, HONE_EMU_SITE_ARGS) {
  return ::hone::emu::shuffle("__shfl_sync", 0, mask, v, src, width, HONE_EMU_SITE);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, HONE_EMU_SITE_ARGS) {
  return ::hone::emu::shuffle("__shfl_up_sync", 1, mask, v, static_cast<int>(delta), width,
                              HONE_EMU_SITE);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, HONE_EMU_SITE_ARGS) {
  return ::hone::emu::shuffle("__shfl_down_sync", 2, mask, v, static_cast<int>(delta), width,
                              HONE_EMU_SITE);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, HONE_EMU_SITE_ARGS) {
  return ::hone::emu::shuffle("__shfl_xor_sync", 3, mask, v, lane_mask, width, HONE_EMU_SITE);
}
inline unsigned __ballot_sync(unsigned mask, int pred, HONE_EMU_SITE_ARGS) {
  return ::hone::emu::vote("__ballot_sync", mask, pred, HONE_EMU_SITE);
}
inline int __any_sync(unsigned mask, int pred, HONE_EMU_SITE_ARGS) {
  return ::hone::emu::vote("__any_sync", mask, pred, HONE_EMU_SITE) != 0;
}
inline int __all_sync(unsigned mask, int pred, HONE_EMU_SITE_ARGS) {
  return ::hone::emu::vote("__all_sync", mask, !pred, HONE_EMU_SITE) == 0;
}
inline void __syncwarp(unsigned mask = 0xffffffffu, HONE_EMU_SITE_ARGS) {
  ::hone::emu::vote("__syncwarp", mask, 0, HONE_EMU_SITE);
}
inline unsigned __activemask() { return ::hone::emu::live_lanes(); }

// ---- atomics (blocks run one after another; real atomics anyway) -------------------------
template <class T>
inline T hone_emu_atomic_update(T* p, T v, T (*op)(T, T)) {
  T old = *p;
  for (;;) {
    const T want = op(old, v);
    if (__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
      return old;
  }
}
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
inline float atomicAdd(float* p, float v) {
  return hone_emu_atomic_update<float>(p, v, [](float a, float b) { return a + b; });
}
inline double atomicAdd(double* p, double v) {
  return hone_emu_atomic_update<double>(p, v, [](double a, double b) { return a + b; });
}
inline int atomicSub(int* p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
inline int atomicMax(int* p, int v) {
  return hone_emu_atomic_update<int>(p, v, [](int a, int b) { return a > b ? a : b; });
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
  return hone_emu_atomic_update<unsigned>(p, v, [](unsigned a, unsigned b) { return a > b ? a : b; });
}
inline int atomicMin(int* p, int v) {
  return hone_emu_atomic_update<int>(p, v, [](int a, int b) { return a < b ? a : b; });
}
inline unsigned atomicMin(unsigned* p, unsigned v) {
  return hone_emu_atomic_update<unsigned>(p, v, [](unsigned a, unsigned b) { return a < b ? a : b; });
}
template <class T>
inline T atomicCAS(T* p, T compare, T v) {
  __atomic_compare_exchange(p, &compare, &v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;  // the old value either way
}
template <class T>
inline T atomicExch(T* p, T v) {
  return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}

// ---- math and bit intrinsics ---------------------------------------------------------------
// glibc declares __expf/__logf/... (extern "C") without exporting them: define them here.
extern "C" inline float __expf(float x) noexcept { return expf(x); }
extern "C" inline float __logf(float x) noexcept { return logf(x); }
extern "C" inline float __exp2f(float x) noexcept { return exp2f(x); }
extern "C" inline float __log2f(float x) noexcept { return log2f(x); }
extern "C" inline float __sinf(float x) noexcept { return sinf(x); }
extern "C" inline float __cosf(float x) noexcept { return cosf(x); }
extern "C" inline float __powf(float x, float y) noexcept { return powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float f) { int v; std::memcpy(&v, &f, 4); return v; }
inline float __uint_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned v; std::memcpy(&v, &f, 4); return v; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline unsigned __brev(unsigned v) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= (v >> i & 1u) << (31 - i);
  return r;
}
template <class T>
inline T __ldg(const T* p) { return *p; }
// Missing from the host path of cuda_bf16.h / cuda_fp16.h.
inline int __bfloat162int_rn(__nv_bfloat16 h) { return static_cast<int>(std::nearbyint(__bfloat162float(h))); }
inline int __half2int_rn(__half h) { return static_cast<int>(std::nearbyint(__half2float(h))); }
inline __half __hfma(__half a, __half b, __half c) {
  return __float2half(std::fma(__half2float(a), __half2float(b), __half2float(c)));
}
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  return __halves2half2(__hfma(__low2half(a), __low2half(b), __low2half(c)),
                        __hfma(__high2half(a), __high2half(b), __high2half(c)));
}
inline __half hexp(__half h) { return __float2half(std::exp(__half2float(h))); }
inline __half hlog(__half h) { return __float2half(std::log(__half2float(h))); }
inline __half hsqrt(__half h) { return __float2half(std::sqrt(__half2float(h))); }
inline __half hrsqrt(__half h) { return __float2half(1.0f / std::sqrt(__half2float(h))); }

// ---- launch ---------------------------------------------------------------------------------
namespace hone::kernels {

// launch(kernel, grid, block, smem_bytes, stream, args...): kernel<<<grid, block, smem, stream>>>.
template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem_bytes,
            cudaStream_t /*stream*/, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: wrong number of kernel arguments");
  const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  ::hone::emu::run_grid(grid, block, smem_bytes, [&] { std::apply(kernel, params); });
}

}  // namespace hone::kernels

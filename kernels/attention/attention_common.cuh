// What the attention kernels share: argument validation and the head-dim buckets (host), and
// on the device the tile loader, the ldmatrix fragment loaders, bf16 packing and the
// accumulator → operand conversion of the tensor-core products.
//
// Shared-memory tiles keep rows of one head contiguous (head dims along the row), padded by 8
// elements (16 bytes) so the eight rows an ldmatrix reads start in different bank groups.
#pragma once
#include <cmath>
#include <cstdint>

#include "hone/error.h"
#include "kernels/attention/attention.h"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"
#include "kernels/common/ptx.cuh"

HONE_KERNELS_BEGIN
namespace attention_detail {

inline constexpr int kPad = 8;
inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

// ---- host: validation -----------------------------------------------------------------------

// The compiled head-dim bucket of a supported head dim (64 or 128), else 0.
inline int head_dim_bucket(int hd) {
  if (hd == 32 || hd == 64) return 64;
  if (hd == 96 || hd == 128) return 128;
  return 0;
}

inline void check_head_dim(const char* op, int hd) {
  HONE_CHECK(head_dim_bucket(hd) != 0, op, "head_dim = ", hd,
             " is unsupported; supported head dims: 32, 64, 96, 128 (compiled buckets 64 and 128)");
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// A bf16 tensor's pointer and strides: 16-byte rows for cp.async and paired stores.
inline void check_tensor(const char* op, const char* name, const AttentionTensor& t,
                         bool packed) {
  HONE_CHECK(t.ptr != nullptr, op, name, " is null");
  HONE_CHECK(aligned16(t.ptr), op, name, " = ", t.ptr, " is not 16-byte aligned");
  HONE_CHECK(t.row_stride % 8 == 0 && t.row_stride > 0, op, name, ".row_stride = ", t.row_stride,
             " is not a positive multiple of 8 elements");
  HONE_CHECK(t.head_stride % 8 == 0 && t.head_stride >= 0, op, name, ".head_stride = ",
             t.head_stride, " is not a multiple of 8 elements");
  if (!packed)
    HONE_CHECK(t.batch_stride % 8 == 0 && t.batch_stride >= 0, op, name, ".batch_stride = ",
               t.batch_stride, " is not a multiple of 8 elements");
}

inline void check_heads(const char* op, int heads, int kv_heads) {
  HONE_CHECK(heads >= 1, op, "heads = ", heads, " is not positive");
  HONE_CHECK(kv_heads >= 1 && heads % kv_heads == 0, op, "kv_heads = ", kv_heads,
             " does not divide heads = ", heads);
}

// Validates the forward problem (the backward checks its gradients on top).
inline void check_problem(const char* op, const AttentionParams& p) {
  check_head_dim(op, p.head_dim);
  check_heads(op, p.heads, p.kv_heads);
  HONE_CHECK(p.batch >= 0 && p.batch <= 65535, op, "batch = ", p.batch,
             " is out of range [0, 65535]");
  HONE_CHECK(p.heads <= 65535, op, "heads = ", p.heads, " is out of range [1, 65535]");
  HONE_CHECK(p.seqlen >= 0, op, "seqlen = ", p.seqlen, " is negative");
  HONE_CHECK(p.window >= 0, op, "window = ", p.window, " is negative (0 means no window)");
  HONE_CHECK(p.scale == p.scale && p.scale - p.scale == 0.0f, op, "scale = ", p.scale,
             " is not finite (0 means 1/sqrt(head_dim))");
  if (p.batch == 0 || p.seqlen == 0) return;
  const bool packed = p.cu_seqlens != nullptr;
  check_tensor(op, "q", p.q, packed);
  check_tensor(op, "k", p.k, packed);
  check_tensor(op, "v", p.v, packed);
  check_tensor(op, "out", p.out, packed);
  HONE_CHECK(p.lse != nullptr, op, "lse is null");
  HONE_CHECK(reinterpret_cast<std::uintptr_t>(p.lse) % 4 == 0, op, "lse = ",
             static_cast<const void*>(p.lse), " is not 4-byte aligned");
}

inline float resolved_scale(float scale, int hd) {
  return scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(hd));
}

// Allows `bytes` of dynamic shared memory for `kernel` (above 48 KiB a kernel must opt in).
template <class Kernel>
void allow_smem(const char* op, Kernel kernel, std::size_t bytes) {
#if defined(__CUDACC__)
  const cudaError_t err = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  HONE_CHECK(err == cudaSuccess, op, "cannot allow ", bytes, " bytes of shared memory: ",
             cudaGetErrorString(err));
#else
  (void)op, (void)kernel, (void)bytes;
#endif
}

// ---- device -----------------------------------------------------------------------------------

__device__ __forceinline__ int imin(int x, int y) { return x < y ? x : y; }
__device__ __forceinline__ int imax(int x, int y) { return x > y ? x : y; }

// Where sequence b starts and how long it is.
struct SeqRange {
  std::int64_t start;  // first row (packed) or 0
  int len;
};
__device__ __forceinline__ SeqRange seq_range(const std::int32_t* cu, int b, int seqlen) {
  if (cu == nullptr) return {0, seqlen};
  const int s = cu[b];
  return {s, cu[b + 1] - s};
}

// Row 0, head `head` of sequence b of a tensor.
__device__ __forceinline__ std::uint16_t* head_base(const AttentionTensor& t, int b, bool packed,
                                                    std::int64_t start, int head) {
  const std::int64_t off = (packed ? start * t.row_stride : b * t.batch_stride) +
                           static_cast<std::int64_t>(head) * t.head_stride;
  return static_cast<std::uint16_t*>(t.ptr) + off;
}

// Copies rows [row0, row0 + kRows) × columns [0, kCols) of one head into dst (pitch kPitch),
// zero-filling rows ≥ rows_valid and columns ≥ cols_valid (a multiple of 8): whole 16-byte
// chunks by cp.async.
template <int kRows, int kCols, int kPitch, int kThreads>
__device__ __forceinline__ void load_rows(std::uint16_t* dst, const std::uint16_t* src,
                                          std::int64_t row_stride, int row0, int rows_valid,
                                          int cols_valid) {
  constexpr int kChunksPerRow = kCols / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kCols % 8 == 0 && kChunks % kThreads == 0, "tile must split evenly");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int chunk = static_cast<int>(threadIdx.x) + i * kThreads;
    const int r = chunk / kChunksPerRow, c = (chunk % kChunksPerRow) * 8;
    const bool valid = row0 + r < rows_valid && c < cols_valid;
    const std::uint16_t* s = valid ? src + (row0 + r) * row_stride + c : src;
    ptx::cp_async_zfill16(dst + r * kPitch + c, s, valid);
  }
}

// A fragment (m16 × k16) at (m_off, k_off) of a tile stored [m][k].
template <int kPitch>
__device__ __forceinline__ void load_a(std::uint32_t (&r)[4], const std::uint16_t* tile, int m_off,
                                       int k_off, int lane) {
  ptx::ldmatrix_x4(r, tile + (m_off + (lane & 15)) * kPitch + k_off + (lane >> 4) * 8);
}

// B fragments of the two n8 × k16 blocks at n_off and n_off + 8 (registers 0-1 and 2-3) of a
// tile stored [n][k] (k contiguous: K in Q·Kᵀ).
template <int kPitch>
__device__ __forceinline__ void load_b_nk(std::uint32_t (&r)[4], const std::uint16_t* tile,
                                          int n_off, int k_off, int lane) {
  const int row = lane & 7, j = lane >> 3;
  ptx::ldmatrix_x4(r, tile + (n_off + row + 8 * (j >> 1)) * kPitch + k_off + 8 * (j & 1));
}

// The same fragments from a tile stored [k][n] (n contiguous: V in P·V), transposed on the way.
template <int kPitch>
__device__ __forceinline__ void load_b_kn(std::uint32_t (&r)[4], const std::uint16_t* tile,
                                          int n_off, int k_off, int lane) {
  const int row = lane & 7, j = lane >> 3;
  ptx::ldmatrix_x4_trans(r, tile + (k_off + row + 8 * (j & 1)) * kPitch + n_off + 8 * (j >> 1));
}

__device__ __forceinline__ std::uint16_t bf16_bits(float x) {
  const __nv_bfloat16 h = __float2bfloat16(x);  // round to nearest even
  std::uint16_t u;
  memcpy(&u, &h, 2);
  return u;
}
__device__ __forceinline__ float bf16_float(std::uint16_t u) {
  return __uint_as_float(static_cast<unsigned>(u) << 16);
}
// Two floats as a bf16 pair, the first in the low half (the operand register layout).
__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  return static_cast<std::uint32_t>(bf16_bits(lo)) | static_cast<std::uint32_t>(bf16_bits(hi)) << 16;
}

// The m16 × k16 A operand made of two neighbouring m16 × n8 accumulators c0 (columns 0-7) and
// c1 (columns 8-15): accumulator element e sits at [g + 8·(e >> 1)][2t + (e & 1)] and A register
// r at [g + 8·(r & 1)][2t + 8·(r >> 1) + {0, 1}], so the layouts line up (the PTX ISA fragment layouts).
__device__ __forceinline__ void acc_to_a(std::uint32_t (&a)[4], const float (&c0)[4],
                                         const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

// acc0 += A·B[0:8], acc1 += A·B[8:16] for a B fragment pair from load_b_*.
__device__ __forceinline__ void mma_pair(float (&acc0)[4], float (&acc1)[4],
                                         const std::uint32_t (&a)[4], const std::uint32_t (&b)[4]) {
  const std::uint32_t b0[2] = {b[0], b[1]};
  const std::uint32_t b1[2] = {b[2], b[3]};
  ptx::mma_m16n8k16_bf16(acc0, a, b0, acc0);
  ptx::mma_m16n8k16_bf16(acc1, a, b1, acc1);
}

// Reductions over the four lanes (t = 0..3) that hold one accumulator row.
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Whether query `row` sees key `col` of a sequence of length len (attention.h).
__device__ __forceinline__ bool visible(int row, int col, int len, bool causal, int window) {
  return col < len && (!causal || col <= row) && (window == 0 || row - col < window);
}

}  // namespace attention_detail
HONE_KERNELS_END

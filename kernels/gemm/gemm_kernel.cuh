// Device code of the tensor-core GEMM (launched from gemm.cu): tile configurations, the
// shared-memory layout, the global→shared tile loader, the ldmatrix fragment loaders, the
// multi-stage main loop and the epilogue. gemm_probe.cu reuses the loaders to dump fragments.
//
// Shared memory keeps each operand tile in its global orientation, its contiguous dimension
// contiguous, rows padded by 16 bytes: the eight 16-byte rows one ldmatrix matrix reads then
// start in eight different bank groups (row pitches of 80, 144, 272 or 48 bytes), and every
// row stays 16-byte aligned for cp.async. A k-contiguous tile feeds mma through ldmatrix, an
// m- or n-contiguous one through ldmatrix.trans; the four layouts differ only in that.
#pragma once
#include <cstdint>

#include "kernels/common/compat.cuh"
#include "kernels/common/ptx.cuh"
#include "kernels/gemm/gemm.h"

HONE_KERNELS_BEGIN
namespace gemm_detail {

// Block tile kM×kN×kK, warp tile kWarpM×kWarpN, kStages shared-memory stages.
template <int M, int N, int K, int WarpM, int WarpN, int Stages>
struct TileConfig {
  static constexpr int kM = M, kN = N, kK = K, kWarpM = WarpM, kWarpN = WarpN;
  static constexpr int kStages = Stages;
  static constexpr int kWarpsM = M / WarpM, kWarpsN = N / WarpN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int kFragM = WarpM / 16;  // m16 tiles per warp
  static constexpr int kFragN = WarpN / 16;  // pairs of n8 tiles per warp (one ldmatrix.x4)
  static constexpr int kSteps = K / 16;      // k16 steps per block tile
  static_assert(M % WarpM == 0 && N % WarpN == 0 && WarpM % 16 == 0 && WarpN % 16 == 0);
  static_assert(kSteps % 2 == 0, "fragment double buffering alternates between two buffers");
  static_assert(Stages >= 2);
};

// Training-sized products: 8 warps of 64×32, 4 stages (80 KiB of shared memory).
using LargeTile = TileConfig<128, 128, 32, 64, 32, 4>;
// m ≤ 16 (decoding, LoRA ranks): 4 warps of 16×16 over a wide k step; streams B.
using SkinnyTile = TileConfig<16, 64, 64, 16, 16, 4>;

__device__ __forceinline__ int imin(int x, int y) { return x < y ? x : y; }
__device__ __forceinline__ int imax(int x, int y) { return x > y ? x : y; }

inline constexpr int kPad = 8;    // elements of padding per shared-memory row (16 bytes)
inline constexpr int kGroupM = 8;  // tile rows walked together, so blocks in flight share B

template <class Cfg, bool kATrans, bool kBTrans>
struct SharedStorage {
  // A: m×k tile (k contiguous) or, a_trans, k×m (m contiguous); B: k×n or, b_trans, n×k.
  static constexpr int kARows = kATrans ? Cfg::kK : Cfg::kM;
  static constexpr int kACols = kATrans ? Cfg::kM : Cfg::kK;
  static constexpr int kBRows = kBTrans ? Cfg::kN : Cfg::kK;
  static constexpr int kBCols = kBTrans ? Cfg::kK : Cfg::kN;
  static constexpr int kAPitch = kACols + kPad, kBPitch = kBCols + kPad;
  alignas(16) std::uint16_t a[Cfg::kStages][kARows][kAPitch];
  alignas(16) std::uint16_t b[Cfg::kStages][kBRows][kBPitch];
};

// Everything a GEMM block needs, resolved by the launcher (pointers already at batch entry 0
// of this launch; offsets in elements).
struct GemmArgs {
  const std::uint16_t* a;
  const std::uint16_t* b;
  void* c;
  const void* bias;
  const void* residual;
  float* partial;  // split-K partial sums (splits, batch, m, n), or null when not split
  int m, n, k;
  int batch;
  std::int64_t lda, ldb, ldc, ldr;
  std::int64_t stride_a, stride_b, stride_c, stride_r;
  float alpha, beta;
  int tiles_m, tiles_n;
  int k_tiles, k_tiles_per_split;  // block tiles of k in all and per split
  GemmType c_type, bias_type, residual_type;
  bool a_vec, b_vec;   // 16-byte cp.async allowed (aligned base, ld and stride multiples of 8)
  bool c_pair, r_pair, bias_pair;  // two neighbouring columns load/store as one access
};

// Copies the rows×cols tile at (row0, col0) of a row-major matrix (extent rows_total ×
// cols_total, leading dimension ld) into dst (pitch kPitch), zero outside the matrix. Chunks of
// 8 elements go by 16-byte cp.async where aligned and whole; a chunk that straddles the edge
// or is misaligned goes element by element (plain stores, visible after the next barrier).
template <int kRows, int kCols, int kPitch, int kThreads>
__device__ __forceinline__ void load_tile(std::uint16_t* dst, const std::uint16_t* src,
                                          std::int64_t ld, int row0, int col0, int rows_total,
                                          int cols_total, bool vec) {
  constexpr int kChunksPerRow = kCols / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kCols % 8 == 0 && kChunks % kThreads == 0, "tile must split evenly");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int chunk = static_cast<int>(threadIdx.x) + i * kThreads;
    const int r = chunk / kChunksPerRow, c = (chunk % kChunksPerRow) * 8;
    const int gr = row0 + r, gc = col0 + c;
    std::uint16_t* d = dst + r * kPitch + c;
    if (gr >= rows_total || gc >= cols_total) {
      ptx::cp_async_zfill16(d, src, false);
    } else {
      const std::uint16_t* s = src + gr * ld + gc;
      if (vec && gc + 8 <= cols_total) {
        ptx::cp_async<16>(d, s);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) d[e] = gc + e < cols_total ? s[e] : std::uint16_t{0};
      }
    }
  }
}

// A's fragment of the m16×k16 block at (m_off, k_off) of a stage (PTX ISA fragment layout).
template <bool kATrans, int kPitch>
__device__ __forceinline__ void load_a_fragment(std::uint32_t (&r)[4], const std::uint16_t* tile,
                                                int m_off, int k_off, int lane) {
  if constexpr (!kATrans) {
    // Matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15).
    ptx::ldmatrix_x4(r, tile + (m_off + (lane & 15)) * kPitch + k_off + (lane >> 4) * 8);
  } else {
    // Stored k×m: the same four matrices, transposed on the way.
    const int row = lane & 7, j = lane >> 3;
    ptx::ldmatrix_x4_trans(r, tile + (k_off + row + 8 * (j >> 1)) * kPitch + m_off + 8 * (j & 1));
  }
}

// B's fragments of two n8×k16 blocks at (n_off, k_off) and (n_off + 8, k_off): registers 0-1
// feed the first mma, 2-3 the second.
template <bool kBTrans, int kPitch>
__device__ __forceinline__ void load_b_fragment(std::uint32_t (&r)[4], const std::uint16_t* tile,
                                                int n_off, int k_off, int lane) {
  const int row = lane & 7, j = lane >> 3;
  if constexpr (kBTrans) {  // stored n×k: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, ...)
    ptx::ldmatrix_x4(r, tile + (n_off + row + 8 * (j >> 1)) * kPitch + k_off + 8 * (j & 1));
  } else {  // stored k×n
    ptx::ldmatrix_x4_trans(r, tile + (k_off + row + 8 * (j & 1)) * kPitch + n_off + 8 * (j >> 1));
  }
}

// Loads the A and B block tiles of k tile `kt` into `stage`.
template <class Cfg, bool kATrans, bool kBTrans>
__device__ __forceinline__ void load_stage(SharedStorage<Cfg, kATrans, kBTrans>* s, int stage,
                                           const GemmArgs& p, const std::uint16_t* a,
                                           const std::uint16_t* b, int m0, int n0, int kt) {
  using S = SharedStorage<Cfg, kATrans, kBTrans>;
  const int k0 = kt * Cfg::kK;
  std::uint16_t* sa = &s->a[stage][0][0];
  std::uint16_t* sb = &s->b[stage][0][0];
  if constexpr (!kATrans)
    load_tile<Cfg::kM, Cfg::kK, S::kAPitch, Cfg::kThreads>(sa, a, p.lda, m0, k0, p.m, p.k, p.a_vec);
  else
    load_tile<Cfg::kK, Cfg::kM, S::kAPitch, Cfg::kThreads>(sa, a, p.lda, k0, m0, p.k, p.m, p.a_vec);
  if constexpr (kBTrans)
    load_tile<Cfg::kN, Cfg::kK, S::kBPitch, Cfg::kThreads>(sb, b, p.ldb, n0, k0, p.n, p.k, p.b_vec);
  else
    load_tile<Cfg::kK, Cfg::kN, S::kBPitch, Cfg::kThreads>(sb, b, p.ldb, k0, n0, p.k, p.n, p.b_vec);
}

// One warp's fragments of k16 step `step` of a stage.
template <class Cfg, bool kATrans, bool kBTrans>
__device__ __forceinline__ void load_fragments(std::uint32_t (&fa)[Cfg::kFragM][4],
                                               std::uint32_t (&fb)[Cfg::kFragN][4],
                                               const SharedStorage<Cfg, kATrans, kBTrans>* s,
                                               int stage, int step, int wm0, int wn0, int lane) {
  using S = SharedStorage<Cfg, kATrans, kBTrans>;
#pragma unroll
  for (int i = 0; i < Cfg::kFragM; ++i)
    load_a_fragment<kATrans, S::kAPitch>(fa[i], &s->a[stage][0][0], wm0 + 16 * i, 16 * step, lane);
#pragma unroll
  for (int j = 0; j < Cfg::kFragN; ++j)
    load_b_fragment<kBTrans, S::kBPitch>(fb[j], &s->b[stage][0][0], wn0 + 16 * j, 16 * step, lane);
}

// ---- epilogue ---------------------------------------------------------------------------

__device__ __forceinline__ float bf16_bits_to_float(std::uint16_t v) {
  return __uint_as_float(static_cast<unsigned>(v) << 16);
}

// Element `off` (and `off + 1` when two) of a f32 or bf16 array.
__device__ __forceinline__ void load_pair(const void* base, GemmType t, std::int64_t off,
                                          bool two, bool pair, float& x0, float& x1) {
  if (t == GemmType::f32) {
    const float* q = static_cast<const float*>(base) + off;
    if (two && pair) {
      const float2 v = *reinterpret_cast<const float2*>(q);
      x0 = v.x, x1 = v.y;
    } else {
      x0 = q[0];
      x1 = two ? q[1] : 0.0f;
    }
  } else {
    const std::uint16_t* q = static_cast<const std::uint16_t*>(base) + off;
    if (two && pair) {
      const unsigned v = *reinterpret_cast<const unsigned*>(q);
      x0 = __uint_as_float(v << 16), x1 = __uint_as_float(v & 0xffff0000u);
    } else {
      x0 = bf16_bits_to_float(q[0]);
      x1 = two ? bf16_bits_to_float(q[1]) : 0.0f;
    }
  }
}

__device__ __forceinline__ std::uint16_t float_to_bf16_bits(float x) {
  const __nv_bfloat16 h = __float2bfloat16(x);  // round to nearest even
  std::uint16_t u;
  memcpy(&u, &h, 2);
  return u;
}

__device__ __forceinline__ void store_pair(void* base, GemmType t, std::int64_t off, bool two,
                                           bool pair, float x0, float x1) {
  if (t == GemmType::f32) {
    float* q = static_cast<float*>(base) + off;
    if (two && pair) {
      float2 v;
      v.x = x0, v.y = x1;
      *reinterpret_cast<float2*>(q) = v;
    } else {
      q[0] = x0;
      if (two) q[1] = x1;
    }
  } else {
    std::uint16_t* q = static_cast<std::uint16_t*>(base) + off;
    const std::uint16_t h0 = float_to_bf16_bits(x0), h1 = float_to_bf16_bits(x1);
    if (two && pair) {
      *reinterpret_cast<unsigned*>(q) = static_cast<unsigned>(h0) | static_cast<unsigned>(h1) << 16;
    } else {
      q[0] = h0;
      if (two) q[1] = h1;
    }
  }
}

// C[row][col] (and col + 1 when two) of batch entry bi = alpha·acc + beta·C + bias + residual.
__device__ __forceinline__ void epilogue_pair(const GemmArgs& p, int bi, int row, int col,
                                              bool two, float acc0, float acc1) {
  float v0 = p.alpha * acc0, v1 = p.alpha * acc1;
  const std::int64_t c_off = bi * p.stride_c + row * p.ldc + col;
  if (p.beta != 0.0f) {
    float c0, c1;
    load_pair(p.c, p.c_type, c_off, two, p.c_pair, c0, c1);
    v0 += p.beta * c0, v1 += p.beta * c1;
  }
  if (p.bias) {
    float b0, b1;
    load_pair(p.bias, p.bias_type, col, two, p.bias_pair, b0, b1);
    v0 += b0, v1 += b1;
  }
  if (p.residual) {
    float r0, r1;
    load_pair(p.residual, p.residual_type, bi * p.stride_r + row * p.ldr + col, two, p.r_pair,
              r0, r1);
    v0 += r0, v1 += r1;
  }
  store_pair(p.c, p.c_type, c_off, two, p.c_pair, v0, v1);
}

// ---- the GEMM block ---------------------------------------------------------------------

// Grid: x walks the output tiles (kGroupM tile rows at a time), y the batch entries, z the
// k splits. Without a split the epilogue writes C; with one, the block writes its fp32 partial
// sums and gemm_reduce_kernel (gemm.cu) finishes.
template <class Cfg, bool kATrans, bool kBTrans>
__global__ void __launch_bounds__(Cfg::kThreads, 1) gemm_kernel(GemmArgs p) {
  using S = SharedStorage<Cfg, kATrans, kBTrans>;
  HONE_DYNAMIC_SMEM(S, s);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int wm0 = (warp / Cfg::kWarpsN) * Cfg::kWarpM, wn0 = (warp % Cfg::kWarpsN) * Cfg::kWarpN;

  const int tile = static_cast<int>(blockIdx.x), group = kGroupM * p.tiles_n;
  const int first_m = tile / group * kGroupM;
  const int rows_in_group = imin(p.tiles_m - first_m, kGroupM);
  const int tm = first_m + tile % group % rows_in_group, tn = tile % group / rows_in_group;
  const int m0 = tm * Cfg::kM, n0 = tn * Cfg::kN;
  const int bi = static_cast<int>(blockIdx.y), split = static_cast<int>(blockIdx.z);
  const std::uint16_t* a = p.a + bi * p.stride_a;
  const std::uint16_t* b = p.b + bi * p.stride_b;
  const int kt_begin = split * p.k_tiles_per_split;
  const int tiles = imax(0, imin(p.k_tiles, kt_begin + p.k_tiles_per_split) - kt_begin);

  float acc[Cfg::kFragM][2 * Cfg::kFragN][4];
#pragma unroll
  for (int i = 0; i < Cfg::kFragM; ++i)
#pragma unroll
    for (int j = 0; j < 2 * Cfg::kFragN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  // Prologue: k tiles 0 .. kStages-2 in flight, one commit group each (empty past the end).
#pragma unroll
  for (int st = 0; st < Cfg::kStages - 1; ++st) {
    if (st < tiles) load_stage<Cfg, kATrans, kBTrans>(s, st, p, a, b, m0, n0, kt_begin + st);
    ptx::cp_async_commit();
  }
  ptx::cp_async_wait<Cfg::kStages - 2>();
  HONE_SYNC("gemm_first_tile");  // tile 0 is in shared memory, whoever copied it

  std::uint32_t fa[2][Cfg::kFragM][4], fb[2][Cfg::kFragN][4];
  if (tiles > 0) load_fragments<Cfg, kATrans, kBTrans>(fa[0], fb[0], s, 0, 0, wm0, wn0, lane);

  for (int kt = 0; kt < tiles; ++kt) {
    const int stage = kt % Cfg::kStages;
#pragma unroll
    for (int step = 0; step < Cfg::kSteps; ++step) {
      const bool last = step == Cfg::kSteps - 1;
      if (last) {
        // This warp has read its last fragments of `stage`, and every warp finished reading
        // stage (kt-1) before the previous barrier: refill that one with tile kt + kStages-1.
        const int next = kt + Cfg::kStages - 1;
        if (next < tiles)
          load_stage<Cfg, kATrans, kBTrans>(s, next % Cfg::kStages, p, a, b, m0, n0,
                                            kt_begin + next);
        ptx::cp_async_commit();
        ptx::cp_async_wait<Cfg::kStages - 2>();  // this thread's copies of tile kt+1 are done
        HONE_SYNC("gemm_tile_ready");            // ... and everyone's; stage kt-1 is free
      }
      // Fragments of the next step (next tile's first step after the barrier) load while the
      // tensor cores work on this one.
      const int nb = (step + 1) & 1;
      if (!last)
        load_fragments<Cfg, kATrans, kBTrans>(fa[nb], fb[nb], s, stage, step + 1, wm0, wn0, lane);
      else if (kt + 1 < tiles)
        load_fragments<Cfg, kATrans, kBTrans>(fa[nb], fb[nb], s, (kt + 1) % Cfg::kStages, 0, wm0,
                                              wn0, lane);
      const int cb = step & 1;
#pragma unroll
      for (int i = 0; i < Cfg::kFragM; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::kFragN; ++j) {
          const std::uint32_t b0[2] = {fb[cb][j][0], fb[cb][j][1]};
          const std::uint32_t b1[2] = {fb[cb][j][2], fb[cb][j][3]};
          ptx::mma_m16n8k16_bf16(acc[i][2 * j], fa[cb][i], b0, acc[i][2 * j]);
          ptx::mma_m16n8k16_bf16(acc[i][2 * j + 1], fa[cb][i], b1, acc[i][2 * j + 1]);
        }
    }
  }
  ptx::cp_async_wait<0>();  // only empty groups remain; leave nothing in flight

  // Accumulator element e of an m16n8 tile is C[g + 8·(e >> 1)][2t + (e & 1)].
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < Cfg::kFragM; ++i)
#pragma unroll
    for (int j = 0; j < 2 * Cfg::kFragN; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = m0 + wm0 + 16 * i + g + 8 * h, col = n0 + wn0 + 8 * j + 2 * t;
        if (row >= p.m || col >= p.n) continue;
        const bool two = col + 1 < p.n;
        if (p.partial) {
          const std::int64_t off =
              ((static_cast<std::int64_t>(split) * p.batch + bi) * p.m + row) * p.n + col;
          store_pair(p.partial, GemmType::f32, off, two, (p.n & 1) == 0, acc[i][j][2 * h],
                     acc[i][j][2 * h + 1]);
        } else {
          epilogue_pair(p, bi, row, col, two, acc[i][j][2 * h], acc[i][j][2 * h + 1]);
        }
      }
}

}  // namespace gemm_detail
HONE_KERNELS_END

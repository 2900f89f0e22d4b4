// The packed f32 GEMM (gemm_kernel.h). Each task owns one output tile; for each product of the
// family and each depth block it packs its rows of op(A) into mr-row micro-panels and its
// columns of op(B) into nr-column micro-panels (zero-padded at the edges), unless the plan has
// all threads pack one of them once for every task (gemm_plan), then runs the
// register-blocked micro-kernel over every (panel of A, panel of B) pair. The micro-kernel sums
// its depth block from zero in one chain of fused multiply-adds per element and adds the result
// onto C at the store: C's bits depend on the depth blocking (a function of k) alone.
#include "cpu/gemm_kernel.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "hone/error.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define HONE_GEMM_KERNEL 1
#include <immintrin.h>
#endif

namespace hone::cpu {

namespace {

#if defined(__AVX512F__)
constexpr int kMr = kGemmMrAvx512;
constexpr int kNr = kGemmNrAvx512;
constexpr const char* kIsa = "avx512";
#elif defined(HONE_GEMM_KERNEL)
constexpr int kMr = kGemmMrAvx2;
constexpr int kNr = kGemmNrAvx2;
constexpr const char* kIsa = "avx2";
#else
constexpr int kMr = 1;
constexpr int kNr = 1;
constexpr const char* kIsa = "";
#endif

}  // namespace

GemmKernelInfo gemm_kernel_info() { return {kIsa, kMr, kNr}; }

namespace {

std::int64_t ceil_div(std::int64_t x, std::int64_t y) { return (x + y - 1) / y; }
std::int64_t round_up(std::int64_t x, std::int64_t y) { return ceil_div(x, y) * y; }

// A few tasks in odd number leave a thread idle at the end (3 tasks on 2 threads take as long
// as 4): `tiles` along one side, one more when the grid has such a count of `tasks` and the
// side (`extent` long) holds more than one `unit`. Batches (attention heads) rarely need it.
std::int64_t evened(std::int64_t tiles, std::int64_t tasks, std::int64_t extent, std::int64_t unit) {
  return tasks < 16 && tasks % 2 == 1 && extent > unit ? tiles + 1 : tiles;
}

}  // namespace

GemmTiles gemm_tiles(std::int64_t m, std::int64_t n, std::int64_t count) {
  GemmTiles t;
  const std::int64_t rows = ceil_div(m, kGemmTaskRowsMax);
  std::int64_t cols = ceil_div(n, kGemmTaskColsMax);
  cols = evened(cols, count * rows * cols, n, kNr);
  // Whole micro-panels per tile, so that only the last tile of a row or column has an edge.
  t.tile_rows = round_up(ceil_div(m, rows), kMr);
  t.tile_cols = round_up(ceil_div(n, cols), kNr);
  t.row_tiles = ceil_div(m, t.tile_rows);
  t.col_tiles = ceil_div(n, t.tile_cols);
  return t;
}

namespace {

// Elements of op(A) and op(B) that a grid of tiles packs per step of depth: each tile packs
// its rows of A and its columns of B.
std::int64_t packed_per_depth(std::int64_t m, std::int64_t n, const GemmTiles& t) {
  return m * t.col_tiles + n * t.row_tiles;
}

// `count` tiles of whole `unit`s over `extent` (the last may be short).
void split(std::int64_t extent, std::int64_t count, std::int64_t unit, std::int64_t& tile,
           std::int64_t& tiles) {
  tile = round_up(ceil_div(extent, count), unit);
  tiles = ceil_div(extent, tile);
}

// Columns of a full-height strip when A is shared: narrow enough for a few tasks per thread
// and for the strip's packed B (kGemmKcMax deep) to stay in L2 with room to spare; B is packed
// once whatever the width.
constexpr std::int64_t kShareStripCols = 384;
// Micro-panels of the shared operand packed by one work item (gemm_packed).
constexpr std::int64_t kSharePanels = 8;

}  // namespace

GemmPlan gemm_plan(const StridedGemm& g) {
  GemmPlan plan;
  plan.tiles = gemm_tiles(g.m, g.n, g.count);
  if (g.count != 1 || g.reduce != 1 || g.m <= 0 || g.n <= 0 || g.k <= 0) return plan;
  std::int64_t best = packed_per_depth(g.m, g.n, plan.tiles);
  // A shared: one row of tiles, full height, so B is packed once as well.
  if (plan.tiles.col_tiles >= kGemmShareMinReuse && round_up(g.m, kMr) * g.k <= kGemmShareMax &&
      g.m + g.n < best) {
    GemmTiles t;
    t.tile_rows = g.m, t.row_tiles = 1;
    std::int64_t cols = ceil_div(g.n, kShareStripCols);
    cols = evened(cols, cols, g.n, kNr);
    split(g.n, cols, kNr, t.tile_cols, t.col_tiles);
    best = g.m + g.n;
    plan = {GemmShare::kA, t};
  }
  // B shared: row strips over columns as wide as the plain grid's (whole when n ≤ 768), so A
  // is packed once per column of tiles. Taken on a tie only when its packed operand is smaller.
  GemmTiles t;
  split(g.n, ceil_div(g.n, kGemmTaskColsMax), kNr, t.tile_cols, t.col_tiles);
  std::int64_t rows = ceil_div(g.m, kGemmTaskRowsMax);
  rows = evened(rows, rows * t.col_tiles, g.m, kMr);
  split(g.m, rows, kMr, t.tile_rows, t.row_tiles);
  const std::int64_t cost = g.m * t.col_tiles + g.n;
  if (plan.tiles.row_tiles >= kGemmShareMinReuse && round_up(g.n, kNr) * g.k <= kGemmShareMax &&
      (cost < best || (cost == best && plan.share == GemmShare::kA && g.n < g.m)))
    plan = {GemmShare::kB, t};
  return plan;
}

#if !defined(HONE_GEMM_KERNEL)

double fma_peak_gflops(double) { return 0.0; }

void gemm_packed(const float*, const float*, float*, const StridedGemm&, float, float) {
  fail("gemm_packed", "this build has no AVX-512 or AVX2+FMA micro-kernel (use gemm_eigen)");
}

#else

namespace {

// The packed tile of one task and depth block: tile rows/columns rounded up to whole panels.
constexpr std::int64_t kPackRowsMax = kGemmTaskRowsMax + kMr;
constexpr std::int64_t kPackColsMax = kGemmTaskColsMax + kNr;

// One vector register of floats and the few operations the kernel needs. C is accessed
// through the first `n` lanes only (n ≥ W: all of them), so the right edge of C is never read
// or written past column n.
#if defined(__AVX512F__)
struct Vec {
  using V = __m512;
  static constexpr int W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static __mmask16 lanes(int n) { return n >= W ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
  static V load_c(const float* p, int n) { return _mm512_maskz_loadu_ps(lanes(n), p); }
  static void store_c(float* p, V v, int n) { _mm512_mask_storeu_ps(p, lanes(n), v); }
};
#else
struct Vec {
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static __m256i lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load_c(const float* p, int n) {
    return n >= W ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes(n));
  }
  static void store_c(float* p, V v, int n) {
    if (n >= W) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, lanes(n), v);
  }
};
#endif
static_assert(kNr % Vec::W == 0, "the register block must be whole vectors wide");
constexpr int kNv = kNr / Vec::W;

// How the micro-kernel's sums S reach C: C = alpha·S (C never read: NaN-safe), C = C + alpha·S
// (beta = 1 and every depth block after the first), or C = beta·C + alpha·S.
enum class Store { kOverwrite, kAccumulate, kScale };

struct Epilogue {
  Store store;
  float alpha, beta;
};

// C[0:R, 0:cols] (row stride ldc) ⟵ S = Σ_p ap[p][0:R] ⊗ bp[p][0:kNr] over kc steps, where ap
// is a packed A micro-panel (kMr floats per step) and bp a packed B micro-panel (kNr per step).
// R < kMr computes only the rows that exist (the bottom edge); the accumulators stay in
// registers for the whole depth block.
template <int R>
void micro_kernel(std::int64_t kc, const float* __restrict ap, const float* __restrict bp,
                  float* c, std::int64_t ldc, int cols, const Epilogue& e) {
  using V = typename Vec::V;
  V acc[R][kNv];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) acc[i][v] = Vec::zero();
  // C's rows are needed only at the store, a depth block later: ask for them now (for writing)
  // so that they arrive while the sums run. It matters most for short depths (weight gradients,
  // k = tokens), where C's read-modify-write is a large share of the memory traffic.
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + kNr - 1, 1, 3);
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    V b[kNv];
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) b[v] = Vec::load(bp + v * Vec::W);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const V a = Vec::set1(ap[i]);
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) acc[i][v] = Vec::fma(a, b[v], acc[i][v]);
    }
    ap += kMr;
    bp += kNr;
  }
  const V alpha = Vec::set1(e.alpha), beta = Vec::set1(e.beta);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) {
      const int n = cols - v * Vec::W;
      if (n <= 0) break;
      V out;
      if (e.store == Store::kOverwrite) out = Vec::mul(alpha, acc[i][v]);
      else if (e.store == Store::kAccumulate) out = Vec::fma(alpha, acc[i][v], Vec::load_c(ci, n));
      else out = Vec::fma(alpha, acc[i][v], Vec::mul(beta, Vec::load_c(ci, n)));
      Vec::store_c(ci, out, n);
      ci += Vec::W;
    }
  }
}

// Iterations of fma_peak_gflops' chains between two readings of the clock, and the windows its
// time is cut into.
constexpr std::int64_t kPeakBatch = 4096;
constexpr int kPeakWindows = 10;

// One thread's rate in FLOP/s: kChains accumulators, each acc ← acc·x + y, which settles at
// y / (1 − x) = 1 (no overflow, no subnormals), for kPeakWindows windows of seconds /
// kPeakWindows after one unmeasured (the clock settles under vector load). The best window
// counts: on a shared machine anything else running only slows a window down. The sum goes to
// `sink` so that nothing is optimised away.
double thread_fma_rate(double seconds, float& sink) {
  using V = typename Vec::V;
  constexpr int kChains = kMr * kNv;
  V acc[kChains];
#pragma GCC unroll 32
  for (int i = 0; i < kChains; ++i) acc[i] = Vec::set1(static_cast<float>(i) * 0.01f);
  const V x = Vec::set1(0.5f), y = Vec::set1(0.5f);
  double best = 0.0;
  for (int window = 0; window <= kPeakWindows; ++window) {
    const auto start = std::chrono::steady_clock::now();
    std::int64_t batches = 0;
    double elapsed = 0.0;
    do {
      for (std::int64_t it = 0; it < kPeakBatch; ++it) {
#pragma GCC unroll 32
        for (int i = 0; i < kChains; ++i) acc[i] = Vec::fma(acc[i], x, y);
      }
      ++batches;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } while (elapsed < seconds / kPeakWindows);
    const double rate = 2.0 * Vec::W * kChains * static_cast<double>(batches * kPeakBatch) / elapsed;
    if (window > 0) best = std::max(best, rate);
  }
  alignas(64) float lanes[Vec::W];
  V total = acc[0];
  for (int i = 1; i < kChains; ++i) total = Vec::fma(acc[i], x, total);
  std::memcpy(lanes, &total, sizeof lanes);
  for (float l : lanes) sink += l;
  return best;
}

using MicroKernel = void (*)(std::int64_t, const float*, const float*, float*, std::int64_t, int,
                             const Epilogue&);

// kernel_for_rows[R - 1] computes R rows (1 ≤ R ≤ kMr).
template <std::size_t... R>
constexpr auto kernel_table(std::index_sequence<R...>) {
  return std::array<MicroKernel, sizeof...(R)>{&micro_kernel<static_cast<int>(R) + 1>...};
}
constexpr auto kernel_for_rows = kernel_table(std::make_index_sequence<kMr>{});

#if defined(__AVX512F__)
// GCC 12's AVX-512 shuffle intrinsics start from _mm512_undefined_ps(), which its
// uninitialized-use analysis reports once inlined; the values are fully defined. (The packer is
// kept out of line so that the analysis runs here, under the pragma; it is called per panel.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// In-register transpose of a 16×16 block: afterwards r[j] holds column j of the rows given.
void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {  // pairs of rows interleaved within each 128-bit lane
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4g + e], lane L: column 4L + e of rows 4g..4g+3.
  for (int g = 0; g < 4; ++g) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  // A 4×4 transpose of 128-bit lanes across u[e], u[4 + e], u[8 + e], u[12 + e].
  for (int e = 0; e < 4; ++e) {
    const __m512 x0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x44);
    const __m512 x1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xEE);
    const __m512 x2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x44);
    const __m512 x3 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xEE);
    r[e] = _mm512_shuffle_f32x4(x0, x2, 0x88);
    r[4 + e] = _mm512_shuffle_f32x4(x0, x2, 0xDD);
    r[8 + e] = _mm512_shuffle_f32x4(x1, x3, 0x88);
    r[12 + e] = _mm512_shuffle_f32x4(x1, x3, 0xDD);
  }
}

// dst[p·dst_stride + j] = src[j·ld + p] for j < rows (≤ 16), p < depth; lanes j ≥ rows of the
// first `width` (≤ 16) are written as zeros. The transposing packer of k-contiguous operands.
__attribute__((noinline)) void pack_transposed(const float* src, std::int64_t ld, int rows, std::int64_t depth,
                     float* dst, std::int64_t dst_stride, int width) {
  const __mmask16 out_lanes = static_cast<__mmask16>((1u << width) - 1);
  __m512 r[16];
  for (std::int64_t p = 0; p < depth; p += 16) {
    const int steps = static_cast<int>(std::min<std::int64_t>(16, depth - p));
    const __mmask16 in_lanes = Vec::lanes(steps);
    for (int j = 0; j < 16; ++j)
      r[j] = j < rows ? _mm512_maskz_loadu_ps(in_lanes, src + j * ld + p) : _mm512_setzero_ps();
    transpose16(r);
    for (int s = 0; s < steps; ++s) _mm512_mask_storeu_ps(dst + (p + s) * dst_stride, out_lanes, r[s]);
  }
}
#pragma GCC diagnostic pop
#endif

// d[0:live] = s[0:live], d[live:width] = 0: one depth step of a micro-panel from an operand
// whose panel's elements are contiguous.
template <int width>
inline void copy_step(float* d, const float* s, int live) {
#if defined(__AVX512F__)
  // Masked 16-lane moves: no scalar tail, and never a read past s[live - 1].
#pragma GCC unroll 4
  for (int v = 0; v < width; v += 16) {
    const int n = std::min(16, width - v);
    const __mmask16 out = Vec::lanes(n);
    const __mmask16 in = live > v ? Vec::lanes(live - v) & out : __mmask16(0);
    _mm512_mask_storeu_ps(d + v, out, _mm512_maskz_loadu_ps(in, s + v));
  }
#else
  if (live == width) {
    std::memcpy(d, s, sizeof(float) * width);
  } else {
    for (int j = 0; j < live; ++j) d[j] = s[j];
    for (int j = live; j < width; ++j) d[j] = 0.0f;
  }
#endif
}

// Rows [r0, r0 + rows) × depth [p0, p0 + kc) of op(A) into kMr-row micro-panels: panel q holds
// rows q·kMr.. as pa[q·kMr·kc + p·kMr + i], rows past the edge zero.
void pack_a(const float* a, const StridedGemm& g, std::int64_t r0, std::int64_t rows,
            std::int64_t p0, std::int64_t kc, float* pa) {
  if (g.trans_a) {  // A stored k×m: op(A)[i][p] = a[p·m + i], rows contiguous
    // Along each source row (all the tile's rows of op(A) at one depth, one contiguous run),
    // then down: the hardware prefetcher follows that, not a walk down a narrow column.
    for (std::int64_t p = 0; p < kc; ++p) {
      const float* s = a + (p0 + p) * g.m + r0;
      for (std::int64_t q = 0; q < rows; q += kMr)
        copy_step<kMr>(pa + q * kc + p * kMr, s + q,
                       static_cast<int>(std::min<std::int64_t>(kMr, rows - q)));
    }
    return;
  }
  // A stored m×k: op(A)[i][p] = a[i·k + p], depth contiguous
  for (std::int64_t q = 0; q < rows; q += kMr) {
    const int live = static_cast<int>(std::min<std::int64_t>(kMr, rows - q));
    float* dst = pa + q * kc;
    const float* src = a + (r0 + q) * g.k + p0;
#if defined(__AVX512F__)
    pack_transposed(src, g.k, live, kc, dst, kMr, kMr);
#else
    for (std::int64_t p = 0; p < kc; ++p) {
      float* d = dst + p * kMr;
      for (int i = 0; i < live; ++i) d[i] = src[i * g.k + p];
      for (int i = live; i < kMr; ++i) d[i] = 0.0f;
    }
#endif
  }
}

// Columns [c0, c0 + cols) × depth [p0, p0 + kc) of op(B) into kNr-column micro-panels: panel s
// holds columns s·kNr.. as pb[s·kNr·kc + p·kNr + j], columns past the edge zero.
void pack_b(const float* b, const StridedGemm& g, std::int64_t c0, std::int64_t cols,
            std::int64_t p0, std::int64_t kc, float* pb) {
  if (!g.trans_b) {  // B stored k×n: op(B)[p][j] = b[p·n + j], columns contiguous
    for (std::int64_t p = 0; p < kc; ++p) {  // row by row, as pack_a does
      const float* sp = b + (p0 + p) * g.n + c0;
      for (std::int64_t s = 0; s < cols; s += kNr)
        copy_step<kNr>(pb + s * kc + p * kNr, sp + s,
                       static_cast<int>(std::min<std::int64_t>(kNr, cols - s)));
    }
    return;
  }
  // B stored n×k: op(B)[p][j] = b[j·k + p], depth contiguous
  for (std::int64_t s = 0; s < cols; s += kNr) {
    const int live = static_cast<int>(std::min<std::int64_t>(kNr, cols - s));
    float* dst = pb + s * kc;
    const float* src = b + (c0 + s) * g.k + p0;
#if defined(__AVX512F__)
    for (int v = 0; v < kNr; v += 16) {
      const int rows = std::max(0, std::min(16, live - v));
      pack_transposed(src + v * g.k, g.k, rows, kc, dst + v, kNr, 16);
    }
#else
    for (std::int64_t p = 0; p < kc; ++p) {
      float* d = dst + p * kNr;
      for (int j = 0; j < live; ++j) d[j] = src[j * g.k + p];
      for (int j = live; j < kNr; ++j) d[j] = 0.0f;
    }
#endif
  }
}

// The packing buffers of the calling thread, allocated once at their largest size.
struct PackBuffers {
  float* a;
  float* b;
  PackBuffers()
      : a(new (std::align_val_t(64)) float[kPackRowsMax * kGemmKcMax]),
        b(new (std::align_val_t(64)) float[kPackColsMax * kGemmKcMax]) {}
  ~PackBuffers() {
    ::operator delete[](a, std::align_val_t(64));
    ::operator delete[](b, std::align_val_t(64));
  }
  PackBuffers(const PackBuffers&) = delete;
  PackBuffers& operator=(const PackBuffers&) = delete;
};

PackBuffers& pack_buffers() {
  thread_local PackBuffers buffers;
  return buffers;
}

// C tile = beta · C tile (zero when beta = 0): the products are empty.
void scale_tile(float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, float beta) {
  for (std::int64_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    for (std::int64_t j = 0; j < cols; ++j) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
  }
}

// The packed operand shared by every task of a product (gemm_plan), owned by the calling
// thread: allocated at the largest size it has needed so far.
float* shared_buffer(std::int64_t floats) {
  struct Arena {
    float* data = nullptr;
    std::int64_t size = 0;
    ~Arena() { ::operator delete[](data, std::align_val_t(64)); }
  };
  thread_local Arena arena;
  if (arena.size < floats) {
    ::operator delete[](arena.data, std::align_val_t(64));
    arena.data = nullptr, arena.size = 0;  // consistent should the allocation throw
    arena.data = new (std::align_val_t(64)) float[floats];
    arena.size = floats;
  }
  return arena.data;
}

// Rows [r0, r0 + rows) × columns [c0, c0 + cols) of output matrix `i` of the family. A
// non-null shared_a (shared_b) holds all of op(A) (op(B)) already packed, depth block after
// depth block, each as the micro-panels pack_a (pack_b) writes for the whole height (width).
void run_tile(const float* a, const float* b, float* c, const StridedGemm& g, std::int64_t i,
              std::int64_t r0, std::int64_t rows, std::int64_t c0, std::int64_t cols, float alpha,
              float beta, const float* shared_a, const float* shared_b) {
  float* ct = c + i * g.c_step + r0 * g.n + c0;
  if (g.reduce <= 0 || g.k <= 0) {
    scale_tile(ct, g.n, rows, cols, beta);
    return;
  }
  PackBuffers& buf = pack_buffers();
  const std::int64_t blocks = ceil_div(g.k, kGemmKcMax);
  const std::int64_t block_depth = ceil_div(g.k, blocks);
  for (std::int64_t r = 0; r < g.reduce; ++r) {
    const std::int64_t p = i * g.reduce + r;
    const float* ap = a + p * g.a_step;
    const float* bp = b + p * g.b_step;
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      const std::int64_t p0 = blk * block_depth;
      const std::int64_t kc = std::min(block_depth, g.k - p0);
      const float* pa = buf.a;
      const float* pb = buf.b;
      if (shared_a != nullptr) pa = shared_a + p0 * round_up(g.m, kMr) + r0 * kc;
      else pack_a(ap, g, r0, rows, p0, kc, buf.a);
      if (shared_b != nullptr) pb = shared_b + p0 * round_up(g.n, kNr) + c0 * kc;
      else pack_b(bp, g, c0, cols, p0, kc, buf.b);
      Epilogue e{Store::kAccumulate, alpha, beta};
      if (r == 0 && blk == 0 && beta != 1.0f)
        e.store = beta == 0.0f ? Store::kOverwrite : Store::kScale;
      // One A micro-panel (kMr × kc, a few KiB) stays in L1 while the B panels stream from L2;
      // measured faster than the other order, which keeps a B panel (kc × kNr) in L1.
      for (std::int64_t q = 0; q < rows; q += kMr) {
        const int live_rows = static_cast<int>(std::min<std::int64_t>(kMr, rows - q));
        const MicroKernel kernel = kernel_for_rows[live_rows - 1];
        for (std::int64_t s = 0; s < cols; s += kNr) {
          const int live_cols = static_cast<int>(std::min<std::int64_t>(kNr, cols - s));
          kernel(kc, pa + q * kc, pb + s * kc, ct + q * g.n + s, g.n, live_cols, e);
        }
      }
    }
  }
}

}  // namespace

double fma_peak_gflops(double seconds) {
  double rate = 0.0;
  float sink = 0.0f;
#pragma omp parallel reduction(+ : rate, sink)
  rate += thread_fma_rate(seconds, sink);
  // The chains settle at 1: anything else means the loop did not run as written.
  HONE_CHECK(sink > 0.0f, "fma_peak_gflops", "the probe's chains summed to ", sink);
  return rate * 1e-9;
}

void gemm_packed(const float* a, const float* b, float* c, const StridedGemm& g, float alpha,
                 float beta) {
  if (g.m <= 0 || g.n <= 0 || g.count <= 0) return;
  const GemmPlan plan = gemm_plan(g);
  const GemmTiles& t = plan.tiles;
  const std::int64_t per_matrix = t.row_tiles * t.col_tiles;
  const std::int64_t tasks = g.count * per_matrix;
  const double work = static_cast<double>(g.count) * static_cast<double>(g.reduce) *
                      static_cast<double>(g.m) * static_cast<double>(g.n) *
                      static_cast<double>(g.k);
  // The shared operand (plan.share), packed in micro-panels by every thread before any task
  // starts; the end of that loop is the team's only extra barrier.
  const bool share_a = plan.share == GemmShare::kA;
  const std::int64_t extent = share_a ? g.m : g.n, unit = share_a ? kMr : kNr;
  // Items of kSharePanels micro-panels: long enough runs of the source rows for pack_a/pack_b.
  const std::int64_t span = kSharePanels * unit;
  const std::int64_t items = plan.share == GemmShare::kNone ? 0 : ceil_div(extent, span);
  const std::int64_t blocks = ceil_div(g.k, kGemmKcMax);
  const std::int64_t block_depth = blocks > 0 ? ceil_div(g.k, blocks) : 0;
  float* shared = items > 0 ? shared_buffer(round_up(extent, unit) * g.k) : nullptr;
  // Tiles have fixed bounds and every element's sum runs in the same order in any tile, so which
  // thread runs a task (and how many there are) does not change a bit; nor does which one packs
  // a panel. Dynamic scheduling balances ragged edge tiles.
#pragma omp parallel if (tasks > 1 && work >= kGemmMinParallelWork)
  {
    if (items > 0) {  // the same on every thread
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t item = 0; item < blocks * items; ++item) {
        const std::int64_t p0 = (item / items) * block_depth, q = (item % items) * span;
        const std::int64_t kc = std::min(block_depth, g.k - p0);
        const std::int64_t live = std::min(span, extent - q);
        float* dst = shared + p0 * round_up(extent, unit) + q * kc;
        if (share_a) pack_a(a, g, q, live, p0, kc, dst);
        else pack_b(b, g, q, live, p0, kc, dst);
      }
    }
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
      const std::int64_t i = task / per_matrix;
      const std::int64_t tile = task % per_matrix;
      const std::int64_t r0 = (tile / t.col_tiles) * t.tile_rows;
      const std::int64_t c0 = (tile % t.col_tiles) * t.tile_cols;
      run_tile(a, b, c, g, i, r0, std::min(t.tile_rows, g.m - r0), c0,
               std::min(t.tile_cols, g.n - c0), alpha, beta, share_a ? shared : nullptr,
               plan.share == GemmShare::kB ? shared : nullptr);
    }
  }
}

#endif  // HONE_GEMM_KERNEL

}  // namespace hone::cpu

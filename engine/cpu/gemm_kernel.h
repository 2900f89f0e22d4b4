// The f32 GEMM of the CPU backend: cache-blocked, with packed operands and an AVX-512 (or
// AVX2+FMA) register-blocked micro-kernel. gemm_strided<float> (matmul.cpp) calls it when the
// build has one of those instruction sets; the Eigen product stays as the fallback and as the
// baseline the benchmark compares against.
#pragma once
#include <cstdint>

#include "cpu/matmul.h"

namespace hone::cpu {

// Register blocks of the micro-kernels: kGemmMr rows of C (A broadcast) × kGemmNr columns (B
// in vectors). Chosen by measurement on the shapes of a training step (benchmarks/bench_gemm).
// Which one a build uses depends on the flags gemm_kernel.cpp is compiled with, not on those of
// the file including this header: ask gemm_kernel_info().
inline constexpr int kGemmMrAvx512 = 14, kGemmNrAvx512 = 32;
inline constexpr int kGemmMrAvx2 = 6, kGemmNrAvx2 = 16;

// Depth blocking: k is cut into ceil(k / kGemmKcMax) blocks of equal size (the last may be
// shorter), summed in order. Each block of each C element is one chain of fused multiply-adds
// from zero, added onto C at the store, so a result depends on k alone, never on where its tile
// lies or which thread ran it.
inline constexpr std::int64_t kGemmKcMax = 384;
// Largest output tile of one task; tiles shrink so that small products still give every thread
// work (see gemm_tiles).
inline constexpr std::int64_t kGemmTaskRowsMax = 384;
inline constexpr std::int64_t kGemmTaskColsMax = 768;

// The packed kernel of this build: isa "avx512", "avx2" or "" (none: f32 products go through
// Eigen), and its register block.
struct GemmKernelInfo {
  const char* isa;
  int mr, nr;
};
GemmKernelInfo gemm_kernel_info();

// The f32 multiply-add ceiling of this build's vector ISA, in GFLOP/s over all of OpenMP's
// threads at once: each thread runs kGemmMr·kGemmNr/W independent chains of vector fused
// multiply-adds (the micro-kernel's accumulators) on registers alone, for about `seconds` cut
// into windows; each thread's best window counts and the threads' rates are added. What a GEMM
// on this machine can approach, measured rather than taken from a data sheet (clock and vector
// units vary with the load and the machine); the benchmarks report against it. 0 in a build
// without a packed kernel.
double fma_peak_gflops(double seconds = 0.5);

// The task grid of each of `count` output matrices: tile_rows × tile_cols tiles (the last
// row/column of tiles may be short). Depends only on the shapes; the values computed do not
// depend on it at all (see kGemmKcMax), only the load balance does.
struct GemmTiles {
  std::int64_t tile_rows = 0, tile_cols = 0;
  std::int64_t row_tiles = 0, col_tiles = 0;
};
GemmTiles gemm_tiles(std::int64_t m, std::int64_t n, std::int64_t count);

// Packing once what tiles share. In the plain grid each task packs its rows of op(A) and its
// columns of op(B), so every tile of a row packs the same A again and every tile of a column the
// same B. For a single product (count = reduce = 1) the smaller operand, if its packed form
// holds at most kGemmShareMax floats, can instead be packed once for the whole product, by all
// threads together, before the tasks start: with A shared, tasks are full-height column strips
// (B packed once too); with B shared, row strips. Sharing costs a barrier, and tasks then read
// panels another core packed (from its cache), so it is only considered where the plain grid
// packs the shared operand at least kGemmShareMinReuse times: on the training-step shapes
// (bench_gemm) that is the output layer (vocabulary × hidden), a few percent faster, not the 2-4
// tiles of the other products, a few percent slower. gemm_plan then picks whichever packs the
// fewest elements, the plain grid on ties. Like the tiles, the plan depends only on the shapes,
// and the bits not at all.
enum class GemmShare { kNone, kA, kB };
inline constexpr std::int64_t kGemmShareMax = std::int64_t{1} << 22;
inline constexpr std::int64_t kGemmShareMinReuse = 8;
struct GemmPlan {
  GemmShare share = GemmShare::kNone;
  GemmTiles tiles;
};
GemmPlan gemm_plan(const StridedGemm& g);

// The packed GEMM: same contract as gemm_strided (matmul.h) for an already flattened family of
// products. Only built with a kernel (gemm_kernel_info().isa non-empty); otherwise it throws.
void gemm_packed(const float* a, const float* b, float* c, const StridedGemm& g, float alpha,
                 float beta);

// The previous implementation: every output tile one single-threaded Eigen product. The double
// instantiation (finite-difference checks) and builds without a kernel use it; the benchmark
// times it as the baseline.
template <class T>
void gemm_eigen(const T* a, const T* b, T* c, const StridedGemm& g, T alpha, T beta);

}  // namespace hone::cpu

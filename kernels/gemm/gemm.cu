// The GEMM launcher: validation, the choice of tile configuration and k split, and the
// launches (the device code is in gemm_kernel.cuh).
#include <algorithm>
#include <climits>
#include <cstdint>

#include "hone/error.h"
#include "kernels/common/check_launch.cuh"
#include "kernels/gemm/gemm_kernel.cuh"

HONE_KERNELS_BEGIN
namespace {

using namespace gemm_detail;

constexpr const char* kOp = "gemm";
constexpr std::int64_t kMaxBatchPerLaunch = 65535;  // gridDim.y
constexpr int kMaxSplits = 32;

bool aligned(const void* ptr, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(ptr) % bytes == 0;
}

const char* type_name(GemmType t) { return t == GemmType::f32 ? "f32" : "bf16"; }
std::size_t type_bytes(GemmType t) { return t == GemmType::f32 ? 4 : 2; }
bool valid_type(GemmType t) { return t == GemmType::f32 || t == GemmType::bf16; }

void validate(const GemmParams& p) {
  HONE_CHECK(p.m >= 0 && p.m <= INT_MAX, kOp, "m = ", p.m, " is out of range [0, 2^31)");
  HONE_CHECK(p.n >= 0 && p.n <= INT_MAX, kOp, "n = ", p.n, " is out of range [0, 2^31)");
  HONE_CHECK(p.k >= 0 && p.k <= INT_MAX, kOp, "k = ", p.k, " is out of range [0, 2^31)");
  HONE_CHECK(p.batch >= 1 && p.batch <= INT_MAX, kOp, "batch = ", p.batch,
             " is out of range [1, 2^31)");
  HONE_CHECK(valid_type(p.c_type), kOp, "c_type = ", static_cast<int>(p.c_type), " is unknown");
  HONE_CHECK(valid_type(p.bias_type), kOp, "bias_type = ", static_cast<int>(p.bias_type),
             " is unknown");
  HONE_CHECK(valid_type(p.residual_type), kOp, "residual_type = ",
             static_cast<int>(p.residual_type), " is unknown");
  HONE_CHECK(p.split_k >= 0, kOp, "split_k = ", p.split_k, " is negative");
  HONE_CHECK(p.sm_count >= 0, kOp, "sm_count = ", p.sm_count, " is negative");
  HONE_CHECK(aligned(p.workspace, 16), kOp, "workspace ", p.workspace,
             " is not 16-byte aligned");
  HONE_CHECK(p.workspace != nullptr || p.workspace_bytes == 0, kOp, "workspace_bytes = ",
             p.workspace_bytes, " but workspace is null");
  if (p.m == 0 || p.n == 0) return;  // nothing to compute or read

  const std::int64_t a_cols = p.a_trans ? p.m : p.k, b_cols = p.b_trans ? p.k : p.n;
  HONE_CHECK(p.c != nullptr, kOp, "c is null");
  HONE_CHECK(p.ldc >= p.n, kOp, "ldc = ", p.ldc, " is less than n = ", p.n);
  if (p.k > 0) {
    HONE_CHECK(p.a != nullptr, kOp, "a is null");
    HONE_CHECK(p.b != nullptr, kOp, "b is null");
    HONE_CHECK(p.lda >= a_cols, kOp, "lda = ", p.lda, " is less than ", p.a_trans ? "m = " : "k = ",
               a_cols, p.a_trans ? " (A stored k×m)" : " (A stored m×k)");
    HONE_CHECK(p.ldb >= b_cols, kOp, "ldb = ", p.ldb, " is less than ", p.b_trans ? "k = " : "n = ",
               b_cols, p.b_trans ? " (B stored n×k)" : " (B stored k×n)");
  }
  if (p.residual) HONE_CHECK(p.ldr >= p.n, kOp, "ldr = ", p.ldr, " is less than n = ", p.n);
  HONE_CHECK(p.stride_a >= 0, kOp, "stride_a = ", p.stride_a, " is negative");
  HONE_CHECK(p.stride_b >= 0, kOp, "stride_b = ", p.stride_b, " is negative");
  HONE_CHECK(p.stride_r >= 0, kOp, "stride_r = ", p.stride_r, " is negative");
  if (p.batch > 1) {
    // Entries of C must not overlap: each is (m-1)·ldc + n elements long.
    const std::int64_t c_extent = (p.m - 1) * p.ldc + p.n;
    HONE_CHECK(p.stride_c >= c_extent, kOp, "stride_c = ", p.stride_c,
               " makes the batch entries of C overlap (each spans ", c_extent, " elements)");
  }
  if (p.residual == p.c && p.residual)
    HONE_CHECK(p.ldr == p.ldc && p.residual_type == p.c_type &&
                   (p.batch == 1 || p.stride_r == p.stride_c),
               kOp, "residual is C itself but ldr = ", p.ldr, ", residual_type = ",
               type_name(p.residual_type), ", stride_r = ", p.stride_r, " differ from C's (ldc = ",
               p.ldc, ", c_type = ", type_name(p.c_type), ", stride_c = ", p.stride_c, ")");
}

int device_sm_count(const GemmParams& p) {
  if (p.sm_count > 0) return p.sm_count;
#if defined(__CUDACC__)
  int device = 0, count = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
  HONE_CHECK(err == cudaSuccess, kOp, "cannot query the SM count: ", cudaGetErrorString(err));
  return std::max(count, 1);
#else
  return 132;  // what the automatic split assumes under the emulator (an H100/H200's count)
#endif
}

// The schedule of one GEMM: tile configuration, k tiles and how they split.
struct Plan {
  bool skinny = false;
  int tiles_m = 0, tiles_n = 0;
  int k_tiles = 0, k_tiles_per_split = 0, splits = 1;
  std::size_t workspace = 0;  // bytes for the partial sums (0 without a split)
};

template <class Cfg>
void tile_counts(const GemmParams& p, Plan& plan) {
  const std::int64_t tm = (p.m + Cfg::kM - 1) / Cfg::kM, tn = (p.n + Cfg::kN - 1) / Cfg::kN;
  HONE_CHECK(tm * tn <= INT_MAX, kOp, "m = ", p.m, ", n = ", p.n, " need ", tm * tn,
             " output tiles; at most 2^31 - 1 fit in one launch");
  plan.tiles_m = static_cast<int>(tm), plan.tiles_n = static_cast<int>(tn);
  plan.k_tiles = static_cast<int>((p.k + Cfg::kK - 1) / Cfg::kK);
}

// `auto_workspace`: bytes the automatic choice may use (unlimited when asked for the size).
Plan make_plan(const GemmParams& p, std::size_t auto_workspace) {
  Plan plan;
  plan.skinny = p.m <= SkinnyTile::kM;
  if (plan.skinny)
    tile_counts<SkinnyTile>(p, plan);
  else
    tile_counts<LargeTile>(p, plan);
  const std::int64_t batch = std::min(p.batch, kMaxBatchPerLaunch);
  const std::int64_t blocks = static_cast<std::int64_t>(plan.tiles_m) * plan.tiles_n * batch;
  int splits = 1;
  if (p.split_k > 0) {
    splits = p.split_k;
  } else if (plan.k_tiles >= 8) {
    // Too few blocks to fill the device: split k until about two waves are in flight (skinny
    // blocks are small, so four), keeping at least four k tiles per split.
    const std::int64_t target = static_cast<std::int64_t>(device_sm_count(p)) * (plan.skinny ? 4 : 2);
    if (blocks < target)
      splits = static_cast<int>(std::min<std::int64_t>({(target + blocks - 1) / blocks,
                                                         plan.k_tiles / 4, kMaxSplits}));
  }
  splits = std::max(1, std::min(splits, plan.k_tiles));
  plan.k_tiles_per_split = std::max(1, (plan.k_tiles + splits - 1) / splits);
  plan.splits = plan.k_tiles == 0 ? 1 : (plan.k_tiles + plan.k_tiles_per_split - 1) / plan.k_tiles_per_split;
  if (plan.splits > 1)
    plan.workspace = static_cast<std::size_t>(plan.splits) * batch * p.m * p.n * sizeof(float);
  if (p.split_k == 0 && plan.workspace > auto_workspace) {  // not enough scratch: no split
    plan.splits = 1;
    plan.k_tiles_per_split = std::max(plan.k_tiles, 1);
    plan.workspace = 0;
  }
  return plan;
}

// Second pass of a split-K GEMM: each thread adds one pair of columns over the splits in split
// order (fixed, so the sum does not depend on timing) and applies the epilogue.
__global__ void __launch_bounds__(256) gemm_reduce_kernel(GemmArgs p, int splits) {
  const int pairs_per_row = (p.n + 1) / 2;
  const std::int64_t total = static_cast<std::int64_t>(p.batch) * p.m * pairs_per_row;
  const std::int64_t plane = static_cast<std::int64_t>(p.batch) * p.m * p.n;
  for (std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       idx < total; idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const int col = static_cast<int>(idx % pairs_per_row) * 2;
    const std::int64_t r = idx / pairs_per_row;  // bi·m + row
    const int row = static_cast<int>(r % p.m), bi = static_cast<int>(r / p.m);
    const bool two = col + 1 < p.n, pair = (p.n & 1) == 0;
    float s0 = 0.0f, s1 = 0.0f;
    for (int sp = 0; sp < splits; ++sp) {
      float x0, x1;
      load_pair(p.partial, GemmType::f32, sp * plane + r * p.n + col, two, pair, x0, x1);
      s0 += x0, s1 += x1;
    }
    epilogue_pair(p, bi, row, col, two, s0, s1);
  }
}

template <class Cfg, bool kATrans, bool kBTrans>
void launch_tiles(const GemmArgs& args, dim3 grid, cudaStream_t stream) {
  void (*kernel)(GemmArgs) = gemm_kernel<Cfg, kATrans, kBTrans>;
  const std::size_t smem = sizeof(SharedStorage<Cfg, kATrans, kBTrans>);
#if defined(__CUDACC__)
  // Above 48 KiB of dynamic shared memory a kernel must opt in (per device, so every time).
  const cudaError_t err = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  HONE_CHECK(err == cudaSuccess, kOp, "cannot allow ", smem, " bytes of shared memory: ",
             cudaGetErrorString(err));
#endif
  launch(kernel, grid, dim3(Cfg::kThreads), smem, stream, args);
  check_launch(kOp);
}

template <class Cfg>
void launch_layout(const GemmArgs& args, dim3 grid, bool a_trans, bool b_trans,
                   cudaStream_t stream) {
  if (!a_trans && !b_trans) launch_tiles<Cfg, false, false>(args, grid, stream);
  if (!a_trans && b_trans) launch_tiles<Cfg, false, true>(args, grid, stream);
  if (a_trans && !b_trans) launch_tiles<Cfg, true, false>(args, grid, stream);
  if (a_trans && b_trans) launch_tiles<Cfg, true, true>(args, grid, stream);
}

}  // namespace

std::size_t gemm_workspace_bytes(const GemmParams& p) {
  validate(p);
  if (p.m == 0 || p.n == 0) return 0;
  return make_plan(p, SIZE_MAX).workspace;
}

void gemm(const GemmParams& p, cudaStream_t stream) {
  validate(p);
  if (p.m == 0 || p.n == 0) return;
  const Plan plan = make_plan(p, p.workspace_bytes);
  HONE_CHECK(plan.workspace <= p.workspace_bytes, kOp, "split_k = ", p.split_k, " needs ",
             plan.workspace, " bytes of workspace; workspace_bytes = ", p.workspace_bytes);

  GemmArgs args{};
  args.bias = p.bias;
  args.partial = plan.splits > 1 ? static_cast<float*>(p.workspace) : nullptr;
  args.m = static_cast<int>(p.m), args.n = static_cast<int>(p.n), args.k = static_cast<int>(p.k);
  args.lda = p.lda, args.ldb = p.ldb, args.ldc = p.ldc, args.ldr = p.ldr;
  args.stride_a = p.stride_a, args.stride_b = p.stride_b;
  args.stride_c = p.stride_c, args.stride_r = p.stride_r;
  args.alpha = p.alpha, args.beta = p.beta;
  args.tiles_m = plan.tiles_m, args.tiles_n = plan.tiles_n;
  args.k_tiles = plan.k_tiles, args.k_tiles_per_split = plan.k_tiles_per_split;
  args.c_type = p.c_type, args.bias_type = p.bias_type, args.residual_type = p.residual_type;
  // 16-byte copies need every row start of every batch entry on a 16-byte boundary.
  const bool batched = p.batch > 1;
  args.a_vec = aligned(p.a, 16) && p.lda % 8 == 0 && (!batched || p.stride_a % 8 == 0);
  args.b_vec = aligned(p.b, 16) && p.ldb % 8 == 0 && (!batched || p.stride_b % 8 == 0);
  const std::size_t cb = type_bytes(p.c_type), rb = type_bytes(p.residual_type);
  args.c_pair = aligned(p.c, 2 * cb) && p.ldc % 2 == 0 && (!batched || p.stride_c % 2 == 0);
  args.r_pair = aligned(p.residual, 2 * rb) && p.ldr % 2 == 0 && (!batched || p.stride_r % 2 == 0);
  args.bias_pair = aligned(p.bias, 2 * type_bytes(p.bias_type));

  for (std::int64_t b0 = 0; b0 < p.batch; b0 += kMaxBatchPerLaunch) {
    const int batch = static_cast<int>(std::min(p.batch - b0, kMaxBatchPerLaunch));
    GemmArgs chunk = args;
    chunk.batch = batch;
    chunk.a = static_cast<const std::uint16_t*>(p.a) + (p.a ? b0 * p.stride_a : 0);
    chunk.b = static_cast<const std::uint16_t*>(p.b) + (p.b ? b0 * p.stride_b : 0);
    chunk.c = static_cast<unsigned char*>(p.c) + b0 * p.stride_c * static_cast<std::int64_t>(cb);
    chunk.residual = p.residual ? static_cast<const unsigned char*>(p.residual) +
                                      b0 * p.stride_r * static_cast<std::int64_t>(rb)
                                : nullptr;
    const dim3 grid(static_cast<unsigned>(plan.tiles_m * plan.tiles_n),
                    static_cast<unsigned>(batch), static_cast<unsigned>(plan.splits));
    if (plan.skinny)
      launch_layout<SkinnyTile>(chunk, grid, p.a_trans, p.b_trans, stream);
    else
      launch_layout<LargeTile>(chunk, grid, p.a_trans, p.b_trans, stream);
    if (plan.splits > 1) {
      constexpr int kThreads = 256;
      const std::int64_t pairs = static_cast<std::int64_t>(batch) * p.m * ((p.n + 1) / 2);
      const std::int64_t blocks = std::min<std::int64_t>((pairs + kThreads - 1) / kThreads, 8192);
      launch(gemm_reduce_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream,
             chunk, plan.splits);
      check_launch(kOp);
    }
  }
}

HONE_KERNELS_END

// Deterministic global gradient norm in two passes. Pass 1: block b of a launch takes chunks
// b, b + grid, ... (grid fixed by the sizes alone, never by the device), each thread sums the
// squares of its elements of a chunk in fp32 (fma) and adds that to an f64 total; the block
// adds its threads' totals in a fixed tree and writes one partial. Pass 2: one block adds the
// partials in a fixed order and writes the norm and the clip factor.
#include <cmath>
#include <cstdint>

#include "hone/error.h"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"
#include "kernels/optim/optim.h"
#include "kernels/optim/table.cuh"

HONE_KERNELS_BEGIN

namespace {

using namespace optim_detail;

constexpr std::int64_t kMaxNormBlocks = 256;

struct NormShared {
  double warp_sum[kThreads / 32];
};

// Σ over the block in a fixed order: butterfly within warps, then warps in order (thread 0).
__device__ double block_sum(double x, NormShared* sh) {
  for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  if (threadIdx.x % 32 == 0) sh->warp_sum[threadIdx.x / 32] = x;
  HONE_SYNC("grad_norm.warp_sums");
  double total = 0.0;
  if (threadIdx.x == 0)
    for (unsigned w = 0; w < blockDim.x / 32; ++w) total += sh->warp_sum[w];
  return total;  // valid in thread 0
}

template <class G>
__global__ void __launch_bounds__(kThreads) sum_squares_kernel(Table t, double* partial) {
  HONE_DYNAMIC_SMEM(NormShared, sh);
  const std::int64_t total = t.chunk_begin[t.count];
  const std::int64_t tid = threadIdx.x, step = blockDim.x;
  double acc = 0.0;
  for (std::int64_t c = blockIdx.x; c < total; c += gridDim.x) {
    const int i = find_tensor(t, c);
    const std::int64_t start = (c - t.chunk_begin[i]) * kChunk;
    const std::int64_t end = start + kChunk < t.n[i] ? start + kChunk : t.n[i];
    const G* grad = static_cast<const G*>(t.grad[i]);
    float s = 0.0f;
    std::int64_t scalar_from = start;
    if (t.vec >> i & 1u) {
      scalar_from = start + (end - start) / 4 * 4;
      for (std::int64_t e = start + tid * 4; e < scalar_from; e += step * 4) {
        float g[4];
        grad4(grad + e, g);
        for (int j = 0; j < 4; ++j) s = fmaf(g[j], g[j], s);
      }
    }
    for (std::int64_t e = scalar_from + tid; e < end; e += step) {
      const float g = grad_at(grad, e);
      s = fmaf(g, g, s);
    }
    acc += static_cast<double>(s);
  }
  const double b = block_sum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = b;
}

__global__ void __launch_bounds__(kThreads)
    finish_norm_kernel(const double* partial, std::int64_t n, float* norm, float* clip_scale,
                       double max_norm) {
  HONE_DYNAMIC_SMEM(NormShared, sh);
  double acc = 0.0;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  const double total = block_sum(acc, sh);
  if (threadIdx.x != 0) return;
  const double r = sqrt(total);
  *norm = static_cast<float>(r);
  if (clip_scale) *clip_scale = r > max_norm ? static_cast<float>(max_norm / (r + 1e-6)) : 1.0f;
}

// Blocks of pass 1 for the launch over tensors [first, first + count): a function of the
// sizes only, so the partials and their order are the same on every device.
std::int64_t norm_blocks(const AdamWTensor* t, int first, int count) {
  std::int64_t chunks = 0;
  for (int i = first; i < first + count; ++i) chunks += (t[i].n + kChunk - 1) / kChunk;
  return chunks < kMaxNormBlocks ? chunks : kMaxNormBlocks;
}

std::int64_t total_partials(const AdamWTensor* t, int count) {
  std::int64_t n = 0;
  for (int first = 0; first < count; first += kTable)
    n += norm_blocks(t, first, count - first < kTable ? count - first : kTable);
  return n;
}

}  // namespace

std::size_t grad_norm_workspace_bytes(const AdamWTensor* tensors, int count) {
  HONE_CHECK(count >= 0, "grad_norm_workspace_bytes", "count = ", count, " is negative");
  HONE_CHECK(count == 0 || tensors != nullptr, "grad_norm_workspace_bytes", "tensors is null");
  const std::int64_t n = total_partials(tensors, count);
  return static_cast<std::size_t>(n > 0 ? n : 1) * sizeof(double);
}

void grad_norm(const GradNormParams& p, cudaStream_t stream) {
  constexpr const char* op = "grad_norm";
  HONE_CHECK(p.count >= 0, op, "count = ", p.count, " is negative");
  HONE_CHECK(p.count == 0 || p.tensors != nullptr, op, "tensors is null");
  HONE_CHECK(p.norm != nullptr, op, "norm is null");
  HONE_CHECK(p.clip_scale == nullptr || p.max_norm > 0.0, op, "max_norm = ", p.max_norm,
             "; expected > 0");
  for (int i = 0; i < p.count; ++i) {
    HONE_CHECK(p.tensors[i].n >= 0, op, "tensors[", i, "].n = ", p.tensors[i].n, " is negative");
    HONE_CHECK(p.tensors[i].n == 0 || p.tensors[i].grad != nullptr, op, "tensors[", i,
               "].grad is null (n = ", p.tensors[i].n, ")");
  }
  HONE_CHECK(p.workspace != nullptr, op, "workspace is null (grad_norm_workspace_bytes = ",
             grad_norm_workspace_bytes(p.tensors, p.count), " bytes)");
  const bool bf16_grad = p.grad_type == OptimGradType::bf16;
  double* partial = static_cast<double*>(p.workspace);
  std::int64_t written = 0;
  for (int first = 0; first < p.count; first += kTable) {
    const int count = p.count - first < kTable ? p.count - first : kTable;
    const std::int64_t blocks = norm_blocks(p.tensors, first, count);
    if (blocks == 0) continue;
    const Table tab = make_table(p.tensors, first, count, bf16_grad);
    const dim3 grid(static_cast<unsigned>(blocks));
    if (bf16_grad)
      launch(sum_squares_kernel<bf16_t>, grid, dim3(kThreads), sizeof(NormShared), stream, tab,
             partial + written);
    else
      launch(sum_squares_kernel<float>, grid, dim3(kThreads), sizeof(NormShared), stream, tab,
             partial + written);
    check_launch(op);
    written += blocks;
  }
  launch(finish_norm_kernel, dim3(1), dim3(kThreads), sizeof(NormShared), stream,
         static_cast<const double*>(partial), written, p.norm, p.clip_scale, p.max_norm);
  check_launch(op);
}

HONE_KERNELS_END

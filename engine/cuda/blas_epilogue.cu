// Element-wise completion of a cuBLASLt GEMM (see blas_epilogue.h): one thread per element of
// C, grid-stride. Memory-bound and rarely used; it exists so the baseline computes exactly what
// GemmParams promises for every combination of types.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/blas_epilogue.h"
#include "cuda/check.h"

namespace hone::cuda {

namespace {

__device__ float load(const void* p, kernels::GemmType t, std::int64_t i) {
  return t == kernels::GemmType::f32 ? static_cast<const float*>(p)[i]
                                     : __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
}

__global__ void epilogue_kernel(EpilogueParams p) {
  const std::int64_t per_entry = p.m * p.n;
  const std::int64_t total = per_entry * p.batch;
  for (std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       idx < total; idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t e = idx / per_entry, i = (idx % per_entry) / p.n, j = idx % p.n;
    const std::int64_t ci = e * p.stride_c + i * p.ldc + j;
    // scale_c = 0 assigns: C may hold NaN and is never read.
    float v = p.scale_c == 0.0f ? 0.0f : p.scale_c * load(p.c, p.c_type, ci);
    if (p.bias != nullptr) v += load(p.bias, p.bias_type, j);
    if (p.residual != nullptr) v += load(p.residual, p.residual_type, e * p.stride_r + i * p.ldr + j);
    if (p.c_type == kernels::GemmType::f32)
      static_cast<float*>(p.c)[ci] = v;
    else
      static_cast<__nv_bfloat16*>(p.c)[ci] = __float2bfloat16_rn(v);
  }
}

}  // namespace

void gemm_epilogue(const EpilogueParams& p, cudaStream_t stream) {
  const std::int64_t total = p.m * p.n * p.batch;
  if (total == 0) return;
  constexpr int kThreads = 256;
  const std::int64_t blocks = (total + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65535 ? blocks : 65535);
  epilogue_kernel<<<grid, kThreads, 0, stream>>>(p);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace hone::cuda

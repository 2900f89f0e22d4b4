// The step the cuBLASLt baseline runs after a GEMM when cuBLASLt cannot fuse it:
//   C = scale_c · C + bias + residual        (per batch entry; scale_c = 0 never reads C)
// in f32, rounded once to C's type. Used for a bias whose type differs from C's, a residual
// that cannot be passed as cuBLASLt's C matrix, and k = 0 products (C = beta · C + ...).
#pragma once
#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace hone::cuda {

struct EpilogueParams {
  std::int64_t m = 0, n = 0;
  void* c = nullptr;  // (m×n, ldc) per entry
  std::int64_t ldc = 0;
  kernels::GemmType c_type = kernels::GemmType::f32;
  float scale_c = 1.0f;
  const void* bias = nullptr;  // (n) or null, shared by every entry
  kernels::GemmType bias_type = kernels::GemmType::bf16;
  const void* residual = nullptr;  // (m×n, ldr) per entry, or null
  std::int64_t ldr = 0;
  kernels::GemmType residual_type = kernels::GemmType::bf16;
  std::int64_t batch = 1;
  std::int64_t stride_c = 0, stride_r = 0;  // in elements
};

void gemm_epilogue(const EpilogueParams& p, cudaStream_t stream);

}  // namespace hone::cuda

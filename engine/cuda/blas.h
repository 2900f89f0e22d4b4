// The cuBLASLt GEMM: the vendor baseline of hone's own GEMM kernel, with the same contract
// (kernels/gemm/gemm.h, GemmParams):
//
//   C = alpha · op(A) · op(B) + beta · C + bias + residual      (per batch entry)
//
// with fp32 accumulation. A bias of C's type is fused through cuBLASLt's bias epilogue and a
// residual through cuBLASLt's C matrix when beta = 0 and it has C's type and layout; any other
// combination (and k = 0) finishes with one element-wise pass (blas_epilogue.h), which rounds
// a bf16 C twice. Batches with a shared operand or a shared output (a stride of 0) run entry by
// entry, in order, on the stream; a shared output gets C = beta·C + Σ entries.
//
// ab_type = f32 is the f32 product of ops::matmul on CUDA: A and B f32, C f32, computed in fp32
// (CUBLAS_COMPUTE_32F: no TF32).
#pragma once
#include <cuda_runtime.h>

#include "kernels/gemm/gemm.h"

namespace hone::cuda {

// Throws a hone::Error naming the first bad field and its value.
void check_gemm_params(const kernels::GemmParams& p,
                       kernels::GemmType ab_type = kernels::GemmType::bf16);

// Enqueues the product on `stream`, which must belong to the current device. Pointers are
// device memory of the current device.
void blas_gemm(const kernels::GemmParams& p, cudaStream_t stream,
               kernels::GemmType ab_type = kernels::GemmType::bf16);

}  // namespace hone::cuda

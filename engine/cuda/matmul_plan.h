// ops::matmul / matmul_bwd on CUDA as GEMMs in the terms of kernels/gemm/gemm.h (GemmParams),
// without running them: the layout algebra lives here, CUDA-free, so a CPU test can execute the
// plan with a host GEMM and compare it with the CPU reference on every layout.
//
// Pointers are the tensors' data; strides and leading dimensions are in elements. A plan entry
// with batch > 1 and stride_c = 0 means C = beta·C + Σ_i alpha·op(A_i)·op(B_i), in entry order
// (the gradient of a 2-D operand of a batched product); the engine runs it entry by entry.
#pragma once
#include <vector>

#include "cpu/matmul.h"
#include "kernels/gemm/gemm.h"

namespace hone::cuda {

// c = alpha·op(a)·op(b) + beta·c.
kernels::GemmParams matmul_plan(const cpu::MatmulDims& d, const void* a, const void* b, void* c,
                                kernels::GemmType c_type, double alpha, double beta);

// da = beta_da·da + alpha·G·op(b)ᵀ (or its transpose), db = beta_db·db + alpha·op(a)ᵀ·G (or its
// transpose), G = dc; one entry per defined (non-null) gradient, da first.
std::vector<kernels::GemmParams> matmul_bwd_plan(const cpu::MatmulDims& d, const void* a,
                                                 const void* b, const void* dc, void* da,
                                                 kernels::GemmType da_type, void* db,
                                                 kernels::GemmType db_type, double alpha,
                                                 double beta_da = 1.0, double beta_db = 1.0);

}  // namespace hone::cuda

// Launcher of the tensor-core GEMM (gemm.cu). Host header without CUDA types.
//
//   C = alpha · op(A) · op(B) + beta · C + bias + residual      (per batch entry)
//
// op(A) is m×k: A is stored row-major m×k (lda ≥ k) or, with a_trans, k×m (lda ≥ m).
// op(B) is k×n: B is stored row-major k×n (ldb ≥ n) or, with b_trans, n×k (ldb ≥ k).
// A and B are bf16; accumulation is fp32; C is f32 or bf16 (row-major m×n, ldc ≥ n).
// bias (n, added to every row) and residual (m×n, ldr) are optional, of their stated types.
// beta = 0 never reads C (it may hold NaN). The layouts of a linear layer y = x·Wᵀ (W: out×in):
//   forward  y  = x · Wᵀ            A = x,  B = W  (b_trans)
//   backward dx = dy · W            A = dy, B = W
//   backward dW += dyᵀ · x          A = dy (a_trans), B = x, beta = 1
#pragma once
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

enum class GemmType : std::uint8_t { f32, bf16 };

struct GemmParams {
  std::int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;  // bf16
  std::int64_t lda = 0;
  bool a_trans = false;
  const void* b = nullptr;  // bf16
  std::int64_t ldb = 0;
  bool b_trans = false;
  void* c = nullptr;
  std::int64_t ldc = 0;
  GemmType c_type = GemmType::f32;
  float alpha = 1.0f, beta = 0.0f;
  const void* bias = nullptr;  // (n) or null
  GemmType bias_type = GemmType::bf16;
  const void* residual = nullptr;  // (m×n, ldr) or null
  std::int64_t ldr = 0;
  GemmType residual_type = GemmType::bf16;
  // Batched form: entry i uses a + i·stride_a, ... (in elements); batch = 1 is one GEMM.
  std::int64_t batch = 1;
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0, stride_r = 0;
};

// Validates (errors name the field and value), picks a tile configuration (a split-K / GEMV
// path for m ≤ 16) and launches on `stream`.
void gemm(const GemmParams& p, cudaStream_t stream);

HONE_KERNELS_END

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
// The epilogue computes, in fp32 and in this order, alpha·acc + beta·C + bias + residual, then
// rounds once to C's type. residual may be C itself (same ld and stride: an in-place add);
// otherwise C must not overlap any input.
//
// Schedules: large shapes run 128×128×32 block tiles (8 warps, 4 cp.async stages); m ≤ 16
// (decoding, LoRA's rank-sized products) runs 16×64×64 tiles. Either may split k over several
// blocks when there are too few output tiles to fill the device; the partial sums (fp32) go to
// `workspace` and a second kernel adds them in a fixed order, so results are deterministic
// (no atomics) for a given split. Without enough workspace the automatic choice does not split.
#pragma once
#include <cstddef>
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
  // Batched form: entry i uses a + i·stride_a, ... (in elements); batch = 1 is one GEMM. A
  // stride of 0 shares that operand between the entries (not allowed for C when batch > 1).
  std::int64_t batch = 1;
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0, stride_r = 0;
  // Split-K: 0 lets gemm() choose; s ≥ 1 forces s slices of k (fewer when k has fewer tiles),
  // which needs gemm_workspace_bytes(p) bytes of workspace when it splits.
  int split_k = 0;
  void* workspace = nullptr;  // device memory, 16-byte aligned, or null
  std::size_t workspace_bytes = 0;
  // Streaming multiprocessors of the device, for the automatic split (0: ask the runtime).
  int sm_count = 0;
};

// Validates (errors name the field and value), picks a tile configuration (a split-K / GEMV
// path for m ≤ 16) and launches on `stream`.
void gemm(const GemmParams& p, cudaStream_t stream);

// Workspace that gemm(p) uses with the same split choice (0 when it does not split). The
// workspace fields of p are ignored here: the automatic choice assumes enough is given.
std::size_t gemm_workspace_bytes(const GemmParams& p);

HONE_KERNELS_END

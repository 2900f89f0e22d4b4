// Validation of GemmParams for the cuBLASLt baseline (blas.h), shared by the cuBLASLt
// implementation (blas.cpp) and the emulated engine's host reference (blas_emulated.cpp).
#include <cstdint>
#include <limits>

#include "cuda/blas.h"
#include "hone/error.h"

namespace hone::cuda {

using kernels::GemmParams;
using kernels::GemmType;

void check_gemm_params(const GemmParams& p, GemmType ab_type) {
  constexpr const char* kOp = "blas_gemm";
  HONE_CHECK(p.m >= 0 && p.n >= 0 && p.k >= 0, kOp, "m, n, k = ", p.m, ", ", p.n, ", ", p.k,
             "; expected non-negative sizes");
  HONE_CHECK(p.batch >= 1 && p.batch <= std::numeric_limits<std::int32_t>::max(), kOp,
             "batch = ", p.batch, "; expected 1 to 2^31 - 1");
  HONE_CHECK(ab_type == GemmType::bf16 || p.c_type == GemmType::f32, kOp,
             "c_type = bf16 with f32 A and B; f32 products write f32");
  const std::int64_t a_cols = p.a_trans ? p.m : p.k;
  const std::int64_t b_cols = p.b_trans ? p.k : p.n;
  HONE_CHECK(p.lda >= a_cols && p.lda >= 1, kOp, "lda = ", p.lda, "; expected at least ",
             a_cols, p.a_trans ? " (m, A is k×m)" : " (k, A is m×k)");
  HONE_CHECK(p.ldb >= b_cols && p.ldb >= 1, kOp, "ldb = ", p.ldb, "; expected at least ",
             b_cols, p.b_trans ? " (k, B is n×k)" : " (n, B is k×n)");
  HONE_CHECK(p.ldc >= p.n && p.ldc >= 1, kOp, "ldc = ", p.ldc, "; expected at least n = ", p.n);
  HONE_CHECK(p.stride_a >= 0 && p.stride_b >= 0 && p.stride_c >= 0 && p.stride_r >= 0, kOp,
             "strides (a, b, c, r) = (", p.stride_a, ", ", p.stride_b, ", ", p.stride_c, ", ",
             p.stride_r, "); expected non-negative");
  if (p.m == 0 || p.n == 0) return;
  HONE_CHECK(p.c != nullptr, kOp, "c is null for a ", p.m, "×", p.n, " product");
  if (p.k > 0) HONE_CHECK(p.a != nullptr && p.b != nullptr, kOp, "a or b is null with k = ", p.k);
  if (p.residual != nullptr)
    HONE_CHECK(p.ldr >= p.n, kOp, "ldr = ", p.ldr, "; expected at least n = ", p.n);
}

}  // namespace hone::cuda

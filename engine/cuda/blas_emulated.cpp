// The GEMM baseline of the emulated engine (hone_emulated), in place of cuBLASLt (blas.cpp):
// the contract of blas.h computed on the host, where the emulator keeps device memory. Each
// output element accumulates op(A)·op(B) in f64 over k in order, then applies the epilogue in
// f32 (alpha·acc + beta·C + bias + residual) and rounds once to C's type, so it is the exact
// product up to C's rounding — a reference for the f32 products and the HONE_GEMM=cublas runs
// of the emulated engine, not a model of cuBLASLt's own rounding.
#include <cstdint>

#include <cuda_bf16.h>

#include "cuda/blas.h"
#include "kernels/emu/emu.h"

namespace hone::cuda {

namespace {

using kernels::GemmParams;
using kernels::GemmType;

float load(const void* base, std::int64_t i, GemmType t) {
  if (t == GemmType::f32) return static_cast<const float*>(base)[i];
  return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
}

void store(void* base, std::int64_t i, GemmType t, float v) {
  if (t == GemmType::f32)
    static_cast<float*>(base)[i] = v;
  else
    static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16(v);
}

// C = alpha·op(A)·op(B) + beta·C + bias + residual on the host, entry by entry.
void reference_gemm(const GemmParams& p, GemmType ab_type) {
  for (std::int64_t e = 0; e < p.batch; ++e) {
    const std::int64_t oa = e * p.stride_a, ob = e * p.stride_b, oc = e * p.stride_c, orr = e * p.stride_r;
    // A shared output (stride_c = 0) sums the entries: later entries add to the first.
    const float beta = p.stride_c == 0 && e > 0 ? 1.0f : p.beta;
    for (std::int64_t i = 0; i < p.m; ++i) {
      for (std::int64_t j = 0; j < p.n; ++j) {
        double acc = 0.0;
        for (std::int64_t kk = 0; kk < p.k; ++kk) {
          const std::int64_t ia = p.a_trans ? kk * p.lda + i : i * p.lda + kk;
          const std::int64_t ib = p.b_trans ? j * p.ldb + kk : kk * p.ldb + j;
          acc += static_cast<double>(load(p.a, oa + ia, ab_type)) * load(p.b, ob + ib, ab_type);
        }
        const std::int64_t ic = oc + i * p.ldc + j;
        float v = p.alpha * static_cast<float>(acc);
        if (beta != 0.0f) v += beta * load(p.c, ic, p.c_type);
        if (p.bias != nullptr) v += load(p.bias, j, p.bias_type);
        if (p.residual != nullptr) v += load(p.residual, orr + i * p.ldr + j, p.residual_type);
        store(p.c, ic, p.c_type, v);
      }
    }
  }
}

}  // namespace

void blas_gemm(const GemmParams& p, cudaStream_t, GemmType ab_type) {
  check_gemm_params(p, ab_type);
  if (p.m == 0 || p.n == 0) return;
  // As a one-thread launch: the emulated device memory is open to kernels only.
  emu::run_grid(dim3(1), dim3(1), 0, [&] { reference_gemm(p, ab_type); });
}

}  // namespace hone::cuda

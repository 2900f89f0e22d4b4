// Which implementation runs the bf16 GEMMs of ops::matmul / ops::matmul_bwd on CUDA tensors:
// hone's own tensor-core kernel (kernels/gemm) or cuBLASLt (cuda/blas.h), the baseline the
// benchmarks compare against. CUDA-free header, compiled in every build.
//
// The choice is process-wide. The environment variable HONE_GEMM=hone|cublas is read once, at
// the first GEMM (or the first gemm_backend() call), unless set_gemm_backend() came first. The
// default is hone when its kernel is compiled in, else cublas. f32 products on CUDA always use
// cuBLASLt (the hone kernel takes bf16 operands).
#pragma once
#include <string_view>

namespace hone::ops {

enum class GemmBackend { hone, cublas };

std::string_view gemm_backend_name(GemmBackend b);  // "hone", "cublas"
// "hone" or "cublas"; anything else throws naming the value.
GemmBackend parse_gemm_backend(std::string_view name);
// hone: the kernel (kernels/gemm/gemm.cu) is compiled into this build; cublas: CUDA is.
bool gemm_backend_available(GemmBackend b);
GemmBackend default_gemm_backend();
// The backend HONE_GEMM asks for: null or empty → the default; an unknown name or an
// unavailable backend throws naming HONE_GEMM and its value.
GemmBackend gemm_backend_from_env(const char* value);

// Selects the backend for the process; throws when it is not available in this build.
void set_gemm_backend(GemmBackend b);
GemmBackend gemm_backend();

}  // namespace hone::ops

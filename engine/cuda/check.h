// CUDA_CHECK / CUBLAS_CHECK: turn a failed CUDA runtime or cuBLAS call into a hone::Error with
// the expression, file:line and the library's own message. Host code only.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "hone/error.h"

#define CUDA_CHECK(expr)                                                                    \
  do {                                                                                      \
    const cudaError_t hone_err_ = (expr);                                                   \
    if (hone_err_ != cudaSuccess)                                                           \
      ::hone::fail("cuda", ::hone::cat(#expr, " failed at ", __FILE__, ":", __LINE__, ": ",  \
                                       cudaGetErrorString(hone_err_)));                     \
  } while (0)

#define CUBLAS_CHECK(expr)                                                                  \
  do {                                                                                      \
    const cublasStatus_t hone_st_ = (expr);                                                 \
    if (hone_st_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::hone::fail("cublas", ::hone::cat(#expr, " failed at ", __FILE__, ":", __LINE__, ": ", \
                                         cublasGetStatusString(hone_st_)));                 \
  } while (0)

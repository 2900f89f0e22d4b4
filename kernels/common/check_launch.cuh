// After a kernel launch: under nvcc, a launch that did not start (a bad grid or block, too much
// shared memory, no image for this GPU) throws hone::Error naming the op. Under the emulator a
// launch runs to its end on the calling thread and throws its own errors, so there is nothing
// left to check. In the launcher namespace, so that the native and the emulated build of one
// binary each have their own.
#pragma once
#include "hone/error.h"
#include "kernels/common/compat.cuh"
#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

inline void check_launch(const char* op) {
#if defined(__CUDACC__)
  const cudaError_t err = cudaGetLastError();
  HONE_CHECK(err == cudaSuccess, op, "launch failed: ", cudaGetErrorString(err));
#else
  (void)op;
#endif
}

HONE_KERNELS_END

// For launcher headers (kernels/<family>/<family>.h): the stream type and the namespace that
// keeps the two builds of one kernel source apart. Host code of the engine (g++, built with
// CUDA) and nvcc see hone::kernels::native; a test binary that compiles the same .cu under the
// emulator (HONE_EMU, g++) sees hone::kernels::emulated. Callers write hone::kernels::name in
// both cases, and a binary may link both builds without a clash.
#pragma once

typedef struct CUstream_st* cudaStream_t;  // the same declaration as CUDA's driver_types.h

#if defined(HONE_EMU) && !defined(__CUDACC__)
#define HONE_KERNELS_BEGIN \
  namespace hone::kernels {  \
  inline namespace emulated {
#else
#define HONE_KERNELS_BEGIN \
  namespace hone::kernels {  \
  inline namespace native {
#endif
#define HONE_KERNELS_END \
  }                      \
  }

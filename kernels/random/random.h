// Launcher of the Philox uniform fill (philox.cu). Host header without CUDA types. Element i
// of the output is philox_uniform_at(seed, offset, i) (include/hone/random.h): the same value
// the CPU computes.
#pragma once
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

struct PhiloxUniformParams {
  float* out = nullptr;      // (n) device memory
  std::int64_t n = 0;
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;  // first Philox block of the stream
};

void philox_uniform(const PhiloxUniformParams& p, cudaStream_t stream);

HONE_KERNELS_END

// Launcher for filling device memory with Philox uniforms. Element i of the output is
// philox_uniform_at(seed, offset, i) (include/hone/random.h): the same value the CPU computes.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace hone::kernels {

struct PhiloxUniformParams {
  float* out = nullptr;      // (n) device memory
  std::int64_t n = 0;
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;  // first Philox block of the stream
};

void philox_uniform(const PhiloxUniformParams& p, cudaStream_t stream);

}  // namespace hone::kernels

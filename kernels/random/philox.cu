// Philox uniform fill: each thread computes one Philox block and writes its four words.
#include "kernels/random/random.h"

#include "hone/error.h"
#include "hone/random.h"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"

HONE_KERNELS_BEGIN

namespace {

__global__ void philox_uniform_kernel(PhiloxUniformParams p) {
  const std::int64_t block = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t first = block * 4;
  if (first >= p.n) return;
  const Philox4 r = ::hone::philox_block(p.seed, p.offset + static_cast<std::uint64_t>(block));
#pragma unroll
  for (int j = 0; j < 4; ++j)
    if (first + j < p.n) p.out[first + j] = ::hone::philox_uniform(r.x[j]);
}

}  // namespace

void philox_uniform(const PhiloxUniformParams& p, cudaStream_t stream) {
  HONE_CHECK(p.n >= 0, "philox_uniform", "n = ", p.n, " is negative");
  HONE_CHECK(p.out != nullptr || p.n == 0, "philox_uniform", "out is null");
  if (p.n == 0) return;
  constexpr int kThreads = 256;
  const std::int64_t blocks_needed = (p.n + 4 * kThreads - 1) / (4 * kThreads);
  launch(philox_uniform_kernel, dim3(static_cast<unsigned>(blocks_needed)), dim3(kThreads), 0,
         stream, p);
  check_launch("philox_uniform");
}

HONE_KERNELS_END

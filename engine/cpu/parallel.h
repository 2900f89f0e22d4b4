// Host parallelism for the CPU reference (OpenMP), with fixed-size chunking so that results do
// not depend on the number of threads.
#pragma once
#include <cstdint>

namespace hone::cpu {

// Runs f(begin, end) over [0, n) in chunks of `grain` (the last may be short), spread over the
// OpenMP threads. Each index is visited by exactly one call.
template <class F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const std::int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1) {
    f(std::int64_t{0}, n);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * grain;
    const std::int64_t end = begin + grain < n ? begin + grain : n;
    f(begin, end);
  }
}

}  // namespace hone::cpu

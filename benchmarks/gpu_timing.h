// Timing of CUDA launches for the GPU benchmarks: one event pair per launch, median and range.
#pragma once
#include <algorithm>
#include <functional>
#include <vector>

#include "cuda/context.h"

namespace hone::bench {

struct Timing {
  double median_ms = 0, min_ms = 0, max_ms = 0;
};

// Times `f` (which enqueues work on `stream`) after `warmup` untimed calls.
inline Timing time_launches(const std::function<void()>& f, cudaStream_t stream, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<cuda::Event> start(iters), stop(iters);
  for (int i = 0; i < iters; ++i) {
    start[i].record(stream);
    f();
    stop[i].record(stream);
  }
  stop.back().synchronize();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) ms.push_back(start[i].elapsed_ms(stop[i]));
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front(), ms.back()};
}

}  // namespace hone::bench

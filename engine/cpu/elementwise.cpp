// CPU reference for add_ and scale_: each element is independent, so the chunking only spreads
// work over the threads and never changes a value.
#include "cpu/elementwise.h"

#include "cpu/parallel.h"

namespace hone::cpu {

template <class T>
void add_(T* dst, const T* src, std::int64_t n, T alpha) {
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) dst[i] += alpha * src[i];
  });
}

template <class T>
void scale_(T* x, std::int64_t n, T alpha) {
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) x[i] *= alpha;
  });
}

template void add_<float>(float*, const float*, std::int64_t, float);
template void add_<double>(double*, const double*, std::int64_t, double);
template void scale_<float>(float*, std::int64_t, float);
template void scale_<double>(double*, std::int64_t, double);

}  // namespace hone::cpu

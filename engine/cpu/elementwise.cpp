// CPU reference for the element-wise maps (add_, scale_, mul_, dropout_mask_, bias_add_): each
// element is independent, so the chunking only spreads work over the threads and never changes
// a value; and bias_bwd's fixed-chunk column sums.
#include "cpu/elementwise.h"

#include <algorithm>
#include <vector>

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

template <class T>
void mul_(T* x, const T* m, std::int64_t n) {
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) x[i] *= m[i];
  });
}

template <class T>
void dropout_mask_(T* u, std::int64_t n, double p, T keep) {
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) u[i] = static_cast<double>(u[i]) >= p ? keep : T(0);
  });
}

template <class T>
void bias_add_(T* x, const T* b, std::int64_t rows, std::int64_t features) {
  parallel_for(rows, std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(features, 1)),
               [&](std::int64_t begin, std::int64_t end) {
                 for (std::int64_t r = begin; r < end; ++r)
                   for (std::int64_t f = 0; f < features; ++f) x[r * features + f] += b[f];
               });
}

template <class T>
void bias_bwd(const T* dy, T* db, std::int64_t rows, std::int64_t features) {
  const std::int64_t chunks = (rows + kBiasRowChunk - 1) / kBiasRowChunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks * features), 0.0);
  parallel_for(chunks, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t c = begin; c < end; ++c) {
      double* p = partial.data() + c * features;
      const std::int64_t r_end = std::min(rows, (c + 1) * kBiasRowChunk);
      for (std::int64_t r = c * kBiasRowChunk; r < r_end; ++r)
        for (std::int64_t f = 0; f < features; ++f) p[f] += static_cast<double>(dy[r * features + f]);
    }
  });
  for (std::int64_t f = 0; f < features; ++f) {
    double s = 0;
    for (std::int64_t c = 0; c < chunks; ++c) s += partial[c * features + f];
    db[f] += static_cast<T>(s);
  }
}

template void bias_add_<float>(float*, const float*, std::int64_t, std::int64_t);
template void bias_add_<double>(double*, const double*, std::int64_t, std::int64_t);
template void bias_bwd<float>(const float*, float*, std::int64_t, std::int64_t);
template void bias_bwd<double>(const double*, double*, std::int64_t, std::int64_t);
template void add_<float>(float*, const float*, std::int64_t, float);
template void add_<double>(double*, const double*, std::int64_t, double);
template void scale_<float>(float*, std::int64_t, float);
template void scale_<double>(double*, std::int64_t, double);
template void mul_<float>(float*, const float*, std::int64_t);
template void mul_<double>(double*, const double*, std::int64_t);
template void dropout_mask_<float>(float*, std::int64_t, double, float);
template void dropout_mask_<double>(double*, std::int64_t, double, double);

}  // namespace hone::cpu

// CPU reference for AdamW and the gradient-norm reduction/scaling, parallel over fixed chunks.
#include "cpu/optim.h"

#include <cmath>
#include <vector>

#include "cpu/parallel.h"

namespace hone::cpu {

namespace {
constexpr std::int64_t kElementwiseGrain = std::int64_t{1} << 14;
}  // namespace

// Decoupled weight decay first, then the moment updates, then the bias-corrected step:
//   g ← g · grad_scale in T (read only; the stored gradient is not changed)
//   p ← p · (1 − lr·wd)
//   m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p − step_size · m / (sqrt(v) · (1 / sqrt(1−β2ᵗ)) + eps),  step_size = lr / (1−β1ᵗ)
// All in f64, each result rounded to T once (the CUDA kernel computes the same), in a loop the
// compiler vectorizes; one division and one square root per element (f64 vector division and
// square root are what this loop waits on). (f32 arithmetic would be ~1.8× faster here, but fp32 master weights would
// then drift from the f64 update by a few ulp a step wherever the update's own rounding matters.)
template <class T>
void adamw_step(T* param, const T* grad, T* m, T* v, std::int64_t n, const AdamWScalars& a) {
  const double t = static_cast<double>(a.step);
  const double step_size = a.lr / (1.0 - std::pow(a.beta1, t));
  const double inv_bc2_sqrt = 1.0 / std::sqrt(1.0 - std::pow(a.beta2, t));
  const double decay = 1.0 - a.lr * a.weight_decay;
  const double beta1 = a.beta1, beta2 = a.beta2, eps = a.eps;
  const T scale = static_cast<T>(a.grad_scale);  // g · scale rounded to T, as a scaled gradient
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
#pragma omp simd
    for (std::int64_t i = begin; i < end; ++i) {
      const double g = static_cast<double>(grad[i] * scale);
      const double p = static_cast<double>(param[i]) * decay;
      const double mi = beta1 * static_cast<double>(m[i]) + (1.0 - beta1) * g;
      const double vi = beta2 * static_cast<double>(v[i]) + (1.0 - beta2) * g * g;
      m[i] = static_cast<T>(mi);
      v[i] = static_cast<T>(vi);
      param[i] = static_cast<T>(p - step_size * mi / (std::sqrt(vi) * inv_bc2_sqrt + eps));
    }
  });
}

template <class T>
double grad_sum_squares(const T* g, std::int64_t n) {
  if (n <= 0) return 0.0;
  const std::int64_t chunks = (n + kGradNormChunk - 1) / kGradNormChunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
  parallel_for(n, kGradNormChunk, [&](std::int64_t begin, std::int64_t end) {
    // kGradNormLanes interleaved partial sums (four vectors of doubles: independent chains
    // that keep the adds from waiting on each other), then added in order: a fixed order,
    // whatever the thread count, vector width or alignment of g.
    double lane[kGradNormLanes] = {};
    std::int64_t i = begin;
    for (; i + kGradNormLanes <= end; i += kGradNormLanes)
      for (int j = 0; j < kGradNormLanes; ++j) {
        const double x = static_cast<double>(g[i + j]);
        lane[j] += x * x;
      }
    for (int j = 0; i < end; ++i, ++j) {
      const double x = static_cast<double>(g[i]);
      lane[j] += x * x;
    }
    double s = 0.0;
    for (double l : lane) s += l;
    partial[static_cast<std::size_t>(begin / kGradNormChunk)] = s;
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

template <class T>
void grad_scale(T* g, std::int64_t n, double scale) {
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
#pragma omp simd
    for (std::int64_t i = begin; i < end; ++i)
      g[i] = static_cast<T>(static_cast<double>(g[i]) * scale);
  });
}

#define HONE_CPU_OPTIM_INSTANTIATE(T)                                                          \
  template void adamw_step<T>(T*, const T*, T*, T*, std::int64_t, const AdamWScalars&);       \
  template double grad_sum_squares<T>(const T*, std::int64_t);                                \
  template void grad_scale<T>(T*, std::int64_t, double);
HONE_CPU_OPTIM_INSTANTIATE(float)
HONE_CPU_OPTIM_INSTANTIATE(double)
#undef HONE_CPU_OPTIM_INSTANTIATE

}  // namespace hone::cpu

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
//   p ← p · (1 − lr·wd)
//   m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p − step_size · m / (sqrt(v) / sqrt(1−β2ᵗ) + eps),  step_size = lr / (1−β1ᵗ)
template <class T>
void adamw_step(T* param, const T* grad, T* m, T* v, std::int64_t n, double lr, double beta1,
                double beta2, double eps, double weight_decay, std::int64_t step) {
  const double t = static_cast<double>(step);
  const double step_size = lr / (1.0 - std::pow(beta1, t));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, t));
  const double decay = 1.0 - lr * weight_decay;
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const double g = static_cast<double>(grad[i]);
      double p = static_cast<double>(param[i]) * decay;
      const double mi = beta1 * static_cast<double>(m[i]) + (1.0 - beta1) * g;
      const double vi = beta2 * static_cast<double>(v[i]) + (1.0 - beta2) * g * g;
      p -= step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
      m[i] = static_cast<T>(mi);
      v[i] = static_cast<T>(vi);
      param[i] = static_cast<T>(p);
    }
  });
}

template <class T>
double grad_sum_squares(const T* g, std::int64_t n) {
  if (n <= 0) return 0.0;
  const std::int64_t chunks = (n + kGradNormChunk - 1) / kGradNormChunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
  parallel_for(n, kGradNormChunk, [&](std::int64_t begin, std::int64_t end) {
    double s = 0.0;
    for (std::int64_t i = begin; i < end; ++i) {
      const double x = static_cast<double>(g[i]);
      s += x * x;
    }
    partial[static_cast<std::size_t>(begin / kGradNormChunk)] = s;
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

template <class T>
void grad_scale(T* g, std::int64_t n, double scale) {
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i)
      g[i] = static_cast<T>(static_cast<double>(g[i]) * scale);
  });
}

#define HONE_CPU_OPTIM_INSTANTIATE(T)                                                          \
  template void adamw_step<T>(T*, const T*, T*, T*, std::int64_t, double, double, double,     \
                              double, double, std::int64_t);                                  \
  template double grad_sum_squares<T>(const T*, std::int64_t);                                \
  template void grad_scale<T>(T*, std::int64_t, double);
HONE_CPU_OPTIM_INSTANTIATE(float)
HONE_CPU_OPTIM_INSTANTIATE(double)
#undef HONE_CPU_OPTIM_INSTANTIATE

}  // namespace hone::cpu

// CPU reference for AdamW and the gradient-norm reduction/scaling, parallel over fixed chunks.
#include "cpu/optim.h"

#include <cmath>
#include <vector>

#include "cpu/parallel.h"

namespace hone::cpu {

namespace {
constexpr std::int64_t kElementwiseGrain = std::int64_t{1} << 14;
}  // namespace

// Decoupled weight decay, the moment updates and the bias-corrected step, in T's own arithmetic
// with every fused multiply-add written out (the CUDA kernel computes the same operations in the
// same order, so the two agree bit for bit):
//   g ← g · grad_scale                       (the stored gradient is not changed)
//   m ← fma(β1, m, (1−β1)·g);  v ← fma(β2, v, ((1−β2)·g)·g)
//   d ← fma(sqrt(v), 1/sqrt(1−β2ᵗ), eps);  u ← (lr/(1−β1ᵗ)) · (m / d)
//   p ← fma(p, 1 − lr·wd, −u)
// The step's constants are folded in f64 and rounded to T once. The weight is rounded once per
// step, as an f64 update rounded to T would be: the update u is small against p, so its own
// rounding (relative 2⁻²⁴ in f32) is far below p's last bit. f32 arithmetic keeps the loop at
// the speed of memory (the f64 update waited on vector division and square root: ~1.5× the
// time). std::fma is one vector instruction where the build targets FMA (x86-64-v3 and up,
// AArch64); for older x86-64 levels it is a library call: the same bits, much slower.
template <class T>
void adamw_step(T* param, const T* grad, T* m, T* v, std::int64_t n, const AdamWScalars& a) {
  const double t = static_cast<double>(a.step);
  const T step_size = static_cast<T>(a.lr / (1.0 - std::pow(a.beta1, t)));
  const T inv_bc2_sqrt = static_cast<T>(1.0 / std::sqrt(1.0 - std::pow(a.beta2, t)));
  const T decay = static_cast<T>(1.0 - a.lr * a.weight_decay);
  const T beta1 = static_cast<T>(a.beta1), one_minus_beta1 = static_cast<T>(1.0 - a.beta1);
  const T beta2 = static_cast<T>(a.beta2), one_minus_beta2 = static_cast<T>(1.0 - a.beta2);
  const T eps = static_cast<T>(a.eps);
  const T scale = static_cast<T>(a.grad_scale);
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
#pragma omp simd
    for (std::int64_t i = begin; i < end; ++i) {
      const T g = grad[i] * scale;
      const T mi = std::fma(beta1, m[i], one_minus_beta1 * g);
      const T vi = std::fma(beta2, v[i], (one_minus_beta2 * g) * g);
      const T d = std::fma(std::sqrt(vi), inv_bc2_sqrt, eps);
      const T u = step_size * (mi / d);
      m[i] = mi;
      v[i] = vi;
      param[i] = std::fma(param[i], decay, -u);
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

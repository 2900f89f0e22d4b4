// CPU reference for the cross-entropy loss (forward and backward), parallel over rows. f32
// logits take cpu::exp_f32 in vectorized loops (sums still in f64); f64 logits the C library.
#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "cpu/fast_math.h"
#include "cpu/parallel.h"

namespace hone::cpu {

namespace {

// Rows per parallel chunk: about 32k logits of work per chunk, at least one row.
std::int64_t row_grain(std::int64_t vocab) {
  return std::max<std::int64_t>(1, (std::int64_t{1} << 15) / std::max<std::int64_t>(vocab, 1));
}

// The largest of x[0, n) in f64 (NaN ignored, −inf when none is larger), through 16
// interleaved lanes for f32 (a maximum does not depend on the order it is taken in).
template <class T>
double row_max(const T* x, std::int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    constexpr float kLow = -std::numeric_limits<float>::infinity();
    float lane[16];
    for (float& l : lane) l = kLow;
    std::int64_t v = 0;
    for (; v + 16 <= n; v += 16)
      for (int j = 0; j < 16; ++j) lane[j] = x[v + j] > lane[j] ? x[v + j] : lane[j];
    float m = kLow;
    for (; v < n; ++v) m = x[v] > m ? x[v] : m;
    for (float l : lane) m = l > m ? l : m;
    return static_cast<double>(m);
  }
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t v = 0; v < n; ++v) m = std::max(m, static_cast<double>(x[v]));
  return m;
}

// log Σ_v exp(x[v]) for one row, max-shifted, summed in f64.
template <class T>
double row_lse(const T* x, std::int64_t vocab) {
  const double m = row_max(x, vocab);
  if (!std::isfinite(m)) return m;  // all −inf (or an inf/NaN logit): no finite shift exists
  if constexpr (std::is_same_v<T, float>) {
    // Sixteen interleaved f64 partial sums added in lane order: a fixed order for any build.
    const float mf = static_cast<float>(m);
    double lane[16] = {};
    std::int64_t v = 0;
    for (; v + 16 <= vocab; v += 16) {
      float e[16];
#pragma omp simd
      for (int j = 0; j < 16; ++j) e[j] = exp_f32(x[v + j] - mf);
      for (int j = 0; j < 16; ++j) lane[j] += static_cast<double>(e[j]);
    }
    for (int j = 0; v < vocab; ++v, ++j) lane[j] += static_cast<double>(exp_f32(x[v] - mf));
    double s = 0.0;
    for (double l : lane) s += l;
    return m + std::log(s);
  }
  double s = 0.0;
  for (std::int64_t v = 0; v < vocab; ++v) s += std::exp(static_cast<double>(x[v]) - m);
  return m + std::log(s);
}

}  // namespace

template <class T, class I>
void cross_entropy_fwd(const T* logits, const I* targets, const T* weights, std::int64_t n_rows,
                       std::int64_t vocab, std::int64_t ignore_index, T* losses, T* lse) {
  parallel_for(n_rows, row_grain(vocab), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t n = begin; n < end; ++n) {
      const T* x = logits + n * vocab;
      const double l = row_lse(x, vocab);
      lse[n] = static_cast<T>(l);
      const std::int64_t t = static_cast<std::int64_t>(targets[n]);
      if (t == ignore_index) {
        losses[n] = T(0);
        continue;
      }
      const double w = weights ? static_cast<double>(weights[n]) : 1.0;
      losses[n] = static_cast<T>(w * (l - static_cast<double>(x[t])));
    }
  });
}

// d loss[n] / d x[n, v] = w[n] · (softmax(x[n])_v − [v == t]), softmax_v = exp(x[n, v] − lse[n]);
// chained with the upstream dlosses[n]. Overwrites dlogits.
template <class T, class I>
void cross_entropy_bwd(const T* dlosses, const T* logits, const I* targets, const T* lse,
                       const T* weights, std::int64_t n_rows, std::int64_t vocab,
                       std::int64_t ignore_index, T* dlogits) {
  parallel_for(n_rows, row_grain(vocab), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t n = begin; n < end; ++n) {
      const T* x = logits + n * vocab;
      T* dx = dlogits + n * vocab;
      const std::int64_t t = static_cast<std::int64_t>(targets[n]);
      if (t == ignore_index) {
        std::fill(dx, dx + vocab, T(0));
        continue;
      }
      const double w = weights ? static_cast<double>(weights[n]) : 1.0;
      const double g = static_cast<double>(dlosses[n]) * w;
      if constexpr (std::is_same_v<T, float>) {
        const float gf = static_cast<float>(g), lf = lse[n];
#pragma omp simd
        for (std::int64_t v = 0; v < vocab; ++v) dx[v] = gf * exp_f32(x[v] - lf);
        dx[t] = gf * (exp_f32(x[t] - lf) - 1.0f);
        continue;
      }
      const double l = static_cast<double>(lse[n]);
      for (std::int64_t v = 0; v < vocab; ++v)
        dx[v] = static_cast<T>(g * std::exp(static_cast<double>(x[v]) - l));
      dx[t] = static_cast<T>(g * (std::exp(static_cast<double>(x[t]) - l) - 1.0));
    }
  });
}

#define HONE_CPU_LOSS_INSTANTIATE(T, I)                                                        \
  template void cross_entropy_fwd<T, I>(const T*, const I*, const T*, std::int64_t,           \
                                        std::int64_t, std::int64_t, T*, T*);                  \
  template void cross_entropy_bwd<T, I>(const T*, const T*, const I*, const T*, const T*,     \
                                        std::int64_t, std::int64_t, std::int64_t, T*);
HONE_CPU_LOSS_INSTANTIATE(float, std::int32_t)
HONE_CPU_LOSS_INSTANTIATE(float, std::int64_t)
HONE_CPU_LOSS_INSTANTIATE(double, std::int32_t)
HONE_CPU_LOSS_INSTANTIATE(double, std::int64_t)
#undef HONE_CPU_LOSS_INSTANTIATE

}  // namespace hone::cpu

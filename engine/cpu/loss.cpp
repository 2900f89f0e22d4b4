// CPU reference for the cross-entropy loss (forward and backward), parallel over rows.
#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/parallel.h"

namespace hone::cpu {

namespace {

// Rows per parallel chunk: about 32k logits of work per chunk, at least one row.
std::int64_t row_grain(std::int64_t vocab) {
  return std::max<std::int64_t>(1, (std::int64_t{1} << 15) / std::max<std::int64_t>(vocab, 1));
}

// log Σ_v exp(x[v]) for one row, max-shifted, summed in f64.
template <class T>
double row_lse(const T* x, std::int64_t vocab) {
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t v = 0; v < vocab; ++v) m = std::max(m, static_cast<double>(x[v]));
  if (!std::isfinite(m)) return m;  // all −inf (or an inf/NaN logit): no finite shift exists
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

// CPU reference for the cross-entropy loss (forward and backward), parallel over rows. f32
// logits take cpu::exp_f32 in vectorized loops (sums still in f64); f64 logits the C library.
#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "cpu/fast_math.h"
#include "cpu/parallel.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace hone::cpu {

namespace {

// Rows per parallel chunk: about 32k logits of work per chunk, at least one row.
std::int64_t row_grain(std::int64_t vocab) {
  return std::max<std::int64_t>(1, (std::int64_t{1} << 15) / std::max<std::int64_t>(vocab, 1));
}

#if defined(__AVX512F__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which its uninitialized-use
// analysis reports once inlined here; the values are fully defined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// The f32 row reductions below define their order by 16 interleaved lanes: element v of a row
// goes to lane v mod 16 (the elements after the last whole block of 16 to lanes 0, 1, …), and
// the lanes are combined in lane order. With AVX-512 or AVX2 the lanes are vector registers;
// without, the same lanes are plain arrays: the same result either way.

// max over lanes of x[v] (NaN ignored: a comparison with NaN keeps the lane), −inf if none.
float row_max_f32(const float* x, std::int64_t n) {
  alignas(64) float lane[16];
  std::int64_t v = 0;
#if defined(__AVX512F__)
  __m512 acc = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (; v + 16 <= n; v += 16) acc = _mm512_max_ps(_mm512_loadu_ps(x + v), acc);  // x > acc ? x : acc
  _mm512_store_ps(lane, acc);
#elif defined(__AVX2__)
  __m256 acc0 = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), acc1 = acc0;
  for (; v + 16 <= n; v += 16) {
    acc0 = _mm256_max_ps(_mm256_loadu_ps(x + v), acc0);
    acc1 = _mm256_max_ps(_mm256_loadu_ps(x + v + 8), acc1);
  }
  _mm256_store_ps(lane, acc0);
  _mm256_store_ps(lane + 8, acc1);
#else
  for (float& l : lane) l = -std::numeric_limits<float>::infinity();
  for (; v + 16 <= n; v += 16)
    for (int j = 0; j < 16; ++j) lane[j] = x[v + j] > lane[j] ? x[v + j] : lane[j];
#endif
  for (int j = 0; v < n; ++v, ++j) lane[j] = x[v] > lane[j] ? x[v] : lane[j];
  float m = lane[0];
  for (int j = 1; j < 16; ++j) m = lane[j] > m ? lane[j] : m;
  return m;
}

// Σ exp(x[v] − shift) in f64 lanes (each term exp_f32, widened to f64).
double row_sum_exp_f32(const float* x, std::int64_t n, float shift) {
  alignas(64) double lane[16] = {};
  std::int64_t v = 0;
#if defined(__AVX512F__)
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
  for (; v + 16 <= n; v += 16) {
    alignas(64) float e[16];
#pragma omp simd
    for (int j = 0; j < 16; ++j) e[j] = exp_f32(x[v + j] - shift);
    lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm256_load_ps(e)));
    hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_load_ps(e + 8)));
  }
  _mm512_store_pd(lane, lo);
  _mm512_store_pd(lane + 8, hi);
#elif defined(__AVX2__)
  __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  for (; v + 16 <= n; v += 16) {
    alignas(64) float e[16];
#pragma omp simd
    for (int j = 0; j < 16; ++j) e[j] = exp_f32(x[v + j] - shift);
    for (int q = 0; q < 4; ++q) acc[q] = _mm256_add_pd(acc[q], _mm256_cvtps_pd(_mm_load_ps(e + 4 * q)));
  }
  for (int q = 0; q < 4; ++q) _mm256_store_pd(lane + 4 * q, acc[q]);
#else
  for (; v + 16 <= n; v += 16)
    for (int j = 0; j < 16; ++j) lane[j] += static_cast<double>(exp_f32(x[v + j] - shift));
#endif
  for (int j = 0; v < n; ++v, ++j) lane[j] += static_cast<double>(exp_f32(x[v] - shift));
  double s = 0.0;
  for (double l : lane) s += l;
  return s;
}

#if defined(__AVX512F__)
#pragma GCC diagnostic pop
#endif

// log Σ_v exp(x[v]) for one row, max-shifted, summed in f64.
template <class T>
double row_lse(const T* x, std::int64_t vocab) {
  if constexpr (std::is_same_v<T, float>) {
    const float m = row_max_f32(x, vocab);
    if (!std::isfinite(m)) return m;  // all −inf (or an inf logit): no finite shift exists
    return static_cast<double>(m) + std::log(row_sum_exp_f32(x, vocab, m));
  }
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t v = 0; v < vocab; ++v) m = std::max(m, static_cast<double>(x[v]));
  if (!std::isfinite(m)) return m;  // all −inf (or an inf/NaN logit): no finite shift exists
  double s = 0.0;
  for (std::int64_t v = 0; v < vocab; ++v) s += std::exp(static_cast<double>(x[v]) - m);
  return m + std::log(s);
}

// Row n of the forward: lse[n] and losses[n] (0 where the target is ignored).
template <class T, class I>
void row_fwd(const T* x, const I* targets, const T* weights, std::int64_t n, std::int64_t vocab,
             std::int64_t ignore_index, T* losses, T* lse) {
  const double l = row_lse(x, vocab);
  lse[n] = static_cast<T>(l);
  const std::int64_t t = static_cast<std::int64_t>(targets[n]);
  if (t == ignore_index) {
    losses[n] = T(0);
    return;
  }
  const double w = weights ? static_cast<double>(weights[n]) : 1.0;
  losses[n] = static_cast<T>(w * (l - static_cast<double>(x[t])));
}

// Row n of the backward for upstream gradient dloss: dx = dloss · w[n] · (softmax(x) −
// onehot(t)), softmax_v = exp(x[v] − lse[n]); a zero row where the target is ignored. dx may
// be x itself: the target's logit is read before the row is written.
template <class T, class I>
void row_bwd(const T* x, const I* targets, const T* weights, std::int64_t n, std::int64_t vocab,
             std::int64_t ignore_index, T dloss, T lse, T* dx) {
  const std::int64_t t = static_cast<std::int64_t>(targets[n]);
  if (t == ignore_index) {
    std::fill(dx, dx + vocab, T(0));
    return;
  }
  const double w = weights ? static_cast<double>(weights[n]) : 1.0;
  const double g = static_cast<double>(dloss) * w;
  const T xt = x[t];
  if constexpr (std::is_same_v<T, float>) {
    const float gf = static_cast<float>(g), lf = lse;
#pragma omp simd
    for (std::int64_t v = 0; v < vocab; ++v) dx[v] = gf * exp_f32(x[v] - lf);
    dx[t] = gf * (exp_f32(xt - lf) - 1.0f);
    return;
  }
  const double l = static_cast<double>(lse);
  for (std::int64_t v = 0; v < vocab; ++v)
    dx[v] = static_cast<T>(g * std::exp(static_cast<double>(x[v]) - l));
  dx[t] = static_cast<T>(g * (std::exp(static_cast<double>(xt) - l) - 1.0));
}

}  // namespace

template <class T, class I>
void cross_entropy_fwd(const T* logits, const I* targets, const T* weights, std::int64_t n_rows,
                       std::int64_t vocab, std::int64_t ignore_index, T* losses, T* lse) {
  parallel_for(n_rows, row_grain(vocab), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t n = begin; n < end; ++n)
      row_fwd(logits + n * vocab, targets, weights, n, vocab, ignore_index, losses, lse);
  });
}

template <class T, class I>
void cross_entropy_bwd(const T* dlosses, const T* logits, const I* targets, const T* lse,
                       const T* weights, std::int64_t n_rows, std::int64_t vocab,
                       std::int64_t ignore_index, T* dlogits) {
  parallel_for(n_rows, row_grain(vocab), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t n = begin; n < end; ++n)
      row_bwd(logits + n * vocab, targets, weights, n, vocab, ignore_index, dlosses[n], lse[n],
              dlogits + n * vocab);
  });
}

template <class T, class I>
void cross_entropy_fwd_bwd(const T* logits, const I* targets, const T* weights,
                           std::int64_t n_rows, std::int64_t vocab, std::int64_t ignore_index,
                           T dloss, T* losses, T* lse, T* dlogits) {
  parallel_for(n_rows, row_grain(vocab), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t n = begin; n < end; ++n) {
      // The row is still in cache from the forward when the gradient reads it again.
      row_fwd(logits + n * vocab, targets, weights, n, vocab, ignore_index, losses, lse);
      row_bwd(logits + n * vocab, targets, weights, n, vocab, ignore_index, dloss, lse[n],
              dlogits + n * vocab);
    }
  });
}

#define HONE_CPU_LOSS_INSTANTIATE(T, I)                                                        \
  template void cross_entropy_fwd<T, I>(const T*, const I*, const T*, std::int64_t,           \
                                        std::int64_t, std::int64_t, T*, T*);                  \
  template void cross_entropy_bwd<T, I>(const T*, const T*, const I*, const T*, const T*,     \
                                        std::int64_t, std::int64_t, std::int64_t, T*);        \
  template void cross_entropy_fwd_bwd<T, I>(const T*, const I*, const T*, std::int64_t,       \
                                            std::int64_t, std::int64_t, T, T*, T*, T*);
HONE_CPU_LOSS_INSTANTIATE(float, std::int32_t)
HONE_CPU_LOSS_INSTANTIATE(float, std::int64_t)
HONE_CPU_LOSS_INSTANTIATE(double, std::int32_t)
HONE_CPU_LOSS_INSTANTIATE(double, std::int64_t)
#undef HONE_CPU_LOSS_INSTANTIATE

}  // namespace hone::cpu

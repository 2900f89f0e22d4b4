// CPU reference for sampling: the rule of cpu/sampling.h, row by row (rows in parallel). The
// kept set is found by sorting the candidate keys; the kernel finds the same set by radix
// selection, and both sum the fixed-point weights exactly.
#include "cpu/sampling.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "cpu/parallel.h"

namespace hone::cpu {

namespace {

// The lowest index of the largest canonical value; m receives that value.
std::int64_t row_argmax(const float* x, std::int64_t vocab, float* m) {
  std::int64_t a = 0;
  for (std::int64_t v = 1; v < vocab; ++v)
    if (x[v] > x[a]) a = v;
  *m = x[a];
  return a;
}

std::int64_t sample_row(const float* x, std::int64_t vocab, const SampleConfig& c,
                        std::uint32_t word) {
  float m = 0.0f;
  const std::int64_t a = row_argmax(x, vocab, &m);
  if (c.greedy || c.top_k == 1 || !std::isfinite(m)) return a;

  std::vector<std::uint32_t> q(static_cast<std::size_t>(vocab));
  for (std::int64_t v = 0; v < vocab; ++v) q[v] = sampling_weight(x[v], m, c.inv_temperature);

  // kept[v]: whether v is among the candidates top-k and top-p leave.
  std::vector<char> kept(static_cast<std::size_t>(vocab), 1);
  const bool top_k = c.top_k > 0 && c.top_k < vocab;
  const bool top_p = c.top_p < (std::uint64_t{1} << 32);
  if (top_k || top_p) {
    const int bits = sampling_index_bits(vocab);
    std::vector<std::uint64_t> keys(static_cast<std::size_t>(vocab));
    for (std::int64_t v = 0; v < vocab; ++v) keys[v] = sampling_key(x[v], v, vocab, bits);
    std::vector<std::int64_t> order(static_cast<std::size_t>(vocab));
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::int64_t i, std::int64_t j) { return keys[i] > keys[j]; });
    std::int64_t len = top_k ? c.top_k : vocab;
    if (top_p) {
      std::uint64_t q_k = 0;
      for (std::int64_t i = 0; i < len; ++i) q_k += q[order[i]];
      const std::uint64_t need = sampling_top_p_mass(q_k, c.top_p);
      std::uint64_t run = 0;
      std::int64_t i = 0;
      while (i < len && run < need) run += q[order[i++]];
      len = i;
    }
    std::fill(kept.begin(), kept.end(), 0);
    for (std::int64_t i = 0; i < len; ++i) kept[order[i]] = 1;
  }

  std::uint64_t total = 0;
  for (std::int64_t v = 0; v < vocab; ++v)
    if (kept[v]) total += q[v];
  const std::uint64_t target = sampling_mul_shift32(total, word);
  std::uint64_t run = 0;
  for (std::int64_t v = 0; v < vocab; ++v) {
    if (!kept[v]) continue;
    run += q[v];
    if (run > target) return v;
  }
  return a;  // not reached: target < total
}

}  // namespace

template <class T>
void sample(const T* logits, std::int64_t n_rows, std::int64_t vocab, const SampleConfig& c,
            std::int64_t* out) {
  parallel_for(n_rows, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> x(static_cast<std::size_t>(vocab));
    for (std::int64_t r = begin; r < end; ++r) {
      for (std::int64_t v = 0; v < vocab; ++v)
        x[v] = sampling_canonical(static_cast<float>(logits[r * vocab + v]));
      out[r] = sample_row(x.data(), vocab, c, sampling_word(c.seed, c.offset, r));
    }
  });
}

template <class T>
void argmax(const T* logits, std::int64_t n_rows, std::int64_t vocab, std::int64_t* out) {
  parallel_for(n_rows, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> x(static_cast<std::size_t>(vocab));
    for (std::int64_t r = begin; r < end; ++r) {
      for (std::int64_t v = 0; v < vocab; ++v)
        x[v] = sampling_canonical(static_cast<float>(logits[r * vocab + v]));
      float m = 0.0f;
      out[r] = row_argmax(x.data(), vocab, &m);
    }
  });
}

#define HONE_CPU_SAMPLING_INSTANTIATE(T)                                                      \
  template void sample<T>(const T*, std::int64_t, std::int64_t, const SampleConfig&,         \
                          std::int64_t*);                                                    \
  template void argmax<T>(const T*, std::int64_t, std::int64_t, std::int64_t*);
HONE_CPU_SAMPLING_INSTANTIATE(float)
HONE_CPU_SAMPLING_INSTANTIATE(double)
#undef HONE_CPU_SAMPLING_INSTANTIATE

}  // namespace hone::cpu

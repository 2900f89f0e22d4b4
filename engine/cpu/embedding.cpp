// CPU reference for the token embedding: a row gather forward, and a backward that scatters
// rows into the table in token order (deterministic). Sums are in T, in token order.
#include "cpu/embedding.h"

#include <cstring>

#include "cpu/parallel.h"

namespace hone::cpu {

template <class I>
std::int64_t first_id_out_of_range(const I* ids, std::int64_t n_tokens, std::int64_t vocab) {
  for (std::int64_t n = 0; n < n_tokens; ++n) {
    const std::int64_t v = static_cast<std::int64_t>(ids[n]);
    if (v < 0 || v >= vocab) return n;
  }
  return -1;
}

template <class T, class I>
void embedding_fwd(const I* ids, const T* table, std::int64_t n_tokens, std::int64_t dim, T* out) {
  const std::int64_t grain = dim >= 8192 ? 1 : 8192 / (dim > 0 ? dim : 1);
  parallel_for(n_tokens, grain, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t)
      std::memcpy(out + t * dim, table + static_cast<std::int64_t>(ids[t]) * dim,
                  static_cast<std::size_t>(dim) * sizeof(T));
  });
}

// dtable[v] += Σ_{n : ids[n] = v} dout[n], the sum taken in increasing n. The vocabulary is cut
// into at most 64 ranges; each range is one parallel_for chunk that scans every token.
template <class T, class I>
void embedding_bwd(const I* ids, const T* dout, std::int64_t n_tokens, std::int64_t vocab,
                   std::int64_t dim, T* dtable) {
  if (n_tokens <= 0) return;
  const std::int64_t rows_per_range = (vocab + 63) / 64;
  parallel_for(vocab, rows_per_range, [&](std::int64_t v0, std::int64_t v1) {
    for (std::int64_t t = 0; t < n_tokens; ++t) {
      const std::int64_t v = static_cast<std::int64_t>(ids[t]);
      if (v < v0 || v >= v1) continue;
      T* dst = dtable + v * dim;
      const T* src = dout + t * dim;
      for (std::int64_t j = 0; j < dim; ++j) dst[j] += src[j];
    }
  });
}

template std::int64_t first_id_out_of_range<std::int32_t>(const std::int32_t*, std::int64_t,
                                                          std::int64_t);
template std::int64_t first_id_out_of_range<std::int64_t>(const std::int64_t*, std::int64_t,
                                                          std::int64_t);
#define HONE_EMBEDDING_INSTANTIATE(T, I)                                                     \
  template void embedding_fwd<T, I>(const I*, const T*, std::int64_t, std::int64_t, T*);     \
  template void embedding_bwd<T, I>(const I*, const T*, std::int64_t, std::int64_t,          \
                                    std::int64_t, T*);
HONE_EMBEDDING_INSTANTIATE(float, std::int32_t)
HONE_EMBEDDING_INSTANTIATE(float, std::int64_t)
HONE_EMBEDDING_INSTANTIATE(double, std::int32_t)
HONE_EMBEDDING_INSTANTIATE(double, std::int64_t)
#undef HONE_EMBEDDING_INSTANTIATE

}  // namespace hone::cpu

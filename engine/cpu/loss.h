// CPU reference for the cross-entropy loss: raw-pointer kernels over contiguous (N, V) logits,
// parallel over rows. Validation lives in engine/ops/loss.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// Per row n with target t = targets[n] (I is int32_t or int64_t):
//   lse[n] = m + log Σ_v exp(x[n, v] − m), m = max_v x[n, v] (sum accumulated in f64);
//   losses[n] = w[n] · (lse[n] − x[n, t]), or 0 when t == ignore_index (lse still written).
// weights may be null (w = 1). Targets must already be in [0, V) or equal ignore_index.
template <class T, class I>
void cross_entropy_fwd(const T* logits, const I* targets, const T* weights, std::int64_t n_rows,
                       std::int64_t vocab, std::int64_t ignore_index, T* losses, T* lse);

// dlogits (=) [n, v] = dlosses[n] · w[n] · (exp(x[n, v] − lse[n]) − [v == t]); a zero row
// where t == ignore_index. dlogits may equal logits (the gradient overwrites the logits).
template <class T, class I>
void cross_entropy_bwd(const T* dlosses, const T* logits, const I* targets, const T* lse,
                       const T* weights, std::int64_t n_rows, std::int64_t vocab,
                       std::int64_t ignore_index, T* dlogits);

// cross_entropy_fwd, then cross_entropy_bwd with every dlosses[n] = dloss, row by row: each
// row's gradient is written while the row is still in cache from its forward (one pass over the
// logits from memory instead of two). The same bits as the two calls; dlogits may equal logits.
template <class T, class I>
void cross_entropy_fwd_bwd(const T* logits, const I* targets, const T* weights,
                           std::int64_t n_rows, std::int64_t vocab, std::int64_t ignore_index,
                           T dloss, T* losses, T* lse, T* dlogits);

}  // namespace hone::cpu

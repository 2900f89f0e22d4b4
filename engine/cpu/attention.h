// CPU reference for scaled dot-product attention (forward, backward, and decode against a KV
// cache): raw-pointer kernels over packed sequences with grouped-query heads. Validation lives in
// engine/ops/attention.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// The problem both directions share. Tokens are rows of q/k/v/out: token n of query head h is
// q[(n · hq + h) · hd ...], of kv head g is k[(n · hkv + g) · hd ...]. Sequence s holds tokens
// [cu_seqlens[s], cu_seqlens[s + 1]) and attends only within itself (the padded layout is
// B sequences of length T: cu_seqlens = 0, T, 2T, …). Query head h reads kv head h / (hq / hkv).
// The lse of query head h at position t of sequence s is
//   lse[cu_seqlens[s] · lse_seq_mul + h · lse_head_stride + t]
// (padded (B, Hq, T): lse_seq_mul = Hq, lse_head_stride = T; packed (Hq, N): 1 and N).
struct AttentionShape {
  const std::int64_t* cu_seqlens = nullptr;  // n_seqs + 1 offsets, non-decreasing, from 0
  std::int64_t n_seqs = 0;
  std::int64_t hq = 1;
  std::int64_t hkv = 1;
  std::int64_t hd = 1;
  std::int64_t lse_seq_mul = 1;
  std::int64_t lse_head_stride = 1;
  double scale = 1.0;  // already resolved (never 0 here)
  bool causal = true;
  // > 0: query i sees only keys j with i − j < window (a sliding window); 0: no limit.
  std::int64_t window = 0;
};

// Query i of a sequence sees key j when (!causal or j ≤ i) and (window = 0 or i − j < window);
// every query sees at least itself.
// out (=) = softmax(scale · q kᵀ, masked) v per (sequence, query head); lse (=) the natural-log
// log-sum-exp of each row of the scaled, masked scores (max-shifted; arithmetic in T).
template <class T>
void attention_fwd(const T* q, const T* k, const T* v, const AttentionShape& shape, T* out, T* lse);

// Gradients from the forward's saved out and lse; dq, dk, dv overwrite (=) and any of them may
// be null (skipped). dk/dv of a kv head sum over its query-head group. Deterministic for any
// number of threads: each (sequence, kv head) is one work item that alone writes its rows.
template <class T>
void attention_bwd(const T* dout, const T* q, const T* k, const T* v, const T* out, const T* lse,
                   const AttentionShape& shape, T* dq, T* dk, T* dv);

// Decode: the newest q_len tokens of each of `batch` sequences against that sequence's cache.
// q, out: (batch, q_len, hq, hd); k, v: (batch, capacity, hkv, hd), of which the first
// cache_lens[b] rows of sequence b are valid, the new tokens' keys included (q_len ≤
// cache_lens[b] ≤ capacity). Query t of sequence b is at position p = cache_lens[b] − q_len + t
// and sees key j < cache_lens[b] when (!causal or j ≤ p) and (window = 0 or p − j < window):
// the rule of attention_fwd, so these are the last q_len rows of attention_fwd over the whole
// sequence. lse, when not null: (batch, hq, q_len), natural log.
struct AttentionDecodeShape {
  std::int64_t batch = 0;
  std::int64_t q_len = 1;
  std::int64_t capacity = 1;
  const std::int64_t* cache_lens = nullptr;  // batch entries
  std::int64_t hq = 1;
  std::int64_t hkv = 1;
  std::int64_t hd = 1;
  double scale = 1.0;  // already resolved (never 0 here)
  bool causal = true;
  std::int64_t window = 0;
};

// out (=), lse (=, optional). One work item per (sequence, query head): the score row of each
// query, max-shifted softmax and the weighted sum of values, in T; deterministic.
template <class T>
void attention_decode(const T* q, const T* k, const T* v, const AttentionDecodeShape& shape, T* out,
                      T* lse);

}  // namespace hone::cpu

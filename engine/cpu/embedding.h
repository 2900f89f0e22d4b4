// CPU reference for the token embedding lookup and its deterministic backward: raw-pointer
// kernels over a contiguous (V, D) table. Validation lives in engine/ops/embedding.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// The index of the first id outside [0, vocab), or −1 when all are in range. I is int32_t or
// int64_t.
template <class I>
std::int64_t first_id_out_of_range(const I* ids, std::int64_t n_tokens, std::int64_t vocab);

// out[n, :] = table[ids[n], :]. Ids must already be in [0, vocab).
template <class T, class I>
void embedding_fwd(const I* ids, const T* table, std::int64_t n_tokens, std::int64_t dim, T* out);

// dtable[ids[n], :] += dout[n, :] for n in token order. Deterministic whatever the thread count:
// the vocabulary rows are split among the threads and every thread scans all tokens in order,
// handling only the ids in its own row range, so each dtable row receives its tokens' rows in
// token order. Ids must already be in [0, vocab).
template <class T, class I>
void embedding_bwd(const I* ids, const T* dout, std::int64_t n_tokens, std::int64_t vocab,
                   std::int64_t dim, T* dtable);

}  // namespace hone::cpu

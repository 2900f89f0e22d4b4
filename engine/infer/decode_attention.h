// Attention of one new query per sequence against that sequence's cached keys and values: the
// decode step of the KV-cache decoder on the CPU. (A split-KV CUDA kernel will take this
// place on devices; this function is its reference.)
#pragma once
#include <cstdint>
#include <vector>

#include "hone/tensor.h"

namespace hone::infer {

// q (B, Hq, hd); k, v (B, C, Hkv, hd) caches whose first lengths[b] rows of sequence b are valid,
// the new token's key and value (position lengths[b] − 1) included; out (B, Hq, hd) (=).
// Query head h reads kv head h / (Hq / Hkv). The query sees keys j with
// window = 0 or (lengths[b] − 1) − j < window; scale 0 means 1/sqrt(hd). The same rule as
// ops::attention_fwd for the last query of a causal sequence. f32 or f64 host tensors.
void decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<std::int64_t>& lengths,
                      std::int64_t window, double scale, const Tensor& out);

}  // namespace hone::infer

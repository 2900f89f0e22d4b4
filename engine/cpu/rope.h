// CPU reference for rotary position embeddings (Hugging Face rotate-half pairing): raw-pointer
// kernels over contiguous (N, H, hd) tokens, parallel over tokens. Validation and the
// inverse-frequency table live in engine/ops/rope.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// For token n (position p = positions[n], I is int32_t or int64_t), head h and i < hd/2 with
// a = p · inv_freq[i] (computed in double) and s = +1 (forward) or −1 (backward):
//   y[n, h, i]        = x[n, h, i] cos a − s · x[n, h, i + hd/2] sin a
//   y[n, h, i + hd/2] = x[n, h, i + hd/2] cos a + s · x[n, h, i] sin a
// The backward (inverse = −1) rotates by −a. inv_freq has hd/2 entries. y may be x.
template <class T, class I>
void rope_apply(const T* x, const I* positions, const double* inv_freq, std::int64_t n_tokens,
                std::int64_t n_heads, std::int64_t head_dim, bool inverse, T* y);

}  // namespace hone::cpu

// Random bf16 weights for the device benchmarks: magnitudes 0.008–0.03, drawn on the host with a
// cheap generator (the model's Philox init in double is slow for a billion parameters), so that
// the tensor cores see data like a real model's (their clocks, and so their speed, depend on it).
#pragma once
#include <cstdint>

#include "hone/tensor.h"

namespace hone::bench {

inline void fill_random_bf16(const Tensor& params) {
  Tensor host = Tensor::empty(params.shape(), DType::bf16);
  auto* bits = static_cast<std::uint16_t*>(host.raw());
  std::uint64_t x = 88172645463325252ull;
  for (std::int64_t i = 0; i < host.numel(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    // sign, exponent 2^-7 or 2^-6, 7 random mantissa bits
    bits[i] = static_cast<std::uint16_t>(((x >> 63) << 15) | ((120u + ((x >> 62) & 1u)) << 7) | ((x >> 40) & 0x7fu));
  }
  params.copy_from(host.to(params.device()));
}

}  // namespace hone::bench

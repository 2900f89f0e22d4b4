// Philox4x32-10, a counter-based random number generator (Salmon et al., SC'11). The same
// (key, counter) gives the same numbers in host code and in CUDA kernels, which include this
// header, so CPU and GPU backends draw identical dropout masks and initialisations.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define HONE_HD __host__ __device__ __forceinline__
#else
#define HONE_HD inline
#endif

namespace hone {

struct Philox4 {
  std::uint32_t x[4];
};

HONE_HD std::uint32_t philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  return static_cast<std::uint32_t>(p);
}

// Ten rounds of Philox4x32 on counter c with key k.
HONE_HD Philox4 philox4x32_10(Philox4 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, hi1;
    const std::uint32_t lo0 = philox_mulhilo(kMul0, c.x[0], &hi0);
    const std::uint32_t lo1 = philox_mulhilo(kMul1, c.x[2], &hi1);
    c = Philox4{{hi1 ^ c.x[1] ^ k0, lo1, hi0 ^ c.x[3] ^ k1, lo0}};
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c;
}

// The four 32-bit words for stream position `offset` (a 64-bit block index) under `seed`.
// Element i of a tensor uses block i / 4, word i % 4.
HONE_HD Philox4 philox_block(std::uint64_t seed, std::uint64_t offset) {
  Philox4 c{{static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(offset >> 32), 0u, 0u}};
  return philox4x32_10(c, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// A uniform float in [0, 1) from the top 24 bits of a word (exactly representable).
HONE_HD float philox_uniform(std::uint32_t word) {
  return static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
}

// The i-th uniform of the stream (seed, start): word i % 4 of block start + i / 4.
HONE_HD float philox_uniform_at(std::uint64_t seed, std::uint64_t start, std::uint64_t i) {
  const Philox4 b = philox_block(seed, start + i / 4);
  return philox_uniform(b.x[i % 4]);
}

}  // namespace hone

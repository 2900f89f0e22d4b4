// CPU reference for token sampling (argmax, temperature, top-k, top-p), and the exact rule it
// follows, which the CUDA kernel (kernels/sampling) reproduces draw for draw. The small
// functions below the rule are shared verbatim by both (host and device, like hone/random.h).
//
// The rule, per row r of logits (R, V):
//  1. x[v] = float(logits[r, v]) (f64 logits are rounded to f32 first); NaN counts as −inf and
//     −0 as +0. m = max x, a = the lowest index with x[a] = m.
//  2. Greedy: the result is a when temperature == 0, top_k == 1 or m is not finite.
//  3. Weights in 24-bit fixed point relative to the top token:
//       q[v] = floor(2²⁴ · sampling_exp((x[v] − m) · inv_t)),   inv_t = float(1 / temperature)
//     with sampling_exp below (only correctly rounded float operations, so host and device
//     agree bit for bit). q[a] = 2²⁴; a token below 2⁻²⁴ of the top token's weight has q = 0
//     and is never drawn.
//  4. Candidate order: by key(v) = (ordered bits of x[v]) · 2^b + (V − 1 − v), b = index bits
//     of V − 1, descending; i.e. larger logit first, lower index first among equal logits.
//     top_k > 0 keeps the first min(k, V) candidates. top_p < 1 then keeps the shortest prefix
//     (of what top-k kept) whose mass reaches M = max(1, ceil(Q_k · P / 2³²)), where
//     Q_k = Σ q over the top-k set and P = floor(top_p · 2³²) (sampling_top_p_fixed). All sums
//     are exact integers, so their order does not matter.
//  5. The draw: w = word (r mod 4) of philox_block(seed, offset + r / 4) (hone/random.h), a
//     32-bit uniform; target = floor(Q · w / 2³²) with Q the kept mass. The result is the first
//     kept token in increasing index order whose running mass (kept tokens only) exceeds target.
// So a caller that samples every step advances offset by ceil(R / 4) per step.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "hone/random.h"

namespace hone::cpu {

struct SampleConfig {
  float inv_temperature = 1.0f;  // sampling_inv_temperature(T); unused when greedy
  bool greedy = false;           // temperature == 0
  std::int64_t top_k = 0;        // 0: off
  std::uint64_t top_p = 0;       // sampling_top_p_fixed(p); ≥ 2³² (p ≥ 1): off
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;
};

// out[r] = the token the rule above picks for row r of logits (n_rows, vocab). T is float or
// double.
template <class T>
void sample(const T* logits, std::int64_t n_rows, std::int64_t vocab, const SampleConfig& c,
            std::int64_t* out);

// out[r] = the lowest index of the largest logit of row r (NaN as −inf).
template <class T>
void argmax(const T* logits, std::int64_t n_rows, std::int64_t vocab, std::int64_t* out);

// ---- shared by the CPU reference and the kernel -------------------------------------------

// float(1 / temperature) for temperature > 0.
inline float sampling_inv_temperature(double temperature) {
  return static_cast<float>(1.0 / temperature);
}

// floor(p · 2³²) for p in [0, 1], saturating; 2³² means "top-p off".
inline std::uint64_t sampling_top_p_fixed(double p) {
  if (!(p > 0.0)) return 0;
  if (p >= 1.0) return std::uint64_t{1} << 32;
  return static_cast<std::uint64_t>(p * 4294967296.0);
}

HONE_HD std::uint32_t sampling_float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

HONE_HD float sampling_bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// NaN → −inf, −0 → +0: the value the rule ranks and weighs.
HONE_HD float sampling_canonical(float x) {
  if (x != x) return sampling_bits_float(0xff800000u);
  return x == 0.0f ? 0.0f : x;
}

// Rounded product without contraction into a fused multiply-add (nvcc contracts a·b + c).
HONE_HD float sampling_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// e^z for z ≤ 0 from correctly rounded operations only (fma, mul, rint, exact scaling), so the
// host and the device return the same bits: z = k·ln2 + r, |r| ≤ ln2/2, e^r by a degree-7
// Taylor polynomial (relative error below 1e-7), times 2^k. Returns 0 below −17.5 (where
// 2²⁴ · e^z < 1) and exactly 1 at z = 0.
HONE_HD float sampling_exp(float z) {
  if (!(z >= -17.5f)) return 0.0f;
  const float k = rintf(sampling_mul(z, 1.44269504088896341f));
  float r = fmaf(k, -0.693145751953125f, z);  // ln2 split: the high part has 16 bits
  r = fmaf(k, -1.42860682030941723e-6f, r);
  float p = 1.98412698412698413e-4f;           // 1/7!
  p = fmaf(p, r, 1.38888888888888889e-3f);     // 1/6!
  p = fmaf(p, r, 8.33333333333333333e-3f);     // 1/5!
  p = fmaf(p, r, 4.16666666666666667e-2f);     // 1/4!
  p = fmaf(p, r, 1.66666666666666667e-1f);     // 1/3!
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  // 2^k for k in [−26, 0] is a normal float: build it from its exponent bits.
  const float scale =
      sampling_bits_float(static_cast<std::uint32_t>(static_cast<int>(k) + 127) << 23);
  return sampling_mul(p, scale);
}

// q = floor(2²⁴ · e^((x − m) · inv_t)) for canonical x ≤ m (finite m).
HONE_HD std::uint32_t sampling_weight(float x, float m, float inv_t) {
  const float w = sampling_exp(sampling_mul(x - m, inv_t));
  return static_cast<std::uint32_t>(sampling_mul(w, 16777216.0f));
}

// Number of bits that hold an index below vocab (0 for vocab = 1).
HONE_HD int sampling_index_bits(std::int64_t vocab) {
  int b = 0;
  while (b < 63 && (std::int64_t{1} << b) < vocab) ++b;
  return b;
}

// The candidate key of a canonical logit x at index v: larger key = earlier candidate.
HONE_HD std::uint64_t sampling_key(float x, std::int64_t v, std::int64_t vocab, int index_bits) {
  std::uint32_t u = sampling_float_bits(x);
  u = (u >> 31) ? ~u : (u | 0x80000000u);  // IEEE order as unsigned order
  return (static_cast<std::uint64_t>(u) << index_bits) |
         static_cast<std::uint64_t>(vocab - 1 - v);
}

// floor(a · b / 2³²) for a < 2⁶², b ≤ 2³², exactly.
HONE_HD std::uint64_t sampling_mul_shift32(std::uint64_t a, std::uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b << 32) + ((b >> 32) ? a : 0);  // b = 2³² only for top_p = 1
#else
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(a) * b) >> 32);
#endif
}

// The mass a top-p prefix must reach: max(1, ceil(q_total · p_fixed / 2³²)).
HONE_HD std::uint64_t sampling_top_p_mass(std::uint64_t q_total, std::uint64_t p_fixed) {
  const std::uint64_t lo = sampling_mul_shift32(q_total, p_fixed);
  const bool exact = ((q_total * p_fixed) & 0xffffffffull) == 0;  // low 32 bits of the product
  const std::uint64_t m = exact ? lo : lo + 1;
  return m == 0 ? 1 : m;
}

// The 32-bit uniform word of row r.
HONE_HD std::uint32_t sampling_word(std::uint64_t seed, std::uint64_t offset, std::int64_t r) {
  const Philox4 b = philox_block(seed, offset + static_cast<std::uint64_t>(r) / 4);
  return b.x[static_cast<std::uint64_t>(r) % 4];
}

}  // namespace hone::cpu

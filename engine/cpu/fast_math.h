// Single-precision exp and logistic function for the CPU backend's f32 paths, written so that
// the compiler vectorizes the loops that call them (no library calls, no branches, no errno),
// unlike std::exp, which keeps such loops scalar. Accuracy is stated per function; the f64
// paths of the reference keep the C library's functions.
#pragma once
#include <cstdint>
#include <cstring>

namespace hone::cpu {

// e^x within 2 ulp over the whole float range: 0 below about −103.9 (after the subnormals),
// +inf above about 88.72, NaN for NaN.
//   e^x = 2^n · e^r,  n = round(x · log2 e),  r = x − n · ln 2 ∈ [−ln2/2, ln2/2],
// ln 2 split into a short high part (n · hi is exact) and a low part; e^r by its Taylor series to
// r⁷ (truncation below 1e-8 relative); 2^n built in the exponent field in two halves, so that
// n from −150 to 128 needs no special case.
inline float exp_f32(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;
  constexpr float kLn2Lo = 1.42860676533018708e-06f;
  constexpr float kRound = 12582912.0f;  // 1.5 · 2²³: adding it rounds to an integer
  // Comparisons (not fmin/fmax) so that NaN passes through.
  x = x < -104.0f ? -104.0f : x;
  x = x > 89.0f ? 89.0f : x;
  const float shifted = x * kLog2e + kRound;
  const float n = shifted - kRound;
  std::int32_t ni;
  std::memcpy(&ni, &shifted, sizeof ni);
  ni -= 0x4B400000;  // the integer n, from the low mantissa bits of `shifted`
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t n1 = ni >> 1;
  const std::int32_t b1 = (n1 + 127) << 23;
  const std::int32_t b2 = (ni - n1 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, sizeof s1);
  std::memcpy(&s2, &b2, sizeof s2);
  return p * s1 * s2;
}

// The logistic function 1 / (1 + e^(−x)): 0 for very negative x (e^(−x) = inf), 1 for large x.
inline float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

}  // namespace hone::cpu

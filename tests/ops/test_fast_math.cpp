// The vectorizable f32 exp and logistic function of the CPU backend against the C library in
// double: ulp error over the range, and the edges (overflow, underflow, NaN).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cpu/fast_math.h"

namespace {

// Distance in units in the last place between a float and the exact value (double).
double ulps(float got, double exact) {
  const float nearest = static_cast<float>(exact);
  if (got == nearest) return 0.0;
  const float next = std::nextafter(nearest, std::numeric_limits<float>::infinity());
  const double ulp = static_cast<double>(next) - static_cast<double>(nearest);
  return std::fabs(static_cast<double>(got) - exact) / (ulp > 0 ? ulp : 1e-45);
}

}  // namespace

TEST_CASE("exp_f32 is within 2 ulp of exp over the normal range", "[cpu][fast_math]") {
  double worst = 0.0;
  float at = 0.0f;
  for (float x = -87.0f; x <= 88.7f; x += 0.000731f * (1.0f + std::fabs(x))) {
    const double e = ulps(hone::cpu::exp_f32(x), std::exp(static_cast<double>(x)));
    if (e > worst) worst = e, at = x;
  }
  INFO("worst " << worst << " ulp at x = " << at);
  CHECK(worst <= 2.0);
  CHECK(hone::cpu::exp_f32(0.0f) == 1.0f);
}

TEST_CASE("exp_f32 overflows, underflows and passes NaN like exp", "[cpu][fast_math]") {
  using hone::cpu::exp_f32;
  CHECK(std::isinf(exp_f32(88.73f)));
  CHECK(std::isinf(exp_f32(1000.0f)));
  CHECK(std::isinf(exp_f32(std::numeric_limits<float>::infinity())));
  CHECK(std::isfinite(exp_f32(88.72f)));
  CHECK(exp_f32(-110.0f) == 0.0f);
  CHECK(exp_f32(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
  // Subnormal results keep their leading bits (absolute error below the smallest normal·2⁻²⁰).
  for (float x : {-88.0f, -95.5f, -100.0f, -103.0f}) {
    const double exact = std::exp(static_cast<double>(x));
    CHECK(std::fabs(hone::cpu::exp_f32(x) - exact) <= 1.2e-38 * 0x1p-20 + 1.5e-45);
  }
}

TEST_CASE("sigmoid_f32 is accurate and saturates without NaN", "[cpu][fast_math]") {
  double worst = 0.0;
  for (float x = -80.0f; x <= 80.0f; x += 0.0137f) {
    const double exact = 1.0 / (1.0 + std::exp(-static_cast<double>(x)));
    worst = std::max(worst, ulps(hone::cpu::sigmoid_f32(x), exact));
  }
  CHECK(worst <= 3.0);
  CHECK(hone::cpu::sigmoid_f32(-200.0f) == 0.0f);
  CHECK(hone::cpu::sigmoid_f32(200.0f) == 1.0f);
}

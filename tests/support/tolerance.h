// The tolerances every test uses, in one place: |actual − reference| ≤ atol + rtol·|reference|,
// with the reference rounded to the output dtype first.
#pragma once
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "hone/tensor.h"

namespace hone::test {

struct Tolerance {
  double atol;
  double rtol;
};

inline Tolerance tolerance_for(DType t) {
  switch (t) {
    case DType::f64: return {1e-12, 1e-12};
    case DType::f32: return {1e-5, 1e-5};
    case DType::bf16: return {1e-2, 1e-2};
    case DType::f16: return {1e-3, 1e-3};
    default: return {0.0, 0.0};
  }
}

// Finite differences in f64 (central, h ≈ 1e-6): truncation O(h²) plus roundoff O(ε/h).
inline constexpr Tolerance kFiniteDifference{1e-6, 1e-5};

// Empty when every element is within tolerance; otherwise a report of the worst element and
// the number of mismatches. NaN anywhere is a mismatch.
inline std::string compare(const std::vector<double>& actual, const std::vector<double>& reference,
                           Tolerance tol) {
  std::ostringstream os;
  if (actual.size() != reference.size()) {
    os << "size " << actual.size() << " vs reference " << reference.size();
    return os.str();
  }
  std::size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double limit = tol.atol + tol.rtol * std::fabs(reference[i]);
    const double err = std::fabs(actual[i] - reference[i]);
    const bool ok = err <= limit;  // false for NaN
    if (!ok) {
      ++bad;
      const double excess = std::isnan(err) ? 1e300 : err - limit;
      if (excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  if (bad == 0) return "";
  os << bad << " of " << actual.size() << " elements out of tolerance (atol " << tol.atol
     << ", rtol " << tol.rtol << "); worst at " << worst << ": " << actual[worst] << " vs "
     << reference[worst];
  return os.str();
}

inline std::string compare(const Tensor& actual, const Tensor& reference, Tolerance tol) {
  if (actual.shape() != reference.shape())
    return "shape " + shape_str(actual.shape()) + " vs reference " + shape_str(reference.shape());
  return compare(actual.to_vector<double>(), reference.to_vector<double>(), tol);
}

inline std::string compare(const Tensor& actual, const Tensor& reference) {
  return compare(actual, reference, tolerance_for(actual.dtype()));
}

// "" when every element of `actual` (bf16 storage) is within one bf16 ulp of the reference plus
// `slack`: fp32 math may round the other way near a tie, and outputs that cancel to near zero
// carry the fp32 error of their terms (slack) rather than a relative one. Else a description.
inline std::string bf16_close(const Tensor& actual, const std::vector<double>& ref, double slack) {
  const std::vector<double> a = actual.to_vector<double>();
  if (a.size() != ref.size()) return "size mismatch";
  std::size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double mag = std::fabs(ref[i]);
    const double ulp = mag > 0 ? std::ldexp(1.0, std::ilogb(mag) - 7) : 0.0;
    const double excess = std::fabs(a[i] - ref[i]) - (ulp + slack);
    if (!(excess <= 0)) {
      ++bad;
      const double e = std::isnan(excess) ? 1e300 : excess;
      if (e > worst_excess) worst_excess = e, worst = i;
    }
  }
  if (bad == 0) return "";
  std::ostringstream os;
  os << bad << " of " << a.size() << " beyond one bf16 ulp + " << slack << "; worst at " << worst
     << ": " << a[worst] << " vs " << ref[worst];
  return os.str();
}
inline std::string bf16_close(const Tensor& actual, const Tensor& reference, double slack) {
  return bf16_close(actual, reference.to_vector<double>(), slack);
}

}  // namespace hone::test

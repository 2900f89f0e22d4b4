// Finite-difference gradient checks in f64. For an op y = f(x) and a fixed random upstream
// gradient G, the scalar L(x) = Σ G ⊙ f(x) has dL/dx equal to what the op's backward returns
// for dy = G. check_gradient perturbs elements of x in place, recomputes L with central
// differences and compares with the analytic gradient.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "hone/tensor.h"
#include "support/tolerance.h"

namespace hone::test {

// Σ a ⊙ b over two f64 tensors of the same size.
inline double dot(const Tensor& a, const Tensor& b) {
  const double* pa = a.data<double>();
  const double* pb = b.data<double>();
  double s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += pa[i] * pb[i];
  return s;
}

// Compares `analytic` (f64, x's shape) with central differences of `loss` with respect to x
// (f64, modified in place and restored). Checks every element when x has at most max_checked,
// else a seeded sample that includes the first and last. Returns "" or a report.
inline std::string check_gradient(const Tensor& x, const Tensor& analytic,
                                  const std::function<double()>& loss, double h = 1e-6,
                                  std::int64_t max_checked = 48, Tolerance tol = kFiniteDifference) {
  double* px = x.data<double>();
  const double* pg = analytic.data<double>();
  const std::int64_t n = x.numel();
  std::vector<std::int64_t> idx;
  if (n <= max_checked) {
    for (std::int64_t i = 0; i < n; ++i) idx.push_back(i);
  } else {
    std::mt19937_64 rng(static_cast<std::uint64_t>(n) * 7919u);
    std::uniform_int_distribution<std::int64_t> d(0, n - 1);
    idx = {0, n - 1};
    while (static_cast<std::int64_t>(idx.size()) < max_checked) idx.push_back(d(rng));
  }
  std::vector<double> numeric, exact;
  for (std::int64_t i : idx) {
    const double saved = px[i];
    px[i] = saved + h;
    const double up = loss();
    px[i] = saved - h;
    const double down = loss();
    px[i] = saved;
    numeric.push_back((up - down) / (2 * h));
    exact.push_back(pg[i]);
  }
  return compare(exact, numeric, tol);
}

}  // namespace hone::test

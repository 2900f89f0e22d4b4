// Test inputs: tensors filled with seeded uniform values (never zeros), NaN poisoning of
// outputs, and the ragged sizes every op is tried on.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "hone/tensor.h"

namespace hone::test {

// Sizes around tile and vector-width boundaries.
inline const std::vector<std::int64_t> kRaggedSizes = {1, 31, 32, 33, 127, 128, 129};

// A host tensor with elements uniform in [lo, hi), deterministic for the seed.
inline Tensor random_tensor(const Shape& shape, DType dtype, std::uint64_t seed, double lo = -1.0,
                            double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)));
  for (double& x : v) x = dist(rng);
  return Tensor::from_vector<double>(shape, v).to(dtype);
}

// n floats uniform in [lo, hi), deterministic for the seed (raw buffers for kernel tests).
inline std::vector<float> random_floats(std::int64_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Random integer ids in [0, n).
inline Tensor random_ids(const Shape& shape, std::int64_t n, DType dtype, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> dist(0, n - 1);
  std::vector<std::int64_t> v(static_cast<std::size_t>(shape_numel(shape)));
  for (auto& x : v) x = dist(rng);
  return Tensor::from_vector<std::int64_t>(shape, v).to(dtype);
}

// A host tensor of the given values converted to dtype.
inline Tensor values(const Shape& shape, const std::vector<double>& v, DType dtype = DType::f64) {
  return Tensor::from_vector<double>(shape, v).to(dtype);
}

// True when no element is NaN or infinite.
inline bool all_finite(const Tensor& t) {
  for (double x : t.to_vector<double>())
    if (!std::isfinite(x)) return false;
  return true;
}

// A host tensor filled with NaN, so an element the op fails to write shows up in a comparison.
inline Tensor poisoned(const Shape& shape, DType dtype) {
  return Tensor::full(shape, std::numeric_limits<double>::quiet_NaN(), dtype);
}

}  // namespace hone::test

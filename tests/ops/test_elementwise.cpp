// ops::add_, scale_, mul_, dropout_mask_, bias_add_ and bias_bwd on the CPU reference: values
// on ragged sizes, in-place aliasing and argument errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <omp.h>

#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;

namespace {

// Ragged sizes plus one that spans several parallel chunks.
std::vector<std::int64_t> sizes_to_try() {
  std::vector<std::int64_t> s = test::kRaggedSizes;
  s.push_back(100003);
  return s;
}

// dst + alpha · src, computed in the tensors' dtype T the same way the op does.
template <class T>
Tensor expected_add(const Tensor& dst, const Tensor& src, double alpha) {
  std::vector<T> d = dst.to_vector<T>();
  const std::vector<T> s = src.to_vector<T>();
  for (std::size_t i = 0; i < d.size(); ++i) d[i] += static_cast<T>(alpha) * s[i];
  return Tensor::from_vector<T>(dst.shape(), d);
}

Tensor expected_add_any(const Tensor& dst, const Tensor& src, double alpha) {
  return dst.dtype() == DType::f32 ? expected_add<float>(dst, src, alpha)
                                   : expected_add<double>(dst, src, alpha);
}

}  // namespace

TEST_CASE("add_ adds a scaled source on ragged sizes", "[cpu][elementwise]") {
  std::uint64_t seed = 1;
  for (std::int64_t n : sizes_to_try())
    for (double alpha : {1.0, 0.5, -2.25, 0.1})
      for (DType dt : {DType::f32, DType::f64}) {
        const Tensor dst = test::random_tensor({n}, dt, seed++);
        const Tensor src = test::random_tensor({n}, dt, seed++);
        const Tensor want = expected_add_any(dst, src, alpha);
        ops::add_(dst, src, alpha);
        INFO("n " << n << " alpha " << alpha << " " << dtype_name(dt));
        CHECK(test::compare(dst, want) == "");
      }
}

TEST_CASE("add_ with alpha on sizes 1 33 and 129 gives exact values", "[cpu][elementwise]") {
  // Small integers and a power-of-two alpha: every result is exact, so compare exactly.
  for (std::int64_t n : {std::int64_t{1}, std::int64_t{33}, std::int64_t{129}})
    for (DType dt : {DType::f32, DType::f64}) {
      std::vector<double> d(static_cast<std::size_t>(n)), s(d.size()), want(d.size());
      for (std::size_t i = 0; i < d.size(); ++i) {
        d[i] = static_cast<double>(i % 7) - 3;
        s[i] = static_cast<double>(i % 5) + 1;
        want[i] = d[i] - 0.25 * s[i];
      }
      const Tensor dst = Tensor::from_vector<double>({n}, d).to(dt);
      ops::add_(dst, Tensor::from_vector<double>({n}, s).to(dt), -0.25);
      INFO("n " << n << " " << dtype_name(dt));
      CHECK(dst.to_vector<double>() == want);
    }
}

TEST_CASE("add_ accepts multi-dimensional tensors and dst as src", "[cpu][elementwise]") {
  const Tensor x = test::random_tensor({3, 43, 5}, DType::f64, 7);
  const Tensor want = expected_add_any(x, x, 3.0);
  ops::add_(x, x, 3.0);  // x += 3 x
  CHECK(test::compare(x, want) == "");
  const Tensor e = Tensor::zeros({0, 4}, DType::f32);
  CHECK_NOTHROW(ops::add_(e, Tensor::zeros({0, 4}, DType::f32), 2.0));
}

TEST_CASE("scale_ multiplies in place on ragged sizes", "[cpu][elementwise]") {
  std::uint64_t seed = 50;
  for (std::int64_t n : sizes_to_try())
    for (double alpha : {2.0, -0.3, 0.0})
      for (DType dt : {DType::f32, DType::f64}) {
        const Tensor x = test::random_tensor({n}, dt, seed++);
        const Tensor want = expected_add_any(Tensor::zeros({n}, dt), x, alpha);
        ops::scale_(x, alpha);
        INFO("n " << n << " alpha " << alpha << " " << dtype_name(dt));
        CHECK(test::compare(x, want) == "");
      }
  const Tensor y = Tensor::from_vector<float>({2, 2}, {1, -2, 3.5f, 0});
  ops::scale_(y, -2.0);
  CHECK(y.to_vector<float>() == std::vector<float>{-2, 4, -7, 0});
}

TEST_CASE("elementwise ops reject bad arguments naming them", "[cpu][elementwise]") {
  const Tensor dst = Tensor::zeros({3, 4}, DType::f32);
  CHECK_THROWS_WITH(ops::add_(dst, Tensor::zeros({4, 3}, DType::f32)),
                    Catch::Contains("[add_]") && Catch::Contains("'src'") &&
                        Catch::Contains("(4, 3)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::add_(dst, Tensor::zeros({12}, DType::f32)),
                    Catch::Contains("[add_]") && Catch::Contains("'src'") &&
                        Catch::Contains("(12)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::add_(dst, Tensor::zeros({3, 4}, DType::f64)),
                    Catch::Contains("[add_]") && Catch::Contains("'src'") &&
                        Catch::Contains("f64") && Catch::Contains("f32"));
  CHECK_THROWS_WITH(
      ops::add_(Tensor::zeros({3}, DType::i64), Tensor::zeros({3}, DType::i64)),
      Catch::Contains("[add_]") && Catch::Contains("'dst'") && Catch::Contains("i64"));
  CHECK_THROWS_WITH(ops::add_(dst, Tensor{}), Catch::Contains("[add_]") &&
                                                  Catch::Contains("'src'") &&
                                                  Catch::Contains("undefined"));
  CHECK_THROWS_WITH(ops::add_(Tensor{}, dst), Catch::Contains("[add_]") &&
                                                  Catch::Contains("'dst'") &&
                                                  Catch::Contains("undefined"));
  // Overlapping but not identical: the result would depend on the order of the chunks.
  const Tensor flat = Tensor::zeros({8}, DType::f32);
  CHECK_THROWS_WITH(ops::add_(flat.slice(0, 6), flat.slice(2, 8)), Catch::Contains("[add_]") &&
                                                                       Catch::Contains("'src'") &&
                                                                       Catch::Contains("overlaps"));
  CHECK_THROWS_WITH(ops::scale_(Tensor::zeros({3}, DType::i32), 2.0), Catch::Contains("[scale_]") &&
                                                                          Catch::Contains("'x'") &&
                                                                          Catch::Contains("i32"));
  CHECK_THROWS_WITH(ops::scale_(Tensor{}, 2.0), Catch::Contains("[scale_]") &&
                                                    Catch::Contains("'x'") &&
                                                    Catch::Contains("undefined"));
}

TEST_CASE("mul_ multiplies element by element on ragged sizes", "[cpu][elementwise]") {
  std::uint64_t seed = 300;
  for (std::int64_t n : sizes_to_try())
    for (DType dt : {DType::f32, DType::f64}) {
      const Tensor x = test::random_tensor({n}, dt, seed++, -3, 3);
      const Tensor m = test::random_tensor({n}, dt, seed++, -2, 2);
      // The product in the tensors' dtype, one rounding per element.
      std::vector<double> want = x.to_vector<double>();
      const std::vector<double> mv = m.to_vector<double>();
      for (std::size_t i = 0; i < want.size(); ++i) {
        const float f = static_cast<float>(want[i]) * static_cast<float>(mv[i]);
        want[i] = dt == DType::f32 ? static_cast<double>(f) : want[i] * mv[i];
      }
      ops::mul_(x, m);
      INFO("n " << n << " " << dtype_name(dt));
      CHECK(x.to_vector<double>() == want);
    }
  // Exact small values, a multi-dimensional shape, and x *= x.
  const Tensor y = Tensor::from_vector<float>({2, 3}, {1, -2, 3.5f, 0, 4, -0.5f});
  ops::mul_(y, Tensor::from_vector<float>({2, 3}, {2, 0.5f, 0, 7, -1.25f, -4}));
  CHECK(y.to_vector<float>() == std::vector<float>{2, -1, 0, 0, -5, 2});
  ops::mul_(y, y);
  CHECK(y.to_vector<float>() == std::vector<float>{4, 1, 0, 0, 25, 4});
  CHECK_NOTHROW(ops::mul_(Tensor::zeros({0, 3}, DType::f64), Tensor::zeros({0, 3}, DType::f64)));
}

TEST_CASE("dropout_mask_ keeps u >= p scaled by 1/(1-p) and drops the rest", "[cpu][elementwise]") {
  for (double p : {0.0, 0.1, 0.25, 0.5, 0.7, 0.9})
    for (DType dt : {DType::f32, DType::f64}) {
      INFO("p " << p << " " << dtype_name(dt));
      const Tensor u = Tensor::empty({37, 29}, dt);
      ops::uniform_(u, 17, 3);
      const std::vector<double> uv = u.to_vector<double>();
      ops::dropout_mask_(u, p);
      const std::vector<double> got = u.to_vector<double>();
      const double keep64 = 1 / (1 - p);
      const double keep = dt == DType::f32 ? static_cast<double>(static_cast<float>(keep64)) : keep64;
      std::int64_t kept = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        REQUIRE(got[i] == (uv[i] >= p ? keep : 0.0));
        kept += got[i] != 0;
      }
      // About 1 − p of 1073 draws are kept (a binomial within 5 standard deviations).
      const double n = static_cast<double>(got.size());
      CHECK(std::abs(static_cast<double>(kept) - (1 - p) * n) <= 5 * std::sqrt(n * p * (1 - p)) + 1);
    }
  // The comparison is against p itself, not p rounded to f32: 0.7f is below 0.7, so it drops,
  // while 0.25f (exact) keeps at equality.
  const float below = static_cast<float>(0.7);
  REQUIRE(static_cast<double>(below) < 0.7);
  const Tensor e = Tensor::from_vector<float>({4}, {below, std::nextafter(below, 1.0f), 0.25f,
                                                    std::nextafter(0.25f, 0.0f)});
  ops::dropout_mask_(e.slice(0, 2), 0.7);
  ops::dropout_mask_(e.slice(2, 4), 0.25);
  CHECK(e.to_vector<float>() ==
        std::vector<float>{0, static_cast<float>(1 / (1 - 0.7)), static_cast<float>(1 / (1 - 0.25)), 0});
}

TEST_CASE("mul_ and dropout_mask_ reject bad arguments naming them", "[cpu][elementwise]") {
  const Tensor x = Tensor::zeros({3, 4}, DType::f32);
  CHECK_THROWS_WITH(ops::mul_(x, Tensor::zeros({4, 3}, DType::f32)),
                    Catch::Contains("[mul_]") && Catch::Contains("'m'") && Catch::Contains("(4, 3)") &&
                        Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::mul_(x, Tensor::zeros({3, 4}, DType::f64)),
                    Catch::Contains("[mul_]") && Catch::Contains("'m'") && Catch::Contains("f64") &&
                        Catch::Contains("f32"));
  CHECK_THROWS_WITH(ops::mul_(Tensor::zeros({3}, DType::i32), Tensor::zeros({3}, DType::i32)),
                    Catch::Contains("[mul_]") && Catch::Contains("'x'") && Catch::Contains("i32"));
  // bf16 is a CUDA dtype: the host reference refuses it.
  const Tensor h = test::random_tensor({3, 4}, DType::bf16, 1);
  CHECK_THROWS_WITH(ops::mul_(h, h), Catch::Contains("[mul_] argument 'x'") &&
                                         Catch::Contains("has dtype bf16; expected f32 or f64"));
  CHECK_THROWS_WITH(ops::dropout_mask_(h, 0.5), Catch::Contains("[dropout_mask_] argument 'u'") &&
                                                    Catch::Contains("has dtype bf16; expected f32 or f64"));
  CHECK_THROWS_WITH(ops::mul_(x, Tensor{}),
                    Catch::Contains("[mul_]") && Catch::Contains("'m'") && Catch::Contains("undefined"));
  CHECK_THROWS_WITH(ops::mul_(Tensor{}, x),
                    Catch::Contains("[mul_]") && Catch::Contains("'x'") && Catch::Contains("undefined"));
  const Tensor flat = Tensor::zeros({8}, DType::f64);
  CHECK_THROWS_WITH(ops::mul_(flat.slice(0, 6), flat.slice(1, 7)),
                    Catch::Contains("[mul_]") && Catch::Contains("'m'") && Catch::Contains("overlaps"));

  for (double p : {1.0, -0.25, 1.5, std::numeric_limits<double>::quiet_NaN()})
    CHECK_THROWS_WITH(ops::dropout_mask_(Tensor::zeros({3}, DType::f32), p),
                      Catch::Contains("[dropout_mask_]") && Catch::Contains("p is") &&
                          Catch::Contains("[0, 1)"));
  CHECK_THROWS_WITH(ops::dropout_mask_(Tensor::zeros({3}, DType::i64), 0.5),
                    Catch::Contains("[dropout_mask_]") && Catch::Contains("'u'") && Catch::Contains("i64"));
  CHECK_THROWS_WITH(ops::dropout_mask_(Tensor{}, 0.5),
                    Catch::Contains("[dropout_mask_]") && Catch::Contains("'u'") &&
                        Catch::Contains("undefined"));
}

TEST_CASE("bias add broadcasts over rows on ragged sizes", "[cpu][elementwise]") {
  for (std::int64_t rows : {1, 33, 129}) {
    for (std::int64_t f : {1, 31, 128}) {
      const Tensor x = test::random_tensor({rows, f}, DType::f64, 100 + rows + f);
      const Tensor b = test::random_tensor({f}, DType::f64, 7 + f);
      const auto before = x.to_vector<double>();
      const auto bv = b.to_vector<double>();
      ops::bias_add_(x, b);
      const auto after = x.to_vector<double>();
      for (std::int64_t i = 0; i < rows * f; ++i) REQUIRE(after[i] == before[i] + bv[i % f]);
    }
  }
  CHECK_THROWS_WITH(ops::bias_add_(Tensor::zeros({2, 3}, DType::f32), Tensor::zeros({4}, DType::f32)),
                    Catch::Contains("[bias_add_]") && Catch::Contains("'b'") && Catch::Contains("(4)") &&
                        Catch::Contains("(2, 3)"));
}

TEST_CASE("bias backward matches finite differences", "[cpu][elementwise][fd]") {
  const Tensor x = test::random_tensor({3, 5, 4}, DType::f64, 1);
  const Tensor b = test::random_tensor({4}, DType::f64, 2);
  const Tensor g = test::random_tensor({3, 5, 4}, DType::f64, 3);
  const Tensor db = test::random_tensor({4}, DType::f64, 4);
  const auto prior = db.to_vector<double>();
  ops::bias_bwd(g, db);
  // db accumulates: subtract what it held before.
  const Tensor grad = Tensor::from_vector<double>({4}, [&] {
    auto v = db.to_vector<double>();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] -= prior[i];
    return v;
  }());
  const std::string report = test::check_gradient(b, grad, [&] {
    const Tensor y = x.clone();
    ops::bias_add_(y, b);
    return test::dot(g, y);
  });
  CHECK(report == "");
  // Bitwise identical whatever the thread count.
  const Tensor big = test::random_tensor({1000, 8}, DType::f32, 5);
  const Tensor d1 = Tensor::zeros({8}, DType::f32), d2 = Tensor::zeros({8}, DType::f32);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  ops::bias_bwd(big, d1);
  omp_set_num_threads(2);
  ops::bias_bwd(big, d2);
  omp_set_num_threads(saved);
  CHECK(d1.to_vector<float>() == d2.to_vector<float>());
}

// ops::add_ and scale_ on the CPU reference: values on ragged sizes, in-place aliasing and
// argument errors.
#include <catch2/catch.hpp>
#include <cstdint>
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

// Tests of the RMSNorm and LayerNorm ops: hand-computed values, finite-difference gradients,
// accumulate/overwrite semantics, ragged sizes, determinism, f32 against f64, argument errors.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using test::all_finite;
using test::values;

namespace {

constexpr double kEps = 1e-5;
constexpr DType f64 = DType::f64;
constexpr DType f32 = DType::f32;


bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Plain double loops over (n, d) rows: forward outputs and, given dy, the gradients.
struct NormRef {
  std::vector<double> y, mean, rstd, dx, dw, db;
};

NormRef rms_ref(const std::vector<double>& x, const std::vector<double>& w,
                const std::vector<double>& dy, std::int64_t n, std::int64_t d, double eps) {
  NormRef r;
  r.y.resize(x.size());
  r.dx.resize(x.size());
  r.rstd.resize(n);
  r.dw.assign(d, 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    double ss = 0;
    for (std::int64_t j = 0; j < d; ++j) ss += x[i * d + j] * x[i * d + j];
    const double rs = 1 / std::sqrt(ss / d + eps);
    r.rstd[i] = rs;
    double s = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      r.y[i * d + j] = x[i * d + j] * rs * w[j];
      s += dy[i * d + j] * w[j] * x[i * d + j];
    }
    for (std::int64_t j = 0; j < d; ++j) {
      r.dx[i * d + j] = rs * (dy[i * d + j] * w[j] - x[i * d + j] * rs * rs * s / d);
      r.dw[j] += dy[i * d + j] * x[i * d + j] * rs;
    }
  }
  return r;
}

NormRef ln_ref(const std::vector<double>& x, const std::vector<double>& w,
               const std::vector<double>& b, const std::vector<double>& dy, std::int64_t n,
               std::int64_t d, double eps) {
  NormRef r;
  r.y.resize(x.size());
  r.dx.resize(x.size());
  r.mean.resize(n);
  r.rstd.resize(n);
  r.dw.assign(d, 0.0);
  r.db.assign(d, 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    double m = 0, v = 0;
    for (std::int64_t j = 0; j < d; ++j) m += x[i * d + j];
    m /= d;
    for (std::int64_t j = 0; j < d; ++j) v += (x[i * d + j] - m) * (x[i * d + j] - m);
    const double rs = 1 / std::sqrt(v / d + eps);
    r.mean[i] = m;
    r.rstd[i] = rs;
    double mg = 0, mgx = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      const double xh = (x[i * d + j] - m) * rs;
      r.y[i * d + j] = xh * w[j] + b[j];
      mg += dy[i * d + j] * w[j] / d;
      mgx += dy[i * d + j] * w[j] * xh / d;
    }
    for (std::int64_t j = 0; j < d; ++j) {
      const double xh = (x[i * d + j] - m) * rs;
      r.dx[i * d + j] = rs * (dy[i * d + j] * w[j] - mg - xh * mgx);
      r.dw[j] += dy[i * d + j] * xh;
      r.db[j] += dy[i * d + j];
    }
  }
  return r;
}

}  // namespace

TEST_CASE("rmsnorm forward matches hand computed values", "[cpu][norm]") {
  // Row 0: mean(x²) = (1 + 4 + 9 + 16) / 4 = 7.5. Row 1: all zeros, so rstd = 1/√eps and
  // y = 0.
  const Tensor x = values({2, 4}, {1, 2, 3, 4, 0, 0, 0, 0});
  const Tensor w = values({4}, {1, 0.5, 2, -1});
  const Tensor y = test::poisoned({2, 4}, f64), rstd = test::poisoned({2}, f64);
  ops::rmsnorm_fwd(x, w, 0.25, y, rstd);
  // With eps = 0.25 row 0 has rstd = 1/√7.75 = 0.35921060405354982.
  const double r0 = 0.35921060405354982;
  CHECK(test::compare(rstd, values({2}, {r0, 2.0})) == "");
  CHECK(test::compare(y, values({2, 4}, {r0, r0, 6 * r0, -4 * r0, 0, 0, 0, 0})) == "");

  ops::rmsnorm_fwd(x.slice(0, 1), w, 0.0, y.slice(0, 1), rstd.slice(0, 1));
  const double r = 0.36514837167011072;  // 1/√7.5
  CHECK(test::compare(y.slice(0, 1), values({1, 4}, {r, r, 6 * r, -4 * r})) == "");
}

TEST_CASE("layernorm forward matches hand computed values", "[cpu][norm]") {
  // mean 2.5, biased variance 1.25, rstd = 1/√1.25, xhat = (−1.5, −0.5, 0.5, 1.5) · rstd.
  const Tensor x = values({1, 4}, {1, 2, 3, 4});
  const Tensor w = values({4}, {2, 1, 1, 0.5});
  const Tensor b = values({4}, {0.1, 0.2, 0.3, 0.4});
  const Tensor y = test::poisoned({1, 4}, f64);
  const Tensor mean = test::poisoned({1}, f64), rstd = test::poisoned({1}, f64);
  ops::layernorm_fwd(x, w, b, 0.0, y, mean, rstd);
  const double r = 0.89442719099991588;  // 1/√1.25
  CHECK(test::compare(mean, values({1}, {2.5})) == "");
  CHECK(test::compare(rstd, values({1}, {r})) == "");
  CHECK(test::compare(y, values({1, 4}, {-3 * r + 0.1, -0.5 * r + 0.2, 0.5 * r + 0.3,
                                         0.75 * r + 0.4})) == "");
}

TEST_CASE("layernorm output has the bias mean and unit variance", "[cpu][norm]") {
  const std::int64_t n = 5, d = 37;
  const Tensor x = test::random_tensor({n, d}, f64, 11, -3.0, 5.0);
  const Tensor w = Tensor::full({d}, 1.0, f64);
  const Tensor b = Tensor::full({d}, 0.75, f64);
  const Tensor y = test::poisoned({n, d}, f64);
  const Tensor mean = test::poisoned({n}, f64), rstd = test::poisoned({n}, f64);
  ops::layernorm_fwd(x, w, b, 0.0, y, mean, rstd);
  const auto v = y.to_vector<double>();
  for (std::int64_t i = 0; i < n; ++i) {
    double m = 0, s2 = 0;
    for (std::int64_t j = 0; j < d; ++j) m += v[i * d + j] / d;
    for (std::int64_t j = 0; j < d; ++j) s2 += (v[i * d + j] - m) * (v[i * d + j] - m) / d;
    CHECK(m == Approx(0.75).epsilon(0).margin(1e-12));
    CHECK(s2 == Approx(1.0).epsilon(1e-12));
  }
}

TEST_CASE("rmsnorm backward matches finite differences", "[cpu][norm][fd]") {
  const Tensor x = test::random_tensor({2, 3, 8}, f64, 1);
  const Tensor w = test::random_tensor({8}, f64, 2, 0.5, 1.5);
  const Tensor g = test::random_tensor({2, 3, 8}, f64, 3);
  const Tensor y = Tensor::empty(x.shape(), f64), rstd = Tensor::empty({6}, f64);
  ops::rmsnorm_fwd(x, w, kEps, y, rstd);
  const Tensor dx = test::poisoned(x.shape(), f64), dw = Tensor::zeros({8}, f64);
  ops::rmsnorm_bwd(g, x, w, rstd, dx, dw);
  auto loss = [&] {
    const Tensor y2 = Tensor::empty(x.shape(), f64), r2 = Tensor::empty({6}, f64);
    ops::rmsnorm_fwd(x, w, kEps, y2, r2);
    return test::dot(g, y2);
  };
  CHECK(test::check_gradient(x, dx, loss) == "");
  CHECK(test::check_gradient(w, dw, loss) == "");
}

TEST_CASE("layernorm backward matches finite differences", "[cpu][norm][fd]") {
  const Tensor x = test::random_tensor({3, 2, 7}, f64, 4, -2.0, 2.0);
  const Tensor w = test::random_tensor({7}, f64, 5, 0.5, 1.5);
  const Tensor b = test::random_tensor({7}, f64, 6);
  const Tensor g = test::random_tensor({3, 2, 7}, f64, 7);
  const Tensor y = Tensor::empty(x.shape(), f64);
  const Tensor mean = Tensor::empty({6}, f64), rstd = Tensor::empty({6}, f64);
  ops::layernorm_fwd(x, w, b, kEps, y, mean, rstd);
  const Tensor dx = test::poisoned(x.shape(), f64);
  const Tensor dw = Tensor::zeros({7}, f64), db = Tensor::zeros({7}, f64);
  ops::layernorm_bwd(g, x, w, mean, rstd, dx, dw, db);
  auto loss = [&] {
    const Tensor y2 = Tensor::empty(x.shape(), f64);
    const Tensor m2 = Tensor::empty({6}, f64), r2 = Tensor::empty({6}, f64);
    ops::layernorm_fwd(x, w, b, kEps, y2, m2, r2);
    return test::dot(g, y2);
  };
  CHECK(test::check_gradient(x, dx, loss) == "");
  CHECK(test::check_gradient(w, dw, loss) == "");
  CHECK(test::check_gradient(b, db, loss) == "");
}

TEST_CASE("norm backward overwrites dx and accumulates dw and db", "[cpu][norm]") {
  const std::int64_t n = 70, d = 9;
  const Tensor x = test::random_tensor({n, d}, f64, 21);
  const Tensor w = test::random_tensor({d}, f64, 22);
  const Tensor b = test::random_tensor({d}, f64, 23);
  const Tensor g = test::random_tensor({n, d}, f64, 24);
  const Tensor y = Tensor::empty({n, d}, f64);
  const Tensor mean = Tensor::empty({n}, f64), rstd = Tensor::empty({n}, f64);
  const Tensor prior = test::random_tensor({d}, f64, 25);

  SECTION("rmsnorm") {
    ops::rmsnorm_fwd(x, w, kEps, y, rstd);
    const NormRef ref = rms_ref(x.to_vector<double>(), w.to_vector<double>(),
                                g.to_vector<double>(), n, d, kEps);
    const Tensor dx = test::poisoned({n, d}, f64), dw = prior.clone();
    ops::rmsnorm_bwd(g, x, w, rstd, dx, dw);
    CHECK(all_finite(dx));
    CHECK(test::compare(dx, values({n, d}, ref.dx), {1e-12, 1e-10}) == "");
    std::vector<double> want = prior.to_vector<double>();
    for (std::int64_t j = 0; j < d; ++j) want[j] += ref.dw[j];
    CHECK(test::compare(dw, values({d}, want), {1e-12, 1e-10}) == "");
    // Undefined gradients are skipped; the other is still produced.
    const Tensor dx2 = test::poisoned({n, d}, f64);
    ops::rmsnorm_bwd(g, x, w, rstd, dx2, Tensor{});
    CHECK(same_bits(dx2, dx));
    const Tensor dw2 = prior.clone();
    ops::rmsnorm_bwd(g, x, w, rstd, Tensor{}, dw2);
    CHECK(same_bits(dw2, dw));
  }
  SECTION("layernorm") {
    ops::layernorm_fwd(x, w, b, kEps, y, mean, rstd);
    const NormRef ref = ln_ref(x.to_vector<double>(), w.to_vector<double>(),
                               b.to_vector<double>(), g.to_vector<double>(), n, d, kEps);
    const Tensor dx = test::poisoned({n, d}, f64), dw = prior.clone(), db = prior.clone();
    ops::layernorm_bwd(g, x, w, mean, rstd, dx, dw, db);
    CHECK(all_finite(dx));
    CHECK(test::compare(dx, values({n, d}, ref.dx), {1e-12, 1e-10}) == "");
    std::vector<double> want_w = prior.to_vector<double>(), want_b = want_w;
    for (std::int64_t j = 0; j < d; ++j) want_w[j] += ref.dw[j], want_b[j] += ref.db[j];
    CHECK(test::compare(dw, values({d}, want_w), {1e-12, 1e-10}) == "");
    CHECK(test::compare(db, values({d}, want_b), {1e-12, 1e-10}) == "");
    const Tensor db2 = prior.clone();
    ops::layernorm_bwd(g, x, w, mean, rstd, Tensor{}, Tensor{}, db2);
    CHECK(same_bits(db2, db));
  }
}

TEST_CASE("norm forward and backward on ragged sizes match scalar loops", "[cpu][norm]") {
  const test::Tolerance tol{1e-12, 1e-10};
  for (std::int64_t n : {1, 33, 129}) {
    for (std::int64_t d : test::kRaggedSizes) {
      INFO("rows " << n << " dim " << d);
      const std::uint64_t seed = static_cast<std::uint64_t>(n * 1000 + d);
      const Tensor x = test::random_tensor({n, d}, f64, seed);
      const Tensor w = test::random_tensor({d}, f64, seed + 1);
      const Tensor b = test::random_tensor({d}, f64, seed + 2);
      const Tensor g = test::random_tensor({n, d}, f64, seed + 3);
      const auto xv = x.to_vector<double>(), wv = w.to_vector<double>();
      const auto bv = b.to_vector<double>(), gv = g.to_vector<double>();

      const Tensor y = test::poisoned({n, d}, f64);
      const Tensor mean = test::poisoned({n}, f64), rstd = test::poisoned({n}, f64);
      const Tensor dx = test::poisoned({n, d}, f64);
      const Tensor dw = Tensor::zeros({d}, f64), db = Tensor::zeros({d}, f64);
      const NormRef rr = rms_ref(xv, wv, gv, n, d, kEps);
      ops::rmsnorm_fwd(x, w, kEps, y, rstd);
      ops::rmsnorm_bwd(g, x, w, rstd, dx, dw);
      CHECK(test::compare(y, values({n, d}, rr.y), tol) == "");
      CHECK(test::compare(rstd, values({n}, rr.rstd), tol) == "");
      CHECK(test::compare(dx, values({n, d}, rr.dx), tol) == "");
      CHECK(test::compare(dw, values({d}, rr.dw), tol) == "");

      const NormRef lr = ln_ref(xv, wv, bv, gv, n, d, kEps);
      const Tensor y2 = test::poisoned({n, d}, f64), dx2 = test::poisoned({n, d}, f64);
      const Tensor dw2 = Tensor::zeros({d}, f64);
      ops::layernorm_fwd(x, w, b, kEps, y2, mean, rstd);
      ops::layernorm_bwd(g, x, w, mean, rstd, dx2, dw2, db);
      CHECK(test::compare(y2, values({n, d}, lr.y), tol) == "");
      CHECK(test::compare(mean, values({n}, lr.mean), tol) == "");
      CHECK(test::compare(rstd, values({n}, lr.rstd), tol) == "");
      CHECK(test::compare(dx2, values({n, d}, lr.dx), tol) == "");
      CHECK(test::compare(dw2, values({d}, lr.dw), tol) == "");
      CHECK(test::compare(db, values({d}, lr.db), tol) == "");
    }
  }
}

TEST_CASE("norm backward is bitwise deterministic across thread counts", "[cpu][norm]") {
  const int saved = omp_get_max_threads();
  // 300 rows span several 64-row chunks; 20000 rows exceed the chunk cap and grow the chunks.
  for (std::int64_t n : {300, 20000}) {
    const std::int64_t d = n > 1000 ? 3 : 40;
    INFO("rows " << n);
    const Tensor x = test::random_tensor({n, d}, f32, 31);
    const Tensor w = test::random_tensor({d}, f32, 32);
    const Tensor b = test::random_tensor({d}, f32, 33);
    const Tensor g = test::random_tensor({n, d}, f32, 34);
    const Tensor y = Tensor::empty({n, d}, f32);
    const Tensor mean = Tensor::empty({n}, f32), rstd = Tensor::empty({n}, f32);
    ops::layernorm_fwd(x, w, b, kEps, y, mean, rstd);
    const Tensor rrstd = Tensor::empty({n}, f32);
    ops::rmsnorm_fwd(x, w, kEps, y, rrstd);
    std::vector<Tensor> results;
    for (int threads : {1, 2, 3, 2}) {
      omp_set_num_threads(threads);
      const Tensor dx = Tensor::empty({n, d}, f32);
      const Tensor dw = Tensor::zeros({d}, f32), db = Tensor::zeros({d}, f32);
      const Tensor rdw = Tensor::zeros({d}, f32);
      ops::layernorm_bwd(g, x, w, mean, rstd, dx, dw, db);
      ops::rmsnorm_bwd(g, x, w, rrstd, Tensor{}, rdw);
      results.push_back(dw);
      results.push_back(db);
      results.push_back(rdw);
    }
    for (std::size_t i = 3; i < results.size(); ++i) CHECK(same_bits(results[i], results[i % 3]));
    // And the sums are right: f32 inputs, f64 reference.
    const NormRef lr = ln_ref(x.to_vector<double>(), w.to_vector<double>(), b.to_vector<double>(),
                              g.to_vector<double>(), n, d, kEps);
    CHECK(test::compare(results[0], values({d}, lr.dw), {1e-3, 1e-5}) == "");
    CHECK(test::compare(results[1], values({d}, lr.db), {1e-3, 1e-5}) == "");
  }
  omp_set_num_threads(saved);
}

TEST_CASE("norm f32 agrees with f64", "[cpu][norm]") {
  const std::int64_t n = 40, d = 96;
  // f32 inputs, converted exactly to f64 for the reference run.
  const Tensor x32 = test::random_tensor({n, d}, f32, 41, -2.0, 2.0);
  const Tensor w32 = test::random_tensor({d}, f32, 42, 0.5, 1.5);
  const Tensor b32 = test::random_tensor({d}, f32, 43);
  const Tensor g32 = test::random_tensor({n, d}, f32, 44);
  const Tensor x64 = x32.to(f64), w64 = w32.to(f64), b64 = b32.to(f64), g64 = g32.to(f64);
  const test::Tolerance tol = test::tolerance_for(f32);
  for (bool layer : {false, true}) {
    INFO((layer ? "layernorm" : "rmsnorm"));
    Tensor y[2], dx[2], dw[2], db[2];
    const DType types[2] = {f32, f64};
    for (int k = 0; k < 2; ++k) {
      const DType t = types[k];
      const Tensor& x = k ? x64 : x32;
      const Tensor& w = k ? w64 : w32;
      const Tensor& g = k ? g64 : g32;
      y[k] = Tensor::empty({n, d}, t);
      dx[k] = Tensor::empty({n, d}, t);
      dw[k] = Tensor::zeros({d}, t);
      db[k] = Tensor::zeros({d}, t);
      const Tensor mean = Tensor::empty({n}, t), rstd = Tensor::empty({n}, t);
      if (layer) {
        ops::layernorm_fwd(x, w, k ? b64 : b32, kEps, y[k], mean, rstd);
        ops::layernorm_bwd(g, x, w, mean, rstd, dx[k], dw[k], db[k]);
      } else {
        ops::rmsnorm_fwd(x, w, kEps, y[k], rstd);
        ops::rmsnorm_bwd(g, x, w, rstd, dx[k], dw[k]);
      }
    }
    CHECK(test::compare(y[0], y[1].to(f32), tol) == "");
    CHECK(test::compare(dx[0], dx[1].to(f32), tol) == "");
    CHECK(test::compare(dw[0], dw[1].to(f32), {1e-4, 1e-5}) == "");
    CHECK(test::compare(db[0], db[1].to(f32), {1e-4, 1e-5}) == "");
  }
}

TEST_CASE("norm ops reject bad arguments", "[cpu][norm]") {
  const Tensor x = test::random_tensor({3, 4}, f64, 51);
  const Tensor w = Tensor::full({4}, 1.0, f64), b = Tensor::zeros({4}, f64);
  const Tensor y = Tensor::empty({3, 4}, f64);
  const Tensor mean = Tensor::empty({3}, f64), rstd = Tensor::empty({3}, f64);
  const Tensor dx = Tensor::empty({3, 4}, f64), dw = Tensor::zeros({4}, f64);

  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, Tensor::empty({5}, f64), kEps, y, rstd),
                    Catch::Contains("[rmsnorm_fwd]") && Catch::Contains("'w'") &&
                        Catch::Contains("(5)") && Catch::Contains("(4)") &&
                        Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, w, kEps, Tensor::empty({4, 3}, f64), rstd),
                    Catch::Contains("[rmsnorm_fwd]") && Catch::Contains("'y'") &&
                        Catch::Contains("(4, 3)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, w, kEps, y, Tensor::empty({3, 1}, f64)),
                    Catch::Contains("'rstd'") && Catch::Contains("(3, 1)") &&
                        Catch::Contains("(3)"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, Tensor::full({4}, 1.0, f32), kEps, y, rstd),
                    Catch::Contains("[rmsnorm_fwd]") && Catch::Contains("'w'") &&
                        Catch::Contains("f32") && Catch::Contains("f64"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, w, -1.0, y, rstd),
                    Catch::Contains("[rmsnorm_fwd]") && Catch::Contains("eps"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(Tensor::zeros({3, 4}, DType::i32), w, kEps, y, rstd),
                    Catch::Contains("'x'") && Catch::Contains("i32"));
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(Tensor::zeros({3, 0}, f64), w, kEps, y, rstd),
                    Catch::Contains("'x'") && Catch::Contains("(3, 0)"));
  CHECK_THROWS_WITH(ops::rmsnorm_bwd(Tensor::empty({3, 5}, f64), x, w, rstd, dx, dw),
                    Catch::Contains("[rmsnorm_bwd]") && Catch::Contains("'dy'") &&
                        Catch::Contains("(3, 5)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::rmsnorm_bwd(y, x, w, rstd, dx, Tensor::zeros({2}, f64)),
                    Catch::Contains("[rmsnorm_bwd]") && Catch::Contains("'dw'") &&
                        Catch::Contains("(2)") && Catch::Contains("(4)"));
  CHECK_THROWS_WITH(ops::rmsnorm_bwd(y, x, w, rstd, Tensor::empty({3, 4}, f32), dw),
                    Catch::Contains("'dx'") && Catch::Contains("f32"));

  CHECK_THROWS_WITH(ops::layernorm_fwd(x, w, Tensor::zeros({3}, f64), kEps, y, mean, rstd),
                    Catch::Contains("[layernorm_fwd]") && Catch::Contains("'b'") &&
                        Catch::Contains("(3)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::layernorm_fwd(x, w, b, kEps, y, Tensor::empty({4}, f64), rstd),
                    Catch::Contains("[layernorm_fwd]") && Catch::Contains("'mean'") &&
                        Catch::Contains("(4)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::layernorm_fwd(x, w, Tensor{}, kEps, y, mean, rstd),
                    Catch::Contains("[layernorm_fwd]") && Catch::Contains("'b'"));
  CHECK_THROWS_WITH(ops::layernorm_bwd(y, x, w, mean, rstd, dx, dw, Tensor::zeros({4, 1}, f64)),
                    Catch::Contains("[layernorm_bwd]") && Catch::Contains("'db'") &&
                        Catch::Contains("(4, 1)") && Catch::Contains("(4)"));
  CHECK_THROWS_WITH(ops::layernorm_bwd(y, x, Tensor::zeros({4}, f32), mean, rstd, dx, dw, b),
                    Catch::Contains("[layernorm_bwd]") && Catch::Contains("'w'") &&
                        Catch::Contains("f32"));
}

// Tests of the rotary position embedding ops: inverse frequencies (with Llama 3.1 scaling),
// rotation properties, hand-computed values, finite-difference gradients, in-place use,
// ragged sizes, f32 against f64, argument errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using test::all_finite;
using test::values;

namespace {

constexpr DType f64 = DType::f64;
constexpr DType f32 = DType::f32;
constexpr double kPi = 3.14159265358979323846;

Tensor positions_of(const Shape& shape, const std::vector<std::int64_t>& p,
                    DType dtype = DType::i64) {
  return Tensor::from_vector<std::int64_t>(shape, p).to(dtype);
}

ops::RopeArgs theta_args(double theta) {
  ops::RopeArgs a;
  a.theta = theta;
  return a;
}

// The rotate-half rotation as a plain loop over (tokens, heads, hd), angles from theta^(−2i/hd).
std::vector<double> rope_ref(const std::vector<double>& x, const std::vector<std::int64_t>& pos,
                             std::int64_t heads, std::int64_t hd, double theta) {
  std::vector<double> y(x.size());
  const std::int64_t half = hd / 2;
  for (std::size_t t = 0; t < pos.size(); ++t)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(pos[t]) * std::pow(theta, -2.0 * i / hd);
        const std::size_t base = (t * heads + h) * hd;
        const double u = x[base + i], v = x[base + i + half];
        y[base + i] = u * std::cos(a) - v * std::sin(a);
        y[base + i + half] = v * std::cos(a) + u * std::sin(a);
      }
  return y;
}

}  // namespace

TEST_CASE("rope inverse frequencies are powers of theta", "[cpu][rope]") {
  const std::vector<double> inv4 = ops::rope_inv_freq(4, theta_args(10000));
  REQUIRE(inv4.size() == 2);
  CHECK(inv4[0] == 1.0);
  CHECK(inv4[1] == Approx(0.01).epsilon(1e-15));
  const std::vector<double> inv8 = ops::rope_inv_freq(8, theta_args(10000));
  REQUIRE(inv8.size() == 4);
  CHECK(inv8[1] == Approx(0.1).epsilon(1e-15));
  CHECK(inv8[2] == Approx(0.01).epsilon(1e-15));
  CHECK(inv8[3] == Approx(0.001).epsilon(1e-15));
}

TEST_CASE("rope llama3 scaling keeps high and divides low frequencies", "[cpu][rope]") {
  // Llama-3.1-8B: theta 500000, head_dim 128, factor 8, low 1, high 4, original 8192. The
  // wavelength 2π/inv is below 8192/4 = 2048 for i ≤ 28, above 8192/1 for i ≥ 35, and in
  // between (blended) for i = 29..34.
  ops::RopeArgs a = theta_args(500000);
  a.scaling.kind = ops::RopeScaling::Kind::llama3;
  a.scaling.factor = 8;
  a.scaling.low_freq_factor = 1;
  a.scaling.high_freq_factor = 4;
  a.scaling.original_max_position = 8192;
  const std::vector<double> inv = ops::rope_inv_freq(128, a);
  REQUIRE(inv.size() == 64);
  int high = 0, low = 0, medium = 0;
  for (int i = 0; i < 64; ++i) {
    INFO("i " << i);
    const double base = 1.0 / std::pow(500000.0, i / 64.0);
    const double wavelen = 2 * kPi / base;
    if (i <= 28) {
      REQUIRE(wavelen < 2048);
      CHECK(inv[i] == Approx(base).epsilon(1e-13));
      ++high;
    } else if (i >= 35) {
      REQUIRE(wavelen > 8192);
      CHECK(inv[i] == Approx(base / 8).epsilon(1e-13));
      ++low;
    } else {
      REQUIRE(wavelen >= 2048);
      REQUIRE(wavelen <= 8192);
      const double smooth = (8192 / wavelen - 1) / (4 - 1);
      CHECK(smooth > 0);
      CHECK(smooth < 1);
      CHECK(inv[i] == Approx((1 - smooth) * base / 8 + smooth * base).epsilon(1e-13));
      ++medium;
    }
    if (i > 0) CHECK(inv[i] < inv[i - 1]);
  }
  CHECK(high == 29);
  CHECK(medium == 6);
  CHECK(low == 29);
  CHECK(inv[0] == 1.0);
}

TEST_CASE("rope at position zero is the identity", "[cpu][rope]") {
  const Tensor x = test::random_tensor({3, 2, 16}, f64, 1);
  const Tensor y = test::poisoned({3, 2, 16}, f64);
  ops::rope_fwd(x, positions_of({3}, {0, 0, 0}), theta_args(10000), y);
  CHECK(y.to_vector<double>() == x.to_vector<double>());
}

TEST_CASE("rope preserves the norm of each rotated pair", "[cpu][rope]") {
  const std::int64_t hd = 32, half = 16;
  const Tensor x = test::random_tensor({4, 3, hd}, f64, 2);
  const Tensor y = test::poisoned({4, 3, hd}, f64);
  ops::rope_fwd(x, positions_of({4}, {1, 17, 300, 65535}), theta_args(10000), y);
  const auto xv = x.to_vector<double>(), yv = y.to_vector<double>();
  for (std::int64_t r = 0; r < 12; ++r)
    for (std::int64_t i = 0; i < half; ++i) {
      const std::size_t a = r * hd + i, b = a + half;
      CHECK(std::hypot(yv[a], yv[b]) == Approx(std::hypot(xv[a], xv[b])).epsilon(1e-13));
    }
  CHECK(yv != xv);
}

TEST_CASE("rope scores depend only on the position difference", "[cpu][rope]") {
  const std::int64_t hd = 16;
  const Tensor q = test::random_tensor({1, 1, hd}, f64, 3);
  const Tensor k = test::random_tensor({1, 1, hd}, f64, 4);
  auto score = [&](std::int64_t pq, std::int64_t pk) {
    const Tensor rq = Tensor::empty({1, 1, hd}, f64), rk = Tensor::empty({1, 1, hd}, f64);
    ops::rope_fwd(q, positions_of({1}, {pq}), theta_args(10000), rq);
    ops::rope_fwd(k, positions_of({1}, {pk}), theta_args(10000), rk);
    return test::dot(rq, rk);
  };
  const double s = score(5, 2);
  CHECK(score(13, 10) == Approx(s).epsilon(1e-11));
  CHECK(score(1003, 1000) == Approx(s).epsilon(1e-11));
  CHECK(score(3, 0) == Approx(s).epsilon(1e-11));
  CHECK(std::fabs(score(2, 5) - s) > 1e-3);  // the sign of the difference matters
}

TEST_CASE("rope forward matches a hand computed rotation", "[cpu][rope]") {
  // hd 4, theta 10000: inv_freq = (1, 0.01); at position 1 the pairs (x0, x2) and (x1, x3)
  // rotate by 1 and 0.01 radians.
  const Tensor x = values({1, 1, 4}, {1, 2, 3, 4});
  const Tensor y = test::poisoned({1, 1, 4}, f64);
  ops::rope_fwd(x, positions_of({1}, {1}), theta_args(10000), y);
  const double c1 = std::cos(1.0), s1 = std::sin(1.0), c2 = std::cos(0.01), s2 = std::sin(0.01);
  CHECK(test::compare(y, values({1, 1, 4}, {1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1,
                                            4 * c2 + 2 * s2})) == "");
  // Position 2 on a second head: angle 2 and 0.02.
  const Tensor x2 = values({1, 2, 4}, {0, 0, 0, 0, 1, 0, 0, 1});
  const Tensor y2 = test::poisoned({1, 2, 4}, f64);
  ops::rope_fwd(x2, positions_of({1}, {2}, DType::i32), theta_args(10000), y2);
  CHECK(test::compare(y2, values({1, 2, 4}, {0, 0, 0, 0, std::cos(2.0), -std::sin(0.02),
                                             std::sin(2.0), std::cos(0.02)})) == "");
}

TEST_CASE("rope backward matches finite differences", "[cpu][rope][fd]") {
  const Tensor x = test::random_tensor({2, 3, 2, 8}, f64, 5);
  const Tensor pos = positions_of({2, 3}, {0, 1, 5, 3, 7, 100});
  const Tensor g = test::random_tensor({2, 3, 2, 8}, f64, 6);
  const ops::RopeArgs args = theta_args(10000);
  const Tensor dx = test::poisoned(x.shape(), f64);
  ops::rope_bwd(g, pos, args, dx);
  auto loss = [&] {
    const Tensor y = Tensor::empty(x.shape(), f64);
    ops::rope_fwd(x, pos, args, y);
    return test::dot(g, y);
  };
  CHECK(test::check_gradient(x, dx, loss, 1e-6, x.numel()) == "");
}

TEST_CASE("rope backward inverts the forward in place", "[cpu][rope]") {
  ops::RopeArgs a = theta_args(500000);
  a.scaling.kind = ops::RopeScaling::Kind::llama3;
  const Tensor x = test::random_tensor({5, 4, 64}, f64, 7);
  const Tensor pos = test::random_ids({5}, 100000, DType::i64, 8);
  const Tensor t = x.clone();
  ops::rope_fwd(t, pos, a, t);  // y aliases x
  CHECK(test::compare(t, x, {1e-3, 0}) != "");
  ops::rope_bwd(t, pos, a, t);  // dx aliases dy
  CHECK(test::compare(t, x) == "");
}

TEST_CASE("rope on ragged sizes matches a scalar loop", "[cpu][rope]") {
  const test::Tolerance tol{1e-12, 1e-12};
  for (std::int64_t n : test::kRaggedSizes)
    for (std::int64_t heads : {1, 3})
      for (std::int64_t hd : {2, 32, 128}) {
        INFO("tokens " << n << " heads " << heads << " head_dim " << hd);
        const std::uint64_t seed = static_cast<std::uint64_t>(n * 10000 + heads * 1000 + hd);
        // Packed (N, H, hd) with i64 positions.
        const Tensor x = test::random_tensor({n, heads, hd}, f64, seed);
        const Tensor pos = test::random_ids({n}, 4096, DType::i64, seed + 1);
        const Tensor y = test::poisoned({n, heads, hd}, f64);
        ops::rope_fwd(x, pos, theta_args(10000), y);
        const auto want = rope_ref(x.to_vector<double>(), pos.to_vector<std::int64_t>(), heads,
                                   hd, 10000);
        CHECK(test::compare(y, values({n, heads, hd}, want), tol) == "");
        // Padded (B, T, H, hd) with i32 positions (B, T).
        const Tensor xb = test::random_tensor({2, n, heads, hd}, f64, seed + 2);
        const Tensor pb = test::random_ids({2, n}, 4096, DType::i32, seed + 3);
        const Tensor yb = test::poisoned({2, n, heads, hd}, f64);
        ops::rope_fwd(xb, pb, theta_args(10000), yb);
        const auto wantb = rope_ref(xb.to_vector<double>(), pb.to_vector<std::int64_t>(), heads,
                                    hd, 10000);
        CHECK(test::compare(yb, values({2, n, heads, hd}, wantb), tol) == "");
      }
}

TEST_CASE("rope f32 agrees with f64", "[cpu][rope]") {
  ops::RopeArgs a = theta_args(500000);
  a.scaling.kind = ops::RopeScaling::Kind::llama3;
  const Tensor x32 = test::random_tensor({2, 33, 4, 128}, f32, 9);
  const Tensor pos = test::random_ids({2, 33}, 8192, DType::i64, 10);
  const Tensor y32 = test::poisoned(x32.shape(), f32), y64 = test::poisoned(x32.shape(), f64);
  ops::rope_fwd(x32, pos, a, y32);
  ops::rope_fwd(x32.to(f64), pos, a, y64);
  CHECK(test::compare(y32, y64.to(f32), test::tolerance_for(f32)) == "");
  const Tensor dx32 = test::poisoned(x32.shape(), f32), dx64 = test::poisoned(x32.shape(), f64);
  ops::rope_bwd(y32, pos, a, dx32);
  ops::rope_bwd(y32.to(f64), pos, a, dx64);
  CHECK(test::compare(dx32, dx64.to(f32), test::tolerance_for(f32)) == "");
  CHECK(test::compare(dx32, x32, test::tolerance_for(f32)) == "");
}

TEST_CASE("rope rejects bad arguments", "[cpu][rope]") {
  const ops::RopeArgs args = theta_args(10000);
  const Tensor x = test::random_tensor({2, 3, 2, 8}, f64, 11);
  const Tensor pos = positions_of({2, 3}, {0, 1, 2, 3, 4, 5});
  const Tensor y = Tensor::empty({2, 3, 2, 8}, f64);

  CHECK_THROWS_WITH(ops::rope_fwd(Tensor::zeros({2, 3, 7}, f64), positions_of({2}, {0, 1}), args,
                                  Tensor::empty({2, 3, 7}, f64)),
                    Catch::Contains("[rope_fwd]") && Catch::Contains("'x'") &&
                        Catch::Contains("(2, 3, 7)") && Catch::Contains("even"));
  CHECK_THROWS_WITH(ops::rope_fwd(x, positions_of({3, 2}, {0, 1, 2, 3, 4, 5}), args, y),
                    Catch::Contains("[rope_fwd]") && Catch::Contains("'positions'") &&
                        Catch::Contains("(3, 2)") && Catch::Contains("(2, 3)") &&
                        Catch::Contains("(2, 3, 2, 8)"));
  CHECK_THROWS_WITH(ops::rope_fwd(x, Tensor::zeros({2, 3}, f64), args, y),
                    Catch::Contains("[rope_fwd]") && Catch::Contains("'positions'") &&
                        Catch::Contains("f64"));
  CHECK_THROWS_WITH(ops::rope_fwd(x, pos, args, Tensor::empty({2, 3, 8, 2}, f64)),
                    Catch::Contains("[rope_fwd]") && Catch::Contains("'y'") &&
                        Catch::Contains("(2, 3, 8, 2)") && Catch::Contains("(2, 3, 2, 8)"));
  CHECK_THROWS_WITH(ops::rope_fwd(x, pos, args, Tensor::empty({2, 3, 2, 8}, f32)),
                    Catch::Contains("[rope_fwd]") && Catch::Contains("'y'") &&
                        Catch::Contains("f32") && Catch::Contains("f64"));
  CHECK_THROWS_WITH(ops::rope_fwd(Tensor::zeros({8}, f64), Tensor::zeros({}, DType::i64), args,
                                  Tensor::empty({8}, f64)),
                    Catch::Contains("[rope_fwd]") && Catch::Contains("'x'") &&
                        Catch::Contains("(8)"));
  CHECK_THROWS_WITH(ops::rope_bwd(x, pos, args, Tensor::empty({2, 3, 2, 4}, f64)),
                    Catch::Contains("[rope_bwd]") && Catch::Contains("'dx'") &&
                        Catch::Contains("(2, 3, 2, 4)") && Catch::Contains("(2, 3, 2, 8)"));
  CHECK_THROWS_WITH(ops::rope_bwd(x, positions_of({6}, {0, 1, 2, 3, 4, 5}), args, y),
                    Catch::Contains("[rope_bwd]") && Catch::Contains("'positions'") &&
                        Catch::Contains("(6)") && Catch::Contains("(2, 3)"));
  CHECK_THROWS_WITH(ops::rope_inv_freq(7, args),
                    Catch::Contains("[rope_inv_freq]") && Catch::Contains("7"));
  CHECK_THROWS_WITH(ops::rope_fwd(x, pos, theta_args(-1), y),
                    Catch::Contains("[rope_fwd]") && Catch::Contains("theta"));
  ops::RopeArgs bad = args;
  bad.scaling.kind = ops::RopeScaling::Kind::llama3;
  bad.scaling.high_freq_factor = bad.scaling.low_freq_factor;
  CHECK_THROWS_WITH(ops::rope_inv_freq(8, bad),
                    Catch::Contains("[rope_inv_freq]") && Catch::Contains("llama3"));
}

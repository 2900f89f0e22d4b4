// Tests of the activation ops (SwiGLU, tanh-approximated GELU): known values, finite-difference
// gradients, overwrite semantics, ragged sizes, extreme inputs, f32 against f64, argument errors.
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


// Scalar references, written independently of the library.
double sigmoid_ref(double g) { return 1 / (1 + std::exp(-g)); }
double gelu_ref(double x) {
  const double k = std::sqrt(2 / 3.14159265358979323846);
  return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
double gelu_grad_ref(double x) {
  const double k = std::sqrt(2 / 3.14159265358979323846);
  const double t = std::tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
}

}  // namespace

TEST_CASE("gelu forward matches known values", "[cpu][activation]") {
  const Tensor x = values({6}, {0, 1, -1, 10, -10, 3});
  const Tensor y = test::poisoned({6}, f64);
  ops::gelu_fwd(x, y);
  const auto v = y.to_vector<double>();
  CHECK(v[0] == 0.0);
  CHECK(v[1] == Approx(0.8411919906).epsilon(0).margin(1e-10));
  CHECK(v[2] == Approx(0.8411919906 - 1).epsilon(0).margin(1e-10));  // gelu(−x) = gelu(x) − x
  CHECK(v[3] == Approx(10).epsilon(1e-15));
  CHECK(std::fabs(v[4]) < 1e-15);
  CHECK(v[5] == Approx(2.9963626079).epsilon(0).margin(1e-10));
}

TEST_CASE("swiglu forward matches known silu values", "[cpu][activation]") {
  const Tensor g = values({2, 3}, {0, 1, -1, 2, -100, 100});
  const Tensor out = test::poisoned({2, 3}, f64);
  ops::swiglu_fwd(g, Tensor::full({2, 3}, 1.0, f64), out);
  // silu(1) = σ(1) = 0.7310585786300049, silu(−1) = −σ(−1), silu(2) = 2σ(2).
  const auto v = out.to_vector<double>();
  CHECK(v[0] == 0.0);
  CHECK(v[1] == Approx(0.7310585786300049).epsilon(1e-14));
  CHECK(v[2] == Approx(-0.2689414213699951).epsilon(1e-14));
  CHECK(v[3] == Approx(1.7615941559557646).epsilon(1e-14));
  CHECK(std::fabs(v[4]) < 1e-40);
  CHECK(v[5] == Approx(100).epsilon(1e-15));
  ops::swiglu_fwd(g, Tensor::full({2, 3}, -3.0, f64), out);
  CHECK(out.to_vector<double>()[3] == Approx(-3 * 1.7615941559557646).epsilon(1e-14));
}

TEST_CASE("swiglu backward matches finite differences", "[cpu][activation][fd]") {
  const Tensor gate = test::random_tensor({4, 9}, f64, 1, -4.0, 4.0);
  const Tensor up = test::random_tensor({4, 9}, f64, 2, -2.0, 2.0);
  const Tensor g = test::random_tensor({4, 9}, f64, 3);
  const Tensor dgate = test::poisoned({4, 9}, f64), dup = test::poisoned({4, 9}, f64);
  ops::swiglu_bwd(g, gate, up, dgate, dup);
  auto loss = [&] {
    const Tensor out = Tensor::empty({4, 9}, f64);
    ops::swiglu_fwd(gate, up, out);
    return test::dot(g, out);
  };
  CHECK(test::check_gradient(gate, dgate, loss) == "");
  CHECK(test::check_gradient(up, dup, loss) == "");
}

TEST_CASE("gelu backward matches finite differences", "[cpu][activation][fd]") {
  const Tensor x = test::random_tensor({5, 9}, f64, 4, -4.0, 4.0);
  const Tensor g = test::random_tensor({5, 9}, f64, 5);
  const Tensor dx = test::poisoned({5, 9}, f64);
  ops::gelu_bwd(g, x, dx);
  auto loss = [&] {
    const Tensor y = Tensor::empty({5, 9}, f64);
    ops::gelu_fwd(x, y);
    return test::dot(g, y);
  };
  CHECK(test::check_gradient(x, dx, loss) == "");
}

TEST_CASE("activation backward overwrites every gradient element", "[cpu][activation]") {
  const Tensor gate = test::random_tensor({3, 11}, f64, 6, -3.0, 3.0);
  const Tensor up = test::random_tensor({3, 11}, f64, 7);
  const Tensor g = test::random_tensor({3, 11}, f64, 8);
  const auto gv = gate.to_vector<double>(), uv = up.to_vector<double>(), dv = g.to_vector<double>();
  std::vector<double> want_gate(gv.size()), want_up(gv.size()), want_x(gv.size());
  for (std::size_t i = 0; i < gv.size(); ++i) {
    const double s = sigmoid_ref(gv[i]);
    want_gate[i] = dv[i] * uv[i] * s * (1 + gv[i] * (1 - s));
    want_up[i] = dv[i] * gv[i] * s;
    want_x[i] = dv[i] * gelu_grad_ref(gv[i]);
  }
  const Tensor dgate = test::poisoned({3, 11}, f64), dup = test::poisoned({3, 11}, f64);
  ops::swiglu_bwd(g, gate, up, dgate, dup);
  CHECK(all_finite(dgate));
  CHECK(all_finite(dup));
  CHECK(test::compare(dgate, values({3, 11}, want_gate)) == "");
  CHECK(test::compare(dup, values({3, 11}, want_up)) == "");
  // Undefined gradients are skipped.
  const Tensor dup2 = test::poisoned({3, 11}, f64);
  ops::swiglu_bwd(g, gate, up, Tensor{}, dup2);
  CHECK(test::compare(dup2, values({3, 11}, want_up)) == "");
  const Tensor dx = test::poisoned({3, 11}, f64);
  ops::gelu_bwd(g, gate, dx);
  CHECK(all_finite(dx));
  CHECK(test::compare(dx, values({3, 11}, want_x)) == "");
  CHECK_NOTHROW(ops::gelu_bwd(g, gate, Tensor{}));
}

TEST_CASE("activations on ragged sizes match scalar loops", "[cpu][activation]") {
  for (std::int64_t r : {1, 33, 129})
    for (std::int64_t c : test::kRaggedSizes) {
      INFO("shape " << r << " x " << c);
      const std::uint64_t seed = static_cast<std::uint64_t>(r * 1000 + c);
      const Tensor gate = test::random_tensor({r, c}, f64, seed, -6.0, 6.0);
      const Tensor up = test::random_tensor({r, c}, f64, seed + 1);
      const Tensor g = test::random_tensor({r, c}, f64, seed + 2);
      const auto gv = gate.to_vector<double>(), uv = up.to_vector<double>();
      const auto dv = g.to_vector<double>();
      std::vector<double> sw(gv.size()), ge(gv.size()), dge(gv.size()), dgate(gv.size());
      for (std::size_t i = 0; i < gv.size(); ++i) {
        const double s = sigmoid_ref(gv[i]);
        sw[i] = gv[i] * s * uv[i];
        dgate[i] = dv[i] * uv[i] * s * (1 + gv[i] * (1 - s));
        ge[i] = gelu_ref(gv[i]);
        dge[i] = dv[i] * gelu_grad_ref(gv[i]);
      }
      const Tensor out = test::poisoned({r, c}, f64), y = test::poisoned({r, c}, f64);
      const Tensor dg = test::poisoned({r, c}, f64), dx = test::poisoned({r, c}, f64);
      ops::swiglu_fwd(gate, up, out);
      ops::swiglu_bwd(g, gate, up, dg, Tensor{});
      ops::gelu_fwd(gate, y);
      ops::gelu_bwd(g, gate, dx);
      CHECK(test::compare(out, values({r, c}, sw)) == "");
      CHECK(test::compare(dg, values({r, c}, dgate)) == "");
      CHECK(test::compare(y, values({r, c}, ge)) == "");
      CHECK(test::compare(dx, values({r, c}, dge)) == "");
    }
}

TEST_CASE("activations stay finite for extreme inputs", "[cpu][activation]") {
  for (DType t : {f32, f64}) {
    INFO(dtype_name(t));
    const Tensor x = values({6}, {-1e4, -1000, -50, 50, 1000, 1e4}, t);
    const Tensor ones = Tensor::full({6}, 1.0, t);
    const Tensor out = test::poisoned({6}, t), dgate = test::poisoned({6}, t);
    const Tensor dup = test::poisoned({6}, t), y = test::poisoned({6}, t);
    const Tensor dx = test::poisoned({6}, t);
    ops::swiglu_fwd(x, ones, out);
    ops::swiglu_bwd(ones, x, ones, dgate, dup);
    ops::gelu_fwd(x, y);
    ops::gelu_bwd(ones, x, dx);
    for (const Tensor* r : {&out, &dgate, &dup, &y, &dx}) CHECK(all_finite(*r));
    // Saturated: silu and gelu are ≈ x for large x, ≈ 0 for very negative x; slopes 1 and 0.
    CHECK(test::compare(out, values({6}, {0, 0, 0, 50, 1000, 1e4}, t), {1e-9, 1e-6}) == "");
    CHECK(test::compare(y, values({6}, {0, 0, 0, 50, 1000, 1e4}, t), {1e-9, 1e-6}) == "");
    CHECK(test::compare(dx, values({6}, {0, 0, 0, 1, 1, 1}, t), {1e-9, 1e-6}) == "");
    CHECK(test::compare(dgate.slice(3, 6), values({3}, {1, 1, 1}, t), {1e-9, 1e-6}) == "");
  }
}

TEST_CASE("activations f32 agree with f64", "[cpu][activation]") {
  const Tensor gate32 = test::random_tensor({64, 65}, f32, 9, -5.0, 5.0);
  const Tensor up32 = test::random_tensor({64, 65}, f32, 10);
  const Tensor g32 = test::random_tensor({64, 65}, f32, 11);
  const Tensor gate64 = gate32.to(f64), up64 = up32.to(f64), g64 = g32.to(f64);
  const test::Tolerance tol = test::tolerance_for(f32);
  Tensor out[2], dgate[2], dup[2], y[2], dx[2];
  const DType types[2] = {f32, f64};
  for (int k = 0; k < 2; ++k) {
    const Shape s = gate32.shape();
    out[k] = Tensor::empty(s, types[k]);
    dgate[k] = Tensor::empty(s, types[k]);
    dup[k] = Tensor::empty(s, types[k]);
    y[k] = Tensor::empty(s, types[k]);
    dx[k] = Tensor::empty(s, types[k]);
    const Tensor& gate = k ? gate64 : gate32;
    const Tensor& g = k ? g64 : g32;
    ops::swiglu_fwd(gate, k ? up64 : up32, out[k]);
    ops::swiglu_bwd(g, gate, k ? up64 : up32, dgate[k], dup[k]);
    ops::gelu_fwd(gate, y[k]);
    ops::gelu_bwd(g, gate, dx[k]);
  }
  CHECK(test::compare(out[0], out[1].to(f32), tol) == "");
  CHECK(test::compare(dgate[0], dgate[1].to(f32), tol) == "");
  CHECK(test::compare(dup[0], dup[1].to(f32), tol) == "");
  CHECK(test::compare(y[0], y[1].to(f32), tol) == "");
  CHECK(test::compare(dx[0], dx[1].to(f32), tol) == "");
}

TEST_CASE("activations reject bad arguments", "[cpu][activation]") {
  const Tensor a = test::random_tensor({3, 4}, f64, 12);
  const Tensor b = test::random_tensor({3, 4}, f64, 13);
  const Tensor o = Tensor::empty({3, 4}, f64);
  CHECK_THROWS_WITH(ops::swiglu_fwd(a, Tensor::empty({4, 3}, f64), o),
                    Catch::Contains("[swiglu_fwd]") && Catch::Contains("'up'") &&
                        Catch::Contains("(4, 3)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::swiglu_fwd(a, b, Tensor::empty({12}, f64)),
                    Catch::Contains("[swiglu_fwd]") && Catch::Contains("'out'") &&
                        Catch::Contains("(12)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::swiglu_fwd(a, b.to(f32), o),
                    Catch::Contains("[swiglu_fwd]") && Catch::Contains("'up'") &&
                        Catch::Contains("f32") && Catch::Contains("f64"));
  CHECK_THROWS_WITH(ops::swiglu_fwd(Tensor::zeros({3, 4}, DType::i64), b, o),
                    Catch::Contains("[swiglu_fwd]") && Catch::Contains("'gate'") &&
                        Catch::Contains("i64"));
  CHECK_THROWS_WITH(ops::swiglu_bwd(Tensor::empty({3, 5}, f64), a, b, o, o.clone()),
                    Catch::Contains("[swiglu_bwd]") && Catch::Contains("'dout'") &&
                        Catch::Contains("(3, 5)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::swiglu_bwd(a, a, b, o, Tensor::empty({3, 4, 1}, f64)),
                    Catch::Contains("[swiglu_bwd]") && Catch::Contains("'dup'") &&
                        Catch::Contains("(3, 4, 1)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::gelu_fwd(a, Tensor::empty({2, 4}, f64)),
                    Catch::Contains("[gelu_fwd]") && Catch::Contains("'y'") &&
                        Catch::Contains("(2, 4)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::gelu_fwd(a, Tensor::empty({3, 4}, f32)),
                    Catch::Contains("[gelu_fwd]") && Catch::Contains("'y'") &&
                        Catch::Contains("f32"));
  CHECK_THROWS_WITH(ops::gelu_bwd(a, b, Tensor::empty({4}, f64)),
                    Catch::Contains("[gelu_bwd]") && Catch::Contains("'dx'") &&
                        Catch::Contains("(4)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::gelu_bwd(Tensor::empty({1, 4}, f64), b, o),
                    Catch::Contains("[gelu_bwd]") && Catch::Contains("'dy'") &&
                        Catch::Contains("(1, 4)") && Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(ops::gelu_fwd(Tensor{}, o),
                    Catch::Contains("[gelu_fwd]") && Catch::Contains("'x'"));
}

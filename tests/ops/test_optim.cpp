// AdamW updates against the written-out formulas, gradient norms and clipping (including
// thread-count independence), and argument errors.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;

namespace {

Tensor vec(const std::vector<double>& v, DType dtype) {
  return Tensor::from_vector<double>({static_cast<std::int64_t>(v.size())}, v).to(dtype);
}

// Restores the OpenMP thread count when a test changes it.
struct ThreadCountGuard {
  int saved = omp_get_max_threads();
  ~ThreadCountGuard() { omp_set_num_threads(saved); }
};

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("adamw first step moves by lr times sign of g", "[cpu][optim]") {
  // At t = 1 with m = v = 0: m = (1−β1) g, v = (1−β2) g², so m / (1−β1) = g and
  // sqrt(v) / sqrt(1−β2) = |g|; with wd = 0 the step is exactly Δp = −lr · g / (|g| + eps),
  // which is −lr · sign(g) up to lr · eps / |g|.
  const std::int64_t n = 101;
  Tensor p0 = test::random_tensor({n}, DType::f64, 1);
  std::vector<double> g = test::random_tensor({n}, DType::f64, 2).to_vector<double>();
  g[0] = 1e-9;   // |g| below eps: the step is visibly smaller than lr
  g[1] = -3e-8;
  g[2] = 250.0;
  ops::AdamWArgs args;
  args.lr = 1e-2;
  args.eps = 1e-8;
  Tensor p = p0.clone(), m = Tensor::zeros({n}, DType::f64), v = Tensor::zeros({n}, DType::f64);
  ops::adamw_step(p, vec(g, DType::f64), m, v, args);
  const std::vector<double> before = p0.to_vector<double>(), after = p.to_vector<double>();
  for (std::int64_t i = 0; i < n; ++i) {
    CAPTURE(i, g[i]);
    const double delta = after[i] - before[i];
    const double exact = -args.lr * g[i] / (std::fabs(g[i]) + args.eps);
    CHECK(std::fabs(delta - exact) <= 1e-12 * args.lr + 1e-15);
    const double sign = g[i] > 0 ? 1.0 : -1.0;
    CHECK(std::fabs(delta + args.lr * sign) <= args.lr * args.eps / std::fabs(g[i]) + 1e-15);
  }
  CHECK(std::fabs(after[0] - before[0]) < 0.2 * args.lr);
}

TEST_CASE("adamw moments after one step", "[cpu][optim]") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const std::int64_t n = 33;
    Tensor g = test::random_tensor({n}, dt, 3, -2.0, 2.0);
    Tensor p = test::random_tensor({n}, dt, 4);
    Tensor m = Tensor::zeros({n}, dt), v = Tensor::zeros({n}, dt);
    ops::AdamWArgs args;
    args.beta1 = 0.8;
    args.beta2 = 0.95;
    args.weight_decay = 0.1;
    ops::adamw_step(p, g, m, v, args);
    const std::vector<double> gv = g.to_vector<double>();
    std::vector<double> m_ref(n), v_ref(n);
    for (std::int64_t i = 0; i < n; ++i) {
      m_ref[i] = (1 - args.beta1) * gv[i];
      v_ref[i] = (1 - args.beta2) * gv[i] * gv[i];
    }
    const test::Tolerance tol = dt == DType::f64 ? test::Tolerance{0, 1e-15} : test::tolerance_for(dt);
    CHECK(test::compare(m.to_vector<double>(), m_ref, tol) == "");
    CHECK(test::compare(v.to_vector<double>(), v_ref, tol) == "");
  }
}

TEST_CASE("adamw decoupled weight decay with zero gradient", "[cpu][optim]") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const std::int64_t n = 129;
    Tensor p0 = test::random_tensor({n}, dt, 5, -3.0, 3.0);
    Tensor p = p0.clone(), m = Tensor::zeros({n}, dt), v = Tensor::zeros({n}, dt);
    ops::AdamWArgs args;
    args.lr = 0.05;
    args.weight_decay = 0.3;
    for (std::int64_t step = 1; step <= 2; ++step) {
      args.step = step;
      ops::adamw_step(p, Tensor::zeros({n}, dt), m, v, args);
    }
    // Two steps of pure decay: p · (1 − lr·wd)², the factor and each step's product rounded to
    // the dtype (a product of two f32 values is exact in f64, so rounding it gives f32's).
    const double decay = vec({1.0 - args.lr * args.weight_decay}, dt).to_vector<double>()[0];
    std::vector<double> expected = p0.to_vector<double>();
    for (double& x : expected) {
      x = vec({x * decay}, dt).to_vector<double>()[0];
      x = vec({x * decay}, dt).to_vector<double>()[0];
    }
    CHECK(p.to_vector<double>() == expected);
    for (double x : m.to_vector<double>()) CHECK(x == 0.0);
    for (double x : v.to_vector<double>()) CHECK(x == 0.0);
  }
}

TEST_CASE("adamw three steps match the unrolled formulas", "[cpu][optim]") {
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  const double grads[3] = {0.3, -0.1, 0.25};
  // Written out for one scalar parameter, starting from p = 0.5, m = v = 0.
  double p = 0.5, m = 0.0, v = 0.0;
  // t = 1
  p = p * (1 - lr * wd);
  m = b1 * m + (1 - b1) * grads[0];
  v = b2 * v + (1 - b2) * grads[0] * grads[0];
  p = p - (lr / (1 - b1)) * m / (std::sqrt(v) / std::sqrt(1 - b2) + eps);
  const double p1 = p;
  // t = 2
  p = p * (1 - lr * wd);
  m = b1 * m + (1 - b1) * grads[1];
  v = b2 * v + (1 - b2) * grads[1] * grads[1];
  p = p - (lr / (1 - b1 * b1)) * m / (std::sqrt(v) / std::sqrt(1 - b2 * b2) + eps);
  const double p2 = p;
  // t = 3
  p = p * (1 - lr * wd);
  m = b1 * m + (1 - b1) * grads[2];
  v = b2 * v + (1 - b2) * grads[2] * grads[2];
  p = p - (lr / (1 - b1 * b1 * b1)) * m / (std::sqrt(v) / std::sqrt(1 - b2 * b2 * b2) + eps);
  const double p3 = p, m3 = m, v3 = v;

  Tensor tp = Tensor::full({1}, 0.5, DType::f64);
  Tensor tm = Tensor::zeros({1}, DType::f64), tv = Tensor::zeros({1}, DType::f64);
  ops::AdamWArgs args{lr, b1, b2, eps, wd, 1};
  const double expected_p[3] = {p1, p2, p3};
  for (int t = 0; t < 3; ++t) {
    args.step = t + 1;
    ops::adamw_step(tp, Tensor::full({1}, grads[t], DType::f64), tm, tv, args);
    CAPTURE(t + 1);
    CHECK(tp.item() == Approx(expected_p[t]).epsilon(1e-12).margin(0));
  }
  CHECK(tm.item() == Approx(m3).epsilon(1e-12));
  CHECK(tv.item() == Approx(v3).epsilon(1e-12));
  // The parameter moved against the net gradient direction and decayed toward 0.
  CHECK(p3 < 0.5);
}

TEST_CASE("adamw f32 agrees with f64 on ragged sizes", "[cpu][optim]") {
  for (std::int64_t n : test::kRaggedSizes) {
    CAPTURE(n);
    const std::int64_t size = n * 1000 + 7;  // spans several parallel chunks
    // Start from f32-representable values so both runs see the same inputs.
    Tensor p32 = test::random_tensor({size}, DType::f32, 10 + n);
    Tensor p64 = p32.to(DType::f64);
    Tensor m32 = Tensor::zeros({size}, DType::f32), v32 = Tensor::zeros({size}, DType::f32);
    Tensor m64 = Tensor::zeros({size}, DType::f64), v64 = Tensor::zeros({size}, DType::f64);
    ops::AdamWArgs args;
    args.lr = 1e-3;
    args.weight_decay = 0.01;
    for (std::int64_t step = 1; step <= 4; ++step) {
      args.step = step;
      Tensor g32 = test::random_tensor({size}, DType::f32, 100 * step + n);
      ops::adamw_step(p32, g32, m32, v32, args);
      ops::adamw_step(p64, g32.to(DType::f64), m64, v64, args);
    }
    CHECK(test::compare(p32.to_vector<double>(), p64.to_vector<double>(), {1e-6, 1e-5}) == "");
    CHECK(test::compare(m32.to_vector<double>(), m64.to_vector<double>(), {1e-6, 1e-5}) == "");
    CHECK(test::compare(v32.to_vector<double>(), v64.to_vector<double>(), {1e-7, 1e-5}) == "");
    // Every parameter moved.
    const std::vector<double> before = test::random_tensor({size}, DType::f32, 10 + n).to_vector<double>();
    const std::vector<double> after = p64.to_vector<double>();
    std::int64_t unchanged = 0;
    for (std::int64_t i = 0; i < size; ++i) unchanged += after[i] == before[i];
    CHECK(unchanged == 0);
  }
}

TEST_CASE("adamw writes the updated weights into a compute copy of another dtype", "[cpu][optim]") {
  const Tensor p = test::random_tensor({37}, DType::f32, 3), g = test::random_tensor({37}, DType::f32, 4);
  const Tensor m = Tensor::zeros({37}, DType::f32), v = Tensor::zeros({37}, DType::f32);
  const Tensor copy = Tensor::zeros({37}, DType::bf16), before = p.clone();
  ops::adamw_step(p, g, m, v, {}, copy);
  CHECK(copy.to_vector<float>() == p.to(DType::bf16).to_vector<float>());
  CHECK(p.to_vector<float>() != before.to_vector<float>());
  CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, {}, Tensor::zeros({36}, DType::bf16)),
                    Catch::Contains("[adamw_step]") && Catch::Contains("'param_copy'"));
}

TEST_CASE("grad norm of known tensors", "[cpu][optim]") {
  // 3² + 4² + 12² = 169 = 13², across two tensors of different dtypes.
  std::vector<Tensor> grads = {vec({3.0, 4.0}, DType::f32), vec({12.0}, DType::f64)};
  CHECK(ops::grad_norm(grads) == 13.0);
  grads.push_back(Tensor::zeros({0}, DType::f32));  // an empty tensor adds nothing
  grads.push_back(Tensor::zeros({2, 3}, DType::f64));
  CHECK(ops::grad_norm(grads) == 13.0);
  CHECK(ops::grad_norm({}) == 0.0);
  CHECK(ops::grad_norm({Tensor::full({4, 25}, -0.5, DType::f32)}) == 5.0);
  // Against a direct f64 sum.
  Tensor a = test::random_tensor({70000}, DType::f64, 20);
  Tensor b = test::random_tensor({33, 129}, DType::f32, 21);
  double s = 0;
  for (double x : a.to_vector<double>()) s += x * x;
  for (double x : b.to_vector<double>()) s += x * x;
  CHECK(ops::grad_norm({a, b}) == Approx(std::sqrt(s)).epsilon(1e-13));
}

TEST_CASE("clip grad norm scales to max norm", "[cpu][optim]") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    Tensor a = test::random_tensor({1000}, dt, 30, -5.0, 5.0);
    Tensor b = test::random_tensor({17, 3}, dt, 31, -5.0, 5.0);
    const Tensor a0 = a.clone(), b0 = b.clone();
    const double norm = ops::grad_norm({a, b});
    REQUIRE(norm > 10.0);
    const double max_norm = 1.5;
    const double returned = ops::clip_grad_norm({a, b}, max_norm);
    CHECK(returned == norm);  // the norm before clipping
    const double coef = max_norm / (norm + 1e-6);
    const double after = ops::grad_norm({a, b});
    CHECK(after == Approx(max_norm * norm / (norm + 1e-6)).epsilon(dt == DType::f64 ? 1e-13 : 1e-6));
    CHECK(after < max_norm);
    const test::Tolerance tol = test::tolerance_for(dt);
    std::vector<double> ea = a0.to_vector<double>(), eb = b0.to_vector<double>();
    for (double& x : ea) x *= coef;
    for (double& x : eb) x *= coef;
    CHECK(test::compare(a.to_vector<double>(), ea, tol) == "");
    CHECK(test::compare(b.to_vector<double>(), eb, tol) == "");
  }
}

TEST_CASE("clip grad norm leaves gradients under the limit alone", "[cpu][optim]") {
  Tensor a = vec({3.0, 4.0}, DType::f32);
  Tensor b = vec({12.0}, DType::f64);
  const Tensor a0 = a.clone(), b0 = b.clone();
  CHECK(ops::clip_grad_norm({a, b}, 20.0) == 13.0);
  CHECK(bitwise_equal(a, a0));
  CHECK(bitwise_equal(b, b0));
  // Exactly at the limit: not above it, so no scaling.
  CHECK(ops::clip_grad_norm({a, b}, 13.0) == 13.0);
  CHECK(bitwise_equal(a, a0));
  CHECK(bitwise_equal(b, b0));
  // Just under the norm: scaled.
  CHECK(ops::clip_grad_norm({a, b}, 6.5) == 13.0);
  CHECK(a.to_vector<double>()[0] == Approx(1.5).epsilon(1e-6));
  CHECK(b.to_vector<double>()[0] == Approx(6.0).epsilon(1e-6));
}

TEST_CASE("grad norm is independent of the thread count", "[cpu][optim]") {
  ThreadCountGuard guard;
  Tensor a = test::random_tensor({1000003}, DType::f32, 40);
  Tensor b = test::random_tensor({300001}, DType::f64, 41, -3.0, 3.0);
  omp_set_num_threads(1);
  const double one = ops::grad_norm({a, b});
  Tensor a1 = a.clone(), b1 = b.clone();
  const double clip_one = ops::clip_grad_norm({a1, b1}, 1.0);
  omp_set_num_threads(2);
  const double two = ops::grad_norm({a, b});
  Tensor a2 = a.clone(), b2 = b.clone();
  const double clip_two = ops::clip_grad_norm({a2, b2}, 1.0);
  CHECK(std::memcmp(&one, &two, sizeof one) == 0);
  CHECK(std::memcmp(&clip_one, &clip_two, sizeof one) == 0);
  CHECK(bitwise_equal(a1, a2));
  CHECK(bitwise_equal(b1, b2));
  double s = 0;
  for (double x : a.to_vector<double>()) s += x * x;
  for (double x : b.to_vector<double>()) s += x * x;
  CHECK(one == Approx(std::sqrt(s)).epsilon(1e-12));
}

TEST_CASE("adamw grad_scale equals a pre-scaled gradient and leaves the gradient alone", "[cpu][optim]") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const std::int64_t n = 1000;  // several vector widths and a ragged tail
    const Tensor g = test::random_tensor({n}, dt, 21, -3.0, 3.0);
    const Tensor g_before = g.clone();
    const double scale = 0.3719;
    // The pre-scaled gradient, rounded the way the update rounds it: g · (scale in the dtype).
    const double scale_t = vec({scale}, dt).to_vector<double>()[0];
    std::vector<double> scaled = g.to_vector<double>();
    for (double& x : scaled) x = vec({x * scale_t}, dt).to_vector<double>()[0];
    Tensor p1 = test::random_tensor({n}, dt, 22), m1 = test::random_tensor({n}, dt, 23, -0.1, 0.1);
    Tensor v1 = test::random_tensor({n}, dt, 24, 0.0, 0.01);
    Tensor p2 = p1.clone(), m2 = m1.clone(), v2 = v1.clone();
    ops::AdamWArgs args;
    args.weight_decay = 0.01;
    args.step = 3;
    ops::adamw_step(p1, vec(scaled, dt), m1, v1, args);
    args.grad_scale = scale;
    ops::adamw_step(p2, g, m2, v2, args);
    CHECK(bitwise_equal(p1, p2));
    CHECK(bitwise_equal(m1, m2));
    CHECK(bitwise_equal(v1, v2));
    CHECK(bitwise_equal(g, g_before));
    CHECK_FALSE(bitwise_equal(p1, test::random_tensor({n}, dt, 22)));  // the step did move p
  }
}

TEST_CASE("adamw over a group equals adamw on each tensor and names the bad one", "[cpu][optim]") {
  const std::vector<std::int64_t> sizes = {1, 100, 4099};
  std::vector<ops::AdamWTensors> group, single;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::int64_t n = sizes[i];
    const std::uint64_t seed = 300 + 10 * i;
    ops::AdamWTensors e;
    e.param = test::random_tensor({n}, DType::f32, seed);
    e.grad = test::random_tensor({n}, DType::f32, seed + 1);
    e.m = test::random_tensor({n}, DType::f32, seed + 2, -0.1, 0.1);
    e.v = test::random_tensor({n}, DType::f32, seed + 3, 0.0, 0.01);
    group.push_back(e);
    single.push_back({e.param.clone(), e.grad, e.m.clone(), e.v.clone(), {}});
  }
  ops::AdamWArgs args;
  args.weight_decay = 0.1;
  args.step = 5;
  args.grad_scale = 0.5;
  ops::adamw_step(group, args);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    ops::adamw_step(single[i].param, single[i].grad, single[i].m, single[i].v, args);
    CHECK(bitwise_equal(group[i].param, single[i].param));
    CHECK(bitwise_equal(group[i].m, single[i].m));
    CHECK(bitwise_equal(group[i].v, single[i].v));
  }
  ops::adamw_step(std::vector<ops::AdamWTensors>{}, args);  // an empty group is a no-op
  group[1].v = Tensor::zeros({7}, DType::f32);
  CHECK_THROWS_WITH(ops::adamw_step(group, args),
                    Catch::Contains("[adamw_step]") && Catch::Contains("'tensors[1].v'") && Catch::Contains("(7)"));
}

TEST_CASE("clip coefficient is clip_grad_norm's factor", "[cpu][optim]") {
  CHECK(ops::clip_coefficient(13.0, 20.0) == 1.0);
  CHECK(ops::clip_coefficient(13.0, 13.0) == 1.0);
  CHECK(ops::clip_coefficient(13.0, 6.5) == 6.5 / (13.0 + 1e-6));
  // clip_grad_norm scales by exactly that factor (f64 gradients: one rounding per element).
  Tensor a = vec({3.0, -4.0}, DType::f64), b = vec({12.0}, DType::f64);
  ops::clip_grad_norm({a, b}, 6.5);
  const double c = ops::clip_coefficient(13.0, 6.5);
  CHECK(a.to_vector<double>() == std::vector<double>{3.0 * c, -4.0 * c});
  CHECK(b.to_vector<double>() == std::vector<double>{12.0 * c});
  CHECK_THROWS_WITH(ops::clip_coefficient(1.0, 0.0), Catch::Contains("'max_norm'"));
}

TEST_CASE("optimizer ops reject bad arguments", "[cpu][optim]") {
  using Catch::Contains;
  const Tensor p = Tensor::zeros({4, 3}, DType::f32), g = Tensor::zeros({4, 3}, DType::f32);
  const Tensor m = Tensor::zeros({4, 3}, DType::f32), v = Tensor::zeros({4, 3}, DType::f32);
  CHECK_THROWS_WITH(ops::adamw_step(p, g, Tensor::zeros({3, 4}, DType::f32), v, {}),
                    Contains("[adamw_step]") && Contains("'m'") && Contains("(3, 4)") &&
                        Contains("(4, 3)"));
  CHECK_THROWS_WITH(ops::adamw_step(p, g, m, Tensor::zeros({12}, DType::f32), {}),
                    Contains("[adamw_step]") && Contains("'v'") && Contains("(12)") &&
                        Contains("(4, 3)"));
  CHECK_THROWS_WITH(ops::adamw_step(p, Tensor::zeros({4, 3}, DType::f64), m, v, {}),
                    Contains("[adamw_step]") && Contains("'grad'") && Contains("f64") &&
                        Contains("f32"));
  CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, {1e-3, 0.9, 0.999, 1e-8, 0.0, 0}),
                    Contains("[adamw_step]") && Contains("'step'") && Contains("is 0"));
  CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, {-1.0, 0.9, 0.999, 1e-8, 0.0, 1}),
                    Contains("[adamw_step]") && Contains("'lr'") && Contains("-1"));
  CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, {1e-3, 1.0, 0.999, 1e-8, 0.0, 1}),
                    Contains("[adamw_step]") && Contains("'beta1'"));
  CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, {1e-3, 0.9, -0.5, 1e-8, 0.0, 1}),
                    Contains("[adamw_step]") && Contains("'beta2'") && Contains("-0.5"));
  CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, {1e-3, 0.9, 0.999, 0.0, 0.0, 1}),
                    Contains("[adamw_step]") && Contains("'eps'"));
  ops::AdamWArgs zero_scale;
  zero_scale.grad_scale = 0.0;
  CHECK_THROWS_WITH(ops::adamw_step(p, g, m, v, zero_scale),
                    Contains("[adamw_step]") && Contains("'grad_scale'") && Contains("is 0"));
  CHECK_THROWS_WITH(ops::adamw_step(p.to(DType::bf16), g, m, v, {}),
                    Contains("[adamw_step]") && Contains("'param'") && Contains("bf16"));
  CHECK_THROWS_WITH(ops::adamw_step(p, Tensor(), m, v, {}),
                    Contains("[adamw_step]") && Contains("'grad'") && Contains("undefined"));
  CHECK_THROWS_WITH(ops::clip_grad_norm({g}, 0.0),
                    Contains("[clip_grad_norm]") && Contains("'max_norm'") && Contains("is 0"));
  CHECK_THROWS_WITH(ops::grad_norm({g, Tensor::zeros({2}, DType::i32)}),
                    Contains("[grad_norm]") && Contains("'grads[1]'") && Contains("i32"));
  CHECK_THROWS_WITH(ops::grad_norm({Tensor()}),
                    Contains("[grad_norm]") && Contains("'grads[0]'") && Contains("undefined"));
}

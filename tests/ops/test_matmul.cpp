// ops::matmul and matmul_bwd on the CPU reference: exactness against a plain triple loop,
// finite-difference gradients, f32 accuracy, reproducibility and argument errors.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;

namespace {

const std::vector<std::int64_t>& sizes = test::kRaggedSizes;

// Integers in [-4, 4]: every product and sum below stays exact in f32 and f64.
Tensor small_ints(const Shape& shape, DType dtype, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(-4, 4);
  std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)));
  for (double& x : v) x = dist(rng);
  return Tensor::from_vector<double>(shape, v).to(dtype);
}

// Storage shape of an operand: rows × cols, or cols × rows when transposed; batch 0 = 2-D.
Shape operand_shape(std::int64_t batch, std::int64_t rows, std::int64_t cols, bool trans) {
  Shape s = trans ? Shape{cols, rows} : Shape{rows, cols};
  if (batch > 0) s.insert(s.begin(), batch);
  return s;
}

struct Dims {
  std::int64_t batch, m, n, k;
  bool a_batched, b_batched;
};

Dims dims_of(const Tensor& a, const Tensor& b, const ops::MatmulArgs& args) {
  Dims d;
  d.a_batched = a.ndim() == 3;
  d.b_batched = b.ndim() == 3;
  d.m = args.trans_a ? a.size(-1) : a.size(-2);
  d.k = args.trans_a ? a.size(-2) : a.size(-1);
  d.n = args.trans_b ? b.size(-2) : b.size(-1);
  d.batch = d.a_batched ? a.size(0) : d.b_batched ? b.size(0) : 1;
  return d;
}

Shape c_shape(const Dims& d) {
  if (d.a_batched || d.b_batched) return {d.batch, d.m, d.n};
  return {d.m, d.n};
}

// Element accessors of op(a) (m×k) and op(b) (k×n) of batch entry p.
struct Operands {
  std::vector<double> a, b;
  Dims d;
  ops::MatmulArgs args;
  double op_a(std::int64_t p, std::int64_t i, std::int64_t k) const {
    const double* x = a.data() + (d.a_batched ? p * d.m * d.k : 0);
    return args.trans_a ? x[k * d.m + i] : x[i * d.k + k];
  }
  double op_b(std::int64_t p, std::int64_t k, std::int64_t j) const {
    const double* x = b.data() + (d.b_batched ? p * d.k * d.n : 0);
    return args.trans_b ? x[j * d.k + k] : x[k * d.n + j];
  }
};

Operands operands(const Tensor& a, const Tensor& b, const ops::MatmulArgs& args) {
  return {a.to_vector<double>(), b.to_vector<double>(), dims_of(a, b, args), args};
}

// c = alpha · op(a) · op(b) + beta · c0 by a plain triple loop in f64 (beta = 0 ignores c0).
Tensor reference_matmul(const Tensor& a, const Tensor& b, const Tensor& c0,
                        const ops::MatmulArgs& args) {
  const Operands o = operands(a, b, args);
  const Dims& d = o.d;
  const std::vector<double> prior = c0.to_vector<double>();
  std::vector<double> out(prior.size());
  for (std::int64_t p = 0; p < d.batch; ++p)
    for (std::int64_t i = 0; i < d.m; ++i)
      for (std::int64_t j = 0; j < d.n; ++j) {
        double s = 0;
        for (std::int64_t k = 0; k < d.k; ++k) s += o.op_a(p, i, k) * o.op_b(p, k, j);
        const std::size_t at = static_cast<std::size_t>((p * d.m + i) * d.n + j);
        out[at] = args.alpha * s + (args.beta == 0 ? 0.0 : args.beta * prior[at]);
      }
  return Tensor::from_vector<double>(c0.shape(), out);
}

// The gradients of c = alpha · op(a) · op(b) for upstream g, by triple loops in f64, in a's and
// b's layouts (shared operands summed over the batch).
void reference_bwd(const Tensor& a, const Tensor& b, const Tensor& g, const ops::MatmulArgs& args,
                   Tensor& da, Tensor& db) {
  const Operands o = operands(a, b, args);
  const Dims& d = o.d;
  const std::vector<double> gv = g.to_vector<double>();
  std::vector<double> va(static_cast<std::size_t>(a.numel())),
      vb(static_cast<std::size_t>(b.numel()));
  for (std::int64_t p = 0; p < d.batch; ++p) {
    const double* gp = gv.data() + p * d.m * d.n;
    double* ap = va.data() + (d.a_batched ? p * d.m * d.k : 0);
    double* bp = vb.data() + (d.b_batched ? p * d.k * d.n : 0);
    for (std::int64_t i = 0; i < d.m; ++i)
      for (std::int64_t k = 0; k < d.k; ++k) {
        double s = 0;
        for (std::int64_t j = 0; j < d.n; ++j) s += gp[i * d.n + j] * o.op_b(p, k, j);
        ap[args.trans_a ? k * d.m + i : i * d.k + k] += args.alpha * s;
      }
    for (std::int64_t k = 0; k < d.k; ++k)
      for (std::int64_t j = 0; j < d.n; ++j) {
        double s = 0;
        for (std::int64_t i = 0; i < d.m; ++i) s += o.op_a(p, i, k) * gp[i * d.n + j];
        bp[args.trans_b ? j * d.k + k : k * d.n + j] += args.alpha * s;
      }
  }
  da = Tensor::from_vector<double>(a.shape(), va);
  db = Tensor::from_vector<double>(b.shape(), vb);
}

ops::MatmulArgs make_args(bool ta, bool tb, double alpha = 1.0, double beta = 0.0) {
  ops::MatmulArgs args;
  args.trans_a = ta;
  args.trans_b = tb;
  args.alpha = alpha;
  args.beta = beta;
  return args;
}

// Runs matmul on small-integer inputs and checks the result equals the triple loop exactly.
void check_exact(std::int64_t batch_a, std::int64_t batch_b, std::int64_t m, std::int64_t n,
                 std::int64_t k, const ops::MatmulArgs& args, DType dtype, std::uint64_t seed) {
  const Tensor a = small_ints(operand_shape(batch_a, m, k, args.trans_a), dtype, seed);
  const Tensor b = small_ints(operand_shape(batch_b, k, n, args.trans_b), dtype, seed + 1);
  const Shape cs = c_shape(dims_of(a, b, args));
  const Tensor c = args.beta == 0 ? test::poisoned(cs, dtype) : small_ints(cs, dtype, seed + 2);
  const Tensor want = reference_matmul(a, b, c, args);
  ops::matmul(a, b, c, args);
  INFO("a " << shape_str(a.shape()) << " b " << shape_str(b.shape()) << " " << dtype_name(dtype)
            << " trans " << args.trans_a << args.trans_b << " alpha " << args.alpha << " beta "
            << args.beta);
  CHECK(test::compare(c, want, {0.0, 0.0}) == "");
}

bool bitwise_equal(const Tensor& x, const Tensor& y) {
  return x.shape() == y.shape() && x.dtype() == y.dtype() &&
         std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

}  // namespace

TEST_CASE("matmul 2d forward is exact on small integers", "[cpu][matmul]") {
  const std::size_t ns = sizes.size();
  std::uint64_t seed = 1;
  for (std::size_t i = 0; i < ns; ++i)
    for (std::size_t shift : {std::size_t{2}, std::size_t{5}}) {
      const std::int64_t m = sizes[i], n = sizes[(i + shift) % ns], k = sizes[(i + 2 * shift) % ns];
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (DType dt : {DType::f32, DType::f64})
            check_exact(0, 0, m, n, k, make_args(ta, tb), dt, seed += 3);
    }
}

TEST_CASE("matmul spanning several output tiles is exact", "[cpu][matmul]") {
  // More rows and columns than one tile (128 × 256), with ragged edges.
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (DType dt : {DType::f32, DType::f64})
        check_exact(0, 0, 260, 515, 33, make_args(ta, tb), dt, 11);
  // Matrix-vector-like products (few rows) use wider column tiles.
  for (bool ta : {false, true})
    for (bool tb : {false, true}) check_exact(0, 0, 3, 8200, 5, make_args(ta, tb), DType::f32, 12);
}

TEST_CASE("batched matmul forward is exact on small integers", "[cpu][matmul]") {
  struct Mnk {
    std::int64_t m, n, k;
  };
  const Mnk shapes[] = {{33, 31, 129}, {1, 128, 32}, {127, 1, 33}, {129, 33, 1}};
  std::uint64_t seed = 100;
  for (const Mnk& s : shapes)
    for (auto [ba, bb] : {std::pair<int, int>{3, 3}, {3, 0}, {0, 3}, {1, 0}})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (DType dt : {DType::f32, DType::f64})
            check_exact(ba, bb, s.m, s.n, s.k, make_args(ta, tb), dt, seed += 3);
}

TEST_CASE("matmul alpha and beta accumulate onto c exactly", "[cpu][matmul]") {
  std::uint64_t seed = 500;
  for (auto [alpha, beta] : {std::pair<double, double>{2.0, 1.0}, {-0.5, 3.0}, {1.0, -1.0}})
    for (auto [ba, bb] : {std::pair<int, int>{0, 0}, {2, 2}, {2, 0}, {0, 2}})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (DType dt : {DType::f32, DType::f64}) {
            check_exact(ba, bb, 33, 129, 127, make_args(ta, tb, alpha, beta), dt, seed += 3);
            check_exact(ba, bb, 1, 31, 32, make_args(ta, tb, alpha, beta), dt, seed += 3);
          }
}

TEST_CASE("matmul with beta zero ignores NaN in c", "[cpu][matmul]") {
  // check_exact poisons c with NaN whenever beta = 0; sizes cover both Eigen's small-product
  // path and its blocked GEMM.
  std::uint64_t seed = 900;
  for (std::int64_t s : {std::int64_t{1}, std::int64_t{4}, std::int64_t{129}})
    for (bool ta : {false, true})
      for (DType dt : {DType::f32, DType::f64}) {
        check_exact(0, 0, s, s, s, make_args(ta, !ta, 1.5, 0.0), dt, seed += 3);
        check_exact(2, 0, s, s + 1, s, make_args(ta, ta, -1.0, 0.0), dt, seed += 3);
      }
  // With K = 0 the product is empty: c = beta · c, which for beta = 0 is zero despite the NaN.
  const Tensor a = Tensor::zeros({3, 0}, DType::f32);
  const Tensor b = Tensor::zeros({0, 5}, DType::f32);
  const Tensor c = test::poisoned({3, 5}, DType::f32);
  ops::matmul(a, b, c);
  CHECK(c.to_vector<double>() == std::vector<double>(15, 0.0));
  const Tensor c2 = Tensor::full({3, 5}, 2.0, DType::f32);
  ops::matmul(a, b, c2, make_args(false, false, 1.0, 0.5));
  CHECK(c2.to_vector<double>() == std::vector<double>(15, 1.0));
}

TEST_CASE("matmul f32 agrees with f64", "[cpu][matmul]") {
  // The f32 product of the same (f32-rounded) inputs. Each of the K products and partial sums
  // rounds with relative error ≤ u = 2⁻²⁴; for inputs uniform in [-1, 1] the partial sums stay
  // around √K / 3 and the independent rounding errors add like a random walk, so the error is
  // typically u · K / 3 (≈ 3e-6 at K = 129, ≈ 1.3e-5 at K = 515). The f32 tolerance
  // (1e-5 ≈ 170 u) scaled by √K leaves over an order of magnitude of margin while still failing
  // for an f64 result that took a wrong term (errors ~ 1e-1).
  std::uint64_t seed = 1000;
  for (std::int64_t k : {std::int64_t{1}, std::int64_t{33}, std::int64_t{129}, std::int64_t{515}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const auto args = make_args(ta, tb, 0.75);
        const Tensor a = test::random_tensor(operand_shape(2, 65, k, ta), DType::f32, seed += 3);
        const Tensor b = test::random_tensor(operand_shape(0, k, 130, tb), DType::f32, seed += 3);
        const Tensor c32 = test::poisoned({2, 65, 130}, DType::f32);
        const Tensor c64 = test::poisoned({2, 65, 130}, DType::f64);
        ops::matmul(a, b, c32, args);
        ops::matmul(a.to(DType::f64), b.to(DType::f64), c64, args);
        const test::Tolerance base = test::tolerance_for(DType::f32);
        const double scale = std::sqrt(static_cast<double>(k));
        INFO("k " << k << " trans " << ta << tb);
        CHECK(test::compare(c32, c64, {base.atol * scale, base.rtol * scale}) == "");
      }
}

TEST_CASE("matmul is bitwise deterministic", "[cpu][matmul]") {
  const auto args = make_args(false, true, 0.5);
  const Tensor a = test::random_tensor({3, 140, 300}, DType::f32, 1);
  const Tensor b = test::random_tensor({270, 300}, DType::f32, 2);
  const Tensor g = test::random_tensor({3, 140, 270}, DType::f32, 3);
  Tensor outs[2], das[2], dbs[2];
  for (int run = 0; run < 2; ++run) {
    outs[run] = test::poisoned({3, 140, 270}, DType::f32);
    das[run] = Tensor::zeros(a.shape(), DType::f32);
    dbs[run] = Tensor::zeros(b.shape(), DType::f32);
    ops::matmul(a, b, outs[run], args);
    ops::matmul_bwd(a, b, g, das[run], dbs[run], args);
  }
  CHECK(bitwise_equal(outs[0], outs[1]));
  CHECK(bitwise_equal(das[0], das[1]));
  CHECK(bitwise_equal(dbs[0], dbs[1]));
}

TEST_CASE("matmul does not depend on the thread count", "[cpu][matmul]") {
  // Large enough that Eigen's own threaded GEMM (with its thread-dependent k-blocking) would
  // kick in; the reference must give the same bits with 1, 2 or 3 threads.
  const int saved = omp_get_max_threads();
  const Tensor a = test::random_tensor({300, 700}, DType::f32, 4);
  const Tensor b = test::random_tensor({2, 700, 270}, DType::f32, 5);
  const Tensor g = test::random_tensor({2, 300, 270}, DType::f32, 6);
  std::vector<Tensor> outs, das, dbs;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    outs.push_back(test::poisoned({2, 300, 270}, DType::f32));
    das.push_back(Tensor::zeros(a.shape(), DType::f32));
    dbs.push_back(Tensor::zeros(b.shape(), DType::f32));
    ops::matmul(a, b, outs.back());
    ops::matmul_bwd(a, b, g, das.back(), dbs.back());
    // The op keeps Eigen single-threaded without changing the caller's setting.
    CHECK(omp_get_max_threads() == threads);
  }
  // Small products run serially, with the same guarantee.
  omp_set_num_threads(2);
  ops::matmul(test::random_tensor({3, 4}, DType::f32, 7),
              test::random_tensor({4, 5}, DType::f32, 8), Tensor::zeros({3, 5}, DType::f32));
  CHECK(omp_get_max_threads() == 2);
  omp_set_num_threads(saved);
  for (std::size_t i = 1; i < outs.size(); ++i) {
    CHECK(bitwise_equal(outs[0], outs[i]));
    CHECK(bitwise_equal(das[0], das[i]));
    CHECK(bitwise_equal(dbs[0], dbs[i]));
  }
}

TEST_CASE("matmul backward matches finite differences", "[cpu][matmul][fd]") {
  const std::int64_t m = 3, n = 4, k = 5;
  std::uint64_t seed = 2000;
  for (auto [ba, bb] : {std::pair<int, int>{0, 0}, {2, 2}, {2, 0}, {0, 2}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const auto args = make_args(ta, tb, 0.7, 0.25);  // beta is ignored by the backward
        const auto fwd = make_args(ta, tb, 0.7, 0.0);
        const Tensor a = test::random_tensor(operand_shape(ba, m, k, ta), DType::f64, seed += 3);
        const Tensor b = test::random_tensor(operand_shape(bb, k, n, tb), DType::f64, seed += 3);
        const Shape cs = c_shape(dims_of(a, b, args));
        const Tensor g = test::random_tensor(cs, DType::f64, seed += 3);
        const Tensor da = Tensor::zeros(a.shape(), DType::f64);
        const Tensor db = Tensor::zeros(b.shape(), DType::f64);
        ops::matmul_bwd(a, b, g, da, db, args);
        const Tensor c = Tensor::empty(cs, DType::f64);
        auto loss = [&] {
          ops::matmul(a, b, c, fwd);
          return test::dot(g, c);
        };
        INFO("a " << shape_str(a.shape()) << " b " << shape_str(b.shape()) << " trans " << ta
                  << tb);
        CHECK(test::check_gradient(a, da, loss) == "");
        CHECK(test::check_gradient(b, db, loss) == "");
      }
}

TEST_CASE("matmul backward is exact on small integers", "[cpu][matmul]") {
  // Against triple loops; covers the shared-operand sums over the batch (both the per-tile
  // batch loop and the single stacked product) and the tile edges.
  struct Mnk {
    std::int64_t m, n, k;
  };
  std::uint64_t seed = 3000;
  for (const Mnk s : {Mnk{33, 31, 129}, Mnk{129, 260, 1}, Mnk{1, 32, 127}})
    for (auto [ba, bb] : {std::pair<int, int>{0, 0}, {3, 3}, {3, 0}, {0, 3}})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (DType dt : {DType::f32, DType::f64}) {
            const auto args = make_args(ta, tb, -2.0);
            const Tensor a = small_ints(operand_shape(ba, s.m, s.k, ta), dt, seed += 3);
            const Tensor b = small_ints(operand_shape(bb, s.k, s.n, tb), dt, seed += 3);
            const Tensor g = small_ints(c_shape(dims_of(a, b, args)), dt, seed += 3);
            Tensor want_a, want_b;
            reference_bwd(a, b, g, args, want_a, want_b);
            const Tensor da = Tensor::zeros(a.shape(), dt);
            const Tensor db = Tensor::zeros(b.shape(), dt);
            ops::matmul_bwd(a, b, g, da, db, args);
            INFO("a " << shape_str(a.shape()) << " b " << shape_str(b.shape()) << " "
                      << dtype_name(dt) << " trans " << ta << tb);
            CHECK(test::compare(da, want_a, {0.0, 0.0}) == "");
            CHECK(test::compare(db, want_b, {0.0, 0.0}) == "");
          }
}

TEST_CASE("matmul backward accumulates and skips undefined outputs", "[cpu][matmul]") {
  const auto args = make_args(true, false, 1.5);
  const Tensor a = small_ints({2, 7, 5}, DType::f64, 1);  // op(a): (5, 7)
  const Tensor b = small_ints({7, 6}, DType::f64, 2);
  const Tensor g = small_ints({2, 5, 6}, DType::f64, 3);
  Tensor want_a, want_b;
  reference_bwd(a, b, g, args, want_a, want_b);
  const Tensor da = small_ints(a.shape(), DType::f64, 4);
  const Tensor db = small_ints(b.shape(), DType::f64, 5);
  const Tensor da0 = da.clone(), db0 = db.clone();
  ops::matmul_bwd(a, b, g, da, Tensor{}, args);
  ops::matmul_bwd(a, b, g, Tensor{}, db, args);
  ops::matmul_bwd(a, b, g, Tensor{}, Tensor{}, args);
  const auto expect_sum = [](const Tensor& prior, const Tensor& grad) {
    std::vector<double> v = prior.to_vector<double>();
    const std::vector<double> gv = grad.to_vector<double>();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] += gv[i];
    return Tensor::from_vector<double>(prior.shape(), v);
  };
  CHECK(test::compare(da, expect_sum(da0, want_a), {0.0, 0.0}) == "");
  CHECK(test::compare(db, expect_sum(db0, want_b), {0.0, 0.0}) == "");
}

TEST_CASE("matmul backward overwrites instead of accumulating when asked", "[cpu][matmul]") {
  // The outputs start as NaN: an overwrite must not read them (beta = 0, not 0 · old). Covers
  // the sum over a batch into a shared operand's gradient, where only its first term may
  // overwrite, on both GEMM paths (f32 packed, f64 Eigen).
  std::uint64_t seed = 7000;
  for (auto [ba, bb] : {std::pair<int, int>{0, 0}, {3, 0}, {0, 3}, {3, 3}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (DType dt : {DType::f32, DType::f64})
          for (auto [acc_a, acc_b] : {std::pair<bool, bool>{false, false}, {false, true}, {true, false}}) {
            const auto args = make_args(ta, tb, 0.5);
            const Tensor a = small_ints(operand_shape(ba, 37, 45, ta), dt, seed += 3);
            const Tensor b = small_ints(operand_shape(bb, 45, 40, tb), dt, seed += 3);
            const Tensor g = small_ints(c_shape(dims_of(a, b, args)), dt, seed += 3);
            Tensor want_a, want_b;
            reference_bwd(a, b, g, args, want_a, want_b);
            // Accumulating outputs start at zero, so both modes expect the plain gradient.
            const Tensor da = acc_a ? Tensor::zeros(a.shape(), dt) : Tensor::full(a.shape(), NAN, dt);
            const Tensor db = acc_b ? Tensor::zeros(b.shape(), dt) : Tensor::full(b.shape(), NAN, dt);
            ops::matmul_bwd(a, b, g, da, db, args, {acc_a, acc_b});
            INFO("a " << shape_str(a.shape()) << " b " << shape_str(b.shape()) << " " << dtype_name(dt)
                      << " trans " << ta << tb << " accumulate " << acc_a << acc_b);
            CHECK(test::compare(da, want_a, {0.0, 0.0}) == "");
            CHECK(test::compare(db, want_b, {0.0, 0.0}) == "");
          }
}

// The message of an argument error: op, argument and two more fragments (shapes or dtypes).
// A macro, not a function: Catch's combined matchers keep references to their parts.
#define MATMUL_ERR(arg, s1, s2) \
  Catch::Contains("[matmul]") && Catch::Contains(arg) && Catch::Contains(s1) && Catch::Contains(s2)
#define MATMUL_BWD_ERR(arg, s1, s2)                                                 \
  Catch::Contains("[matmul_bwd]") && Catch::Contains(arg) && Catch::Contains(s1) && \
      Catch::Contains(s2)

TEST_CASE("matmul rejects bad arguments naming them", "[cpu][matmul]") {
  const auto f32 = DType::f32;
  const Tensor a = Tensor::zeros({2, 3}, f32);
  const Tensor b = Tensor::zeros({3, 4}, f32);
  const Tensor c = Tensor::zeros({2, 4}, f32);
  // Inner dimension K = 3 of a against K' = 5 of b.
  CHECK_THROWS_WITH(ops::matmul(a, Tensor::zeros({5, 4}, f32), c),
                    MATMUL_ERR("'b'", "(5, 4)", "(2, 3)"));
  CHECK_THROWS_WITH(ops::matmul(a, b, c, make_args(false, true)),
                    MATMUL_ERR("'b'", "(3, 4)", "(2, 3)"));
  CHECK_THROWS_WITH(ops::matmul(a, b, Tensor::zeros({2, 5}, f32)),
                    MATMUL_ERR("'c'", "(2, 5)", "(2, 4)"));
  CHECK_THROWS_WITH(ops::matmul(a, b, Tensor::zeros({1, 2, 4}, f32)),
                    MATMUL_ERR("'c'", "(1, 2, 4)", "(2, 4)"));
  CHECK_THROWS_WITH(ops::matmul(Tensor::zeros({2, 2, 3}, f32), Tensor::zeros({5, 3, 4}, f32),
                                Tensor::zeros({2, 2, 4}, f32)),
                    MATMUL_ERR("'b'", "(5, 3, 4)", "(2, 2, 3)"));
  CHECK_THROWS_WITH(ops::matmul(Tensor::zeros({3}, f32), b, c),
                    MATMUL_ERR("'a'", "(3)", "dimensions"));
  CHECK_THROWS_WITH(ops::matmul(a, Tensor::zeros({1, 1, 3, 4}, f32), c),
                    MATMUL_ERR("'b'", "(1, 1, 3, 4)", "dimensions"));
  // Dtypes: the message names both dtypes.
  CHECK_THROWS_WITH(ops::matmul(a, Tensor::zeros({3, 4}, DType::f64), c),
                    MATMUL_ERR("'b'", "f64", "f32"));
  CHECK_THROWS_WITH(
      ops::matmul(Tensor::zeros({2, 3}, DType::i32), Tensor::zeros({3, 4}, DType::i32),
                  Tensor::zeros({2, 4}, DType::i32)),
      MATMUL_ERR("'a'", "i32", "f32 or f64"));
  CHECK_THROWS_WITH(
      ops::matmul(Tensor::zeros({2, 3}, DType::bf16), Tensor::zeros({3, 4}, DType::bf16),
                  Tensor::zeros({2, 4}, DType::bf16)),
      MATMUL_ERR("'a'", "bf16", "f32 or f64"));
  CHECK_THROWS_WITH(ops::matmul(a, Tensor{}, c), MATMUL_ERR("'b'", "undefined", ""));
  CHECK_THROWS_WITH(ops::matmul(a, b, Tensor{}), MATMUL_ERR("'c'", "undefined", ""));
  CHECK_THROWS_WITH(ops::matmul(Tensor{}, b, c), MATMUL_ERR("'a'", "undefined", ""));
  // An output that aliases an input.
  const Tensor sq = Tensor::zeros({3, 3}, f32);
  CHECK_THROWS_WITH(ops::matmul(sq, Tensor::zeros({3, 3}, f32), sq),
                    MATMUL_ERR("'c'", "'a'", "(3, 3)"));
}

TEST_CASE("matmul_bwd rejects bad arguments naming them", "[cpu][matmul]") {
  const auto f64 = DType::f64;
  const Tensor a = Tensor::zeros({2, 3, 5}, f64);
  const Tensor b = Tensor::zeros({5, 4}, f64);
  const Tensor dc = Tensor::zeros({2, 3, 4}, f64);
  const Tensor da = Tensor::zeros({2, 3, 5}, f64);
  const Tensor db = Tensor::zeros({5, 4}, f64);
  CHECK_NOTHROW(ops::matmul_bwd(a, b, dc, da, db));
  CHECK_THROWS_WITH(ops::matmul_bwd(a, b, Tensor::zeros({3, 4}, f64), da, db),
                    MATMUL_BWD_ERR("'dc'", "(3, 4)", "(2, 3, 4)"));
  CHECK_THROWS_WITH(ops::matmul_bwd(a, b, dc, Tensor::zeros({3, 5}, f64), db),
                    MATMUL_BWD_ERR("'da'", "(3, 5)", "(2, 3, 5)"));
  CHECK_THROWS_WITH(ops::matmul_bwd(a, b, dc, da, Tensor::zeros({2, 5, 4}, f64)),
                    MATMUL_BWD_ERR("'db'", "(2, 5, 4)", "(5, 4)"));
  CHECK_THROWS_WITH(ops::matmul_bwd(a, b, dc, da, Tensor::zeros({5, 4}, DType::f32)),
                    MATMUL_BWD_ERR("'db'", "f32", "f64"));
  CHECK_THROWS_WITH(ops::matmul_bwd(a, Tensor::zeros({4, 4}, f64), dc, da, db),
                    MATMUL_BWD_ERR("'b'", "(4, 4)", "(2, 3, 5)"));
  CHECK_THROWS_WITH(ops::matmul_bwd(a, b, Tensor{}, da, db),
                    MATMUL_BWD_ERR("'dc'", "undefined", ""));
  CHECK_THROWS_WITH(ops::matmul_bwd(a, b, dc, Tensor::zeros({2, 3, 4}, f64), db),
                    MATMUL_BWD_ERR("'da'", "(2, 3, 4)", "(2, 3, 5)"));
  const Tensor sq = Tensor::zeros({5, 5}, f64);
  CHECK_THROWS_WITH(ops::matmul_bwd(sq, sq, Tensor::zeros({5, 5}, f64), sq, Tensor{}),
                    MATMUL_BWD_ERR("'da'", "shares memory", "(5, 5)"));
}

// Cross-entropy loss: forward values, finite-difference gradients, ignored rows, weights,
// stability, ragged and large vocabularies, and argument errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;

namespace {

// What a direct f64 computation gives for one batch: losses, lse and dlogits for dlosses.
struct CeReference {
  std::vector<double> losses, lse, dlogits;
};

CeReference ce_reference(const Tensor& logits, const std::vector<std::int64_t>& targets,
                         const std::vector<double>& weights, std::int64_t ignore_index,
                         const std::vector<double>& dlosses) {
  const std::vector<double> x = logits.to_vector<double>();
  const std::int64_t n_rows = logits.size(0), vocab = logits.size(1);
  CeReference r;
  r.losses.assign(n_rows, 0.0);
  r.lse.assign(n_rows, 0.0);
  r.dlogits.assign(n_rows * vocab, 0.0);
  for (std::int64_t n = 0; n < n_rows; ++n) {
    const double* row = x.data() + n * vocab;
    double m = row[0];
    for (std::int64_t v = 1; v < vocab; ++v) m = std::max(m, row[v]);
    double s = 0;
    for (std::int64_t v = 0; v < vocab; ++v) s += std::exp(row[v] - m);
    r.lse[n] = m + std::log(s);
    const std::int64_t t = targets[n];
    if (t == ignore_index) continue;
    const double w = weights.empty() ? 1.0 : weights[n];
    r.losses[n] = w * (r.lse[n] - row[t]);
    for (std::int64_t v = 0; v < vocab; ++v)
      r.dlogits[n * vocab + v] = dlosses[n] * w * (std::exp(row[v] - r.lse[n]) - (v == t ? 1 : 0));
  }
  return r;
}

Tensor targets_tensor(const std::vector<std::int64_t>& t, DType dtype) {
  return Tensor::from_vector<std::int64_t>({static_cast<std::int64_t>(t.size())}, t).to(dtype);
}

// Random targets in [0, V) with every third row (starting at row 1) set to ignore_index.
std::vector<std::int64_t> targets_with_ignored(std::int64_t n, std::int64_t vocab,
                                               std::int64_t ignore_index, std::uint64_t seed) {
  std::vector<std::int64_t> t = test::random_ids({n}, vocab, DType::i64, seed).to_vector<std::int64_t>();
  for (std::int64_t i = 1; i < n; i += 3) t[i] = ignore_index;
  return t;
}

Tensor vec(const std::vector<double>& v, DType dtype) {
  return Tensor::from_vector<double>({static_cast<std::int64_t>(v.size())}, v).to(dtype);
}

}  // namespace

TEST_CASE("cross entropy backward matches finite differences", "[cpu][loss][fd]") {
  struct Config {
    std::int64_t ignore_index;
    DType index_dtype;
    bool weighted;
  };
  const std::int64_t n = 6, vocab = 7;
  for (const Config c : {Config{-100, DType::i64, true}, Config{-100, DType::i32, false},
                         Config{-1, DType::i32, true}, Config{3, DType::i64, true}}) {
    CAPTURE(c.ignore_index, dtype_name(c.index_dtype), c.weighted);
    Tensor logits = test::random_tensor({n, vocab}, DType::f64, 11, -2.0, 2.0);
    std::vector<std::int64_t> t = targets_with_ignored(n, vocab, c.ignore_index, 12);
    t[0] = vocab - 1;  // at least one row uses the last class
    if (c.ignore_index == 3) t[2] = 3;  // an ignore index that is also a valid class
    Tensor targets = targets_tensor(t, c.index_dtype);
    ops::CrossEntropyArgs args;
    args.ignore_index = c.ignore_index;
    if (c.weighted) args.weights = test::random_tensor({n}, DType::f64, 13, 0.25, 2.0);
    Tensor G = test::random_tensor({n}, DType::f64, 14);
    Tensor losses = Tensor::empty({n}, DType::f64), lse = Tensor::empty({n}, DType::f64);
    auto loss = [&] {
      ops::cross_entropy_fwd(logits, targets, args, losses, lse);
      return test::dot(G, losses);
    };
    loss();
    Tensor dlogits = test::poisoned({n, vocab}, DType::f64);
    ops::cross_entropy_bwd(G, logits, targets, lse, args, dlogits);
    const std::string report = test::check_gradient(logits, dlogits, loss);
    CHECK(report == "");
    // Ignored rows contribute nothing, and their gradient rows are exactly zero.
    const std::vector<double> d = dlogits.to_vector<double>();
    for (std::int64_t r = 0; r < n; ++r) {
      if (t[r] != c.ignore_index) continue;
      for (std::int64_t v = 0; v < vocab; ++v) CHECK(d[r * vocab + v] == 0.0);
    }
  }
}

TEST_CASE("cross entropy of uniform logits is log V", "[cpu][loss]") {
  for (DType dt : {DType::f32, DType::f64}) {
    for (std::int64_t vocab : {1, 2, 5, 1000, 50257}) {
      CAPTURE(dtype_name(dt), vocab);
      const std::int64_t n = 3;
      Tensor logits = Tensor::full({n, vocab}, 0.7, dt);
      Tensor targets = targets_tensor({0, vocab - 1, vocab / 2}, DType::i64);
      Tensor losses = test::poisoned({n}, dt), lse = test::poisoned({n}, dt);
      ops::cross_entropy_fwd(logits, targets, {}, losses, lse);
      const double log_v = std::log(static_cast<double>(vocab));
      CHECK(test::compare(losses, vec({log_v, log_v, log_v}, dt)) == "");
      const double lse_ref = logits.to_vector<double>()[0] + log_v;  // 0.7 rounded to dt
      CHECK(test::compare(lse, vec({lse_ref, lse_ref, lse_ref}, dt)) == "");
    }
  }
}

TEST_CASE("cross entropy of a hand computed three class example", "[cpu][loss]") {
  // logits (1, 2, 3): lse = log(e + e² + e³) = 3.40760596444438; softmax = (0.0900, 0.2447, 0.6652).
  Tensor logits = Tensor::from_vector<double>({3, 3}, {1, 2, 3, 1, 2, 3, 1, 2, 3});
  Tensor targets = targets_tensor({0, 2, 1}, DType::i32);
  Tensor losses = Tensor::empty({3}, DType::f64), lse = Tensor::empty({3}, DType::f64);
  ops::cross_entropy_fwd(logits, targets, {}, losses, lse);
  const double l = 3.40760596444438;
  CHECK(test::compare(lse, vec({l, l, l}, DType::f64), {1e-13, 1e-13}) == "");
  CHECK(test::compare(losses, vec({l - 1, l - 3, l - 2}, DType::f64), {1e-13, 1e-13}) == "");
  CHECK(losses.to_vector<double>()[0] == Approx(2.40760596444438).epsilon(1e-13));

  Tensor dlogits = test::poisoned({3, 3}, DType::f64);
  ops::cross_entropy_bwd(Tensor::full({3}, 1.0, DType::f64), logits, targets, lse, {}, dlogits);
  const double p0 = 0.09003057317038048, p1 = 0.2447284710547977, p2 = 0.665240955774822;
  Tensor expected = Tensor::from_vector<double>(
      {3, 3}, {p0 - 1, p1, p2, p0, p1, p2 - 1, p0, p1 - 1, p2});
  CHECK(test::compare(dlogits, expected, {1e-13, 1e-13}) == "");
}

TEST_CASE("cross entropy lse matches a direct computation", "[cpu][loss]") {
  const std::int64_t n = 9, vocab = 40;
  Tensor logits = test::random_tensor({n, vocab}, DType::f64, 21, -5.0, 5.0);
  Tensor targets = test::random_ids({n}, vocab, DType::i64, 22);
  Tensor losses = Tensor::empty({n}, DType::f64), lse = Tensor::empty({n}, DType::f64);
  ops::cross_entropy_fwd(logits, targets, {}, losses, lse);
  const std::vector<double> x = logits.to_vector<double>();
  const std::vector<std::int64_t> t = targets.to_vector<std::int64_t>();
  std::vector<double> direct(n), loss_ref(n);
  for (std::int64_t r = 0; r < n; ++r) {
    double s = 0;  // no max shift: the logits are small enough
    for (std::int64_t v = 0; v < vocab; ++v) s += std::exp(x[r * vocab + v]);
    direct[r] = std::log(s);
    loss_ref[r] = direct[r] - x[r * vocab + t[r]];
  }
  CHECK(test::compare(lse.to_vector<double>(), direct, {1e-12, 1e-12}) == "");
  CHECK(test::compare(losses.to_vector<double>(), loss_ref, {1e-12, 1e-12}) == "");
}

TEST_CASE("cross entropy with huge logits stays finite", "[cpu][loss]") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const std::int64_t n = 4, vocab = 33;
    // Rows offset by +1e4, −1e4, +1e4 and 0: exp of any raw logit would overflow or vanish.
    const std::vector<double> offsets = {1e4, -1e4, 1e4, 0.0};
    std::vector<double> x = test::random_tensor({n, vocab}, DType::f64, 31, -3, 3).to_vector<double>();
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t v = 0; v < vocab; ++v) x[r * vocab + v] += offsets[r];
    Tensor logits = Tensor::from_vector<double>({n, vocab}, x).to(dt);
    const std::vector<std::int64_t> t = {0, 5, vocab - 1, 17};
    Tensor targets = targets_tensor(t, DType::i64);
    Tensor losses = test::poisoned({n}, dt), lse = test::poisoned({n}, dt);
    ops::cross_entropy_fwd(logits, targets, {}, losses, lse);
    Tensor dlogits = test::poisoned({n, vocab}, dt);
    const std::vector<double> ones(n, 1.0);
    ops::cross_entropy_bwd(vec(ones, dt), logits, targets, lse, {}, dlogits);
    // Reference: the same (dtype-rounded) logits, in f64.
    const CeReference r = ce_reference(logits, t, {}, -100, ones);
    for (double v : losses.to_vector<double>()) CHECK(std::isfinite(v));
    for (double v : dlogits.to_vector<double>()) CHECK(std::isfinite(v));
    const test::Tolerance tol = test::tolerance_for(dt);
    CHECK(test::compare(losses.to_vector<double>(), r.losses, tol) == "");
    CHECK(test::compare(lse.to_vector<double>(), r.lse, tol) == "");
    // The backward uses the saved lse, rounded to the dtype (about 5e-4 absolute at 1e4 in
    // f32), so its reference is the softmax relative to that saved value.
    const std::vector<double> saved = lse.to_vector<double>(), xr = logits.to_vector<double>();
    std::vector<double> d_ref(n * vocab);
    for (std::int64_t row = 0; row < n; ++row)
      for (std::int64_t v = 0; v < vocab; ++v)
        d_ref[row * vocab + v] = std::exp(xr[row * vocab + v] - saved[row]) - (v == t[row] ? 1 : 0);
    CHECK(test::compare(dlogits.to_vector<double>(), d_ref, tol) == "");
    CHECK(test::compare(dlogits.to_vector<double>(), r.dlogits, {1e-3, 1e-3}) == "");
  }
}

TEST_CASE("cross entropy on ragged vocab sizes writes every element", "[cpu][loss]") {
  for (DType dt : {DType::f32, DType::f64}) {
    for (std::int64_t vocab : test::kRaggedSizes) {
      CAPTURE(dtype_name(dt), vocab);
      const std::int64_t n = 7;
      Tensor logits = test::random_tensor({n, vocab}, dt, 40 + vocab, -4.0, 4.0);
      const std::vector<std::int64_t> t = targets_with_ignored(n, vocab, -100, 41 + vocab);
      Tensor targets = targets_tensor(t, DType::i32);
      const std::vector<double> w = test::random_tensor({n}, DType::f64, 42, 0.5, 1.5).to_vector<double>();
      const std::vector<double> dl = test::random_tensor({n}, DType::f64, 43).to_vector<double>();
      ops::CrossEntropyArgs args;
      args.weights = vec(w, dt);
      Tensor losses = test::poisoned({n}, dt), lse = test::poisoned({n}, dt);
      ops::cross_entropy_fwd(logits, targets, args, losses, lse);
      Tensor dlogits = test::poisoned({n, vocab}, dt);
      ops::cross_entropy_bwd(vec(dl, dt), logits, targets, lse, args, dlogits);
      const CeReference r = ce_reference(logits, t, args.weights.to_vector<double>(),
                                         -100, vec(dl, dt).to_vector<double>());
      const test::Tolerance tol = test::tolerance_for(dt);
      CHECK(test::compare(losses.to_vector<double>(), r.losses, tol) == "");
      CHECK(test::compare(lse.to_vector<double>(), r.lse, tol) == "");
      CHECK(test::compare(dlogits.to_vector<double>(), r.dlogits, tol) == "");
    }
  }
}

TEST_CASE("cross entropy with a 128k vocabulary", "[cpu][loss]") {
  const std::int64_t n = 3, vocab = 128256;
  Tensor logits = test::random_tensor({n, vocab}, DType::f32, 51, -8.0, 8.0);
  const std::vector<std::int64_t> t = {0, vocab - 1, 77777};
  Tensor targets = targets_tensor(t, DType::i64);
  Tensor losses = test::poisoned({n}, DType::f32), lse = test::poisoned({n}, DType::f32);
  ops::cross_entropy_fwd(logits, targets, {}, losses, lse);
  Tensor dlogits = test::poisoned({n, vocab}, DType::f32);
  const std::vector<double> dl = {1.0, 0.5, -2.0};
  ops::cross_entropy_bwd(vec(dl, DType::f32), logits, targets, lse, {}, dlogits);
  const CeReference r = ce_reference(logits, t, {}, -100, dl);
  CHECK(test::compare(losses.to_vector<double>(), r.losses, {1e-5, 1e-5}) == "");
  CHECK(test::compare(lse.to_vector<double>(), r.lse, {1e-5, 1e-5}) == "");
  CHECK(test::compare(dlogits.to_vector<double>(), r.dlogits, {1e-9, 1e-5}) == "");
}

TEST_CASE("cross entropy weights scale loss and gradient", "[cpu][loss]") {
  const std::int64_t n = 5, vocab = 12;
  Tensor logits = test::random_tensor({n, vocab}, DType::f64, 61);
  Tensor targets = test::random_ids({n}, vocab, DType::i64, 62);
  const std::vector<double> w = {0.0, 0.5, 1.0, 2.0, 3.25};
  ops::CrossEntropyArgs plain, weighted;
  weighted.weights = vec(w, DType::f64);
  Tensor dl = Tensor::full({n}, 1.0, DType::f64);
  Tensor l0 = Tensor::empty({n}, DType::f64), l1 = Tensor::empty({n}, DType::f64);
  Tensor lse = Tensor::empty({n}, DType::f64);
  Tensor d0 = Tensor::empty({n, vocab}, DType::f64), d1 = Tensor::empty({n, vocab}, DType::f64);
  ops::cross_entropy_fwd(logits, targets, plain, l0, lse);
  ops::cross_entropy_bwd(dl, logits, targets, lse, plain, d0);
  ops::cross_entropy_fwd(logits, targets, weighted, l1, lse);
  ops::cross_entropy_bwd(dl, logits, targets, lse, weighted, d1);
  const std::vector<double> a = l0.to_vector<double>(), b = l1.to_vector<double>();
  const std::vector<double> ga = d0.to_vector<double>(), gb = d1.to_vector<double>();
  for (std::int64_t r = 0; r < n; ++r) {
    CHECK(a[r] > 0.0);
    CHECK(b[r] == Approx(w[r] * a[r]).epsilon(1e-14).margin(1e-300));
    for (std::int64_t v = 0; v < vocab; ++v)
      CHECK(gb[r * vocab + v] == Approx(w[r] * ga[r * vocab + v]).epsilon(1e-14).margin(1e-300));
  }
}

TEST_CASE("cross entropy ignored rows give zero loss and zero gradient", "[cpu][loss]") {
  for (DType dt : {DType::f32, DType::f64}) {
    for (std::int64_t ignore : {std::int64_t{-100}, std::int64_t{2}}) {
      CAPTURE(dtype_name(dt), ignore);
      const std::int64_t n = 4, vocab = 6;
      Tensor logits = test::random_tensor({n, vocab}, dt, 71);
      const std::vector<std::int64_t> t = {ignore, 1, ignore, 5};
      Tensor targets = targets_tensor(t, DType::i64);
      ops::CrossEntropyArgs args;
      args.ignore_index = ignore;
      args.weights = Tensor::full({n}, 2.0, dt);
      Tensor losses = test::poisoned({n}, dt), lse = test::poisoned({n}, dt);
      ops::cross_entropy_fwd(logits, targets, args, losses, lse);
      Tensor dlogits = test::poisoned({n, vocab}, dt);
      ops::cross_entropy_bwd(Tensor::full({n}, 1.0, dt), logits, targets, lse, args, dlogits);
      const CeReference r = ce_reference(logits, t, {}, ignore, std::vector<double>(n, 1.0));
      const std::vector<double> l = losses.to_vector<double>(), d = dlogits.to_vector<double>();
      CHECK(l[0] == 0.0);
      CHECK(l[2] == 0.0);
      CHECK(l[1] > 0.0);
      // lse is written for ignored rows too.
      CHECK(test::compare(lse.to_vector<double>(), r.lse, test::tolerance_for(dt)) == "");
      for (std::int64_t v = 0; v < vocab; ++v) {
        CHECK(d[0 * vocab + v] == 0.0);
        CHECK(d[2 * vocab + v] == 0.0);
        CHECK(d[1 * vocab + v] != 0.0);
      }
    }
  }
}

TEST_CASE("cross entropy gradient may overwrite the logits in place", "[cpu][loss]") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    // Rows of several parallel chunks, every third ignored, weighted, with random dlosses.
    const std::int64_t n = 67, vocab = 301;
    const Tensor logits = test::random_tensor({n, vocab}, dt, 91, -5.0, 5.0);
    const Tensor targets = targets_tensor(targets_with_ignored(n, vocab, -100, 92), DType::i64);
    ops::CrossEntropyArgs args;
    args.weights = test::random_tensor({n}, dt, 93, 0.5, 2.0);
    const Tensor dlosses = test::random_tensor({n}, dt, 94);
    Tensor losses = Tensor::empty({n}, dt), lse = Tensor::empty({n}, dt);
    ops::cross_entropy_fwd(logits, targets, args, losses, lse);
    Tensor apart = test::poisoned({n, vocab}, dt);
    ops::cross_entropy_bwd(dlosses, logits, targets, lse, args, apart);
    Tensor in_place = logits.clone();
    ops::cross_entropy_bwd(dlosses, in_place, targets, lse, args, in_place);
    CHECK(in_place.to_vector<double>() == apart.to_vector<double>());
  }
}

TEST_CASE("cross entropy forward and backward in one pass equal the two calls", "[cpu][loss]") {
  for (DType dt : {DType::f32, DType::f64}) {
    for (DType idt : {DType::i32, DType::i64}) {
      for (bool weighted : {false, true}) {
        CAPTURE(dtype_name(dt), dtype_name(idt), weighted);
        const std::int64_t n = 67, vocab = 301;
        const Tensor logits = test::random_tensor({n, vocab}, dt, 95, -5.0, 5.0);
        const Tensor targets = targets_tensor(targets_with_ignored(n, vocab, -100, 96), idt);
        ops::CrossEntropyArgs args;
        if (weighted) args.weights = test::random_tensor({n}, dt, 97, 0.5, 2.0);
        const double dloss = 0.37;
        Tensor losses = test::poisoned({n}, dt), lse = test::poisoned({n}, dt);
        Tensor dlogits = test::poisoned({n, vocab}, dt);
        ops::cross_entropy_fwd(logits, targets, args, losses, lse);
        ops::cross_entropy_bwd(Tensor::full({n}, dloss, dt), logits, targets, lse, args, dlogits);
        // Into separate outputs, then in place of the logits.
        Tensor l1 = test::poisoned({n}, dt), s1 = test::poisoned({n}, dt);
        Tensor d1 = test::poisoned({n, vocab}, dt);
        ops::cross_entropy_fwd_bwd(logits, targets, args, dloss, l1, s1, d1);
        Tensor l2 = test::poisoned({n}, dt), s2 = test::poisoned({n}, dt);
        Tensor in_place = logits.clone();
        ops::cross_entropy_fwd_bwd(in_place, targets, args, dloss, l2, s2, in_place);
        CHECK(l1.to_vector<double>() == losses.to_vector<double>());
        CHECK(s1.to_vector<double>() == lse.to_vector<double>());
        CHECK(d1.to_vector<double>() == dlogits.to_vector<double>());
        CHECK(l2.to_vector<double>() == losses.to_vector<double>());
        CHECK(s2.to_vector<double>() == lse.to_vector<double>());
        CHECK(in_place.to_vector<double>() == dlogits.to_vector<double>());
      }
    }
  }
  const Tensor x = Tensor::zeros({2, 3}, DType::f32), t = Tensor::zeros({2}, DType::i64);
  const Tensor l = Tensor::empty({2}, DType::f32), s = Tensor::empty({2}, DType::f32);
  CHECK_THROWS_WITH(ops::cross_entropy_fwd_bwd(x, t, {}, std::nan(""), l, s, x.clone()),
                    Catch::Contains("[cross_entropy_fwd_bwd]") && Catch::Contains("dloss = nan"));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd_bwd(x, t, {}, 1.0, l, s, Tensor()),
                    Catch::Contains("[cross_entropy_fwd_bwd]") && Catch::Contains("dlogits"));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd_bwd(x, t, {}, 1.0, l, s, Tensor::empty({2, 4}, DType::f32)),
                    Catch::Contains("[cross_entropy_fwd_bwd]") && Catch::Contains("dlogits"));
  // In place or apart: a gradient one row off the logits would overwrite rows not yet read.
  const Tensor both = Tensor::zeros({3, 3}, DType::f32);
  CHECK_THROWS_WITH(ops::cross_entropy_fwd_bwd(both.slice(0, 2), t, {}, 1.0, l, s, both.slice(1, 3)),
                    Catch::Contains("[cross_entropy_fwd_bwd]") && Catch::Contains("partly overlaps"));
  CHECK_THROWS_WITH(ops::cross_entropy_bwd(Tensor::full({2}, 1.0, DType::f32), both.slice(0, 2), t, s, {},
                                           both.slice(1, 3)),
                    Catch::Contains("[cross_entropy_bwd]") && Catch::Contains("partly overlaps"));
}

TEST_CASE("cross entropy gradient rows sum to zero", "[cpu][loss]") {
  const std::int64_t n = 8, vocab = 129;
  Tensor logits = test::random_tensor({n, vocab}, DType::f64, 81, -6.0, 6.0);
  const std::vector<std::int64_t> t = targets_with_ignored(n, vocab, -100, 82);
  Tensor targets = targets_tensor(t, DType::i64);
  ops::CrossEntropyArgs args;
  args.weights = test::random_tensor({n}, DType::f64, 83, 0.5, 2.0);
  Tensor losses = Tensor::empty({n}, DType::f64), lse = Tensor::empty({n}, DType::f64);
  ops::cross_entropy_fwd(logits, targets, args, losses, lse);
  Tensor dlogits = Tensor::empty({n, vocab}, DType::f64);
  ops::cross_entropy_bwd(test::random_tensor({n}, DType::f64, 84), logits, targets, lse, args, dlogits);
  const std::vector<double> d = dlogits.to_vector<double>();
  for (std::int64_t r = 0; r < n; ++r) {
    double s = 0, a = 0;
    for (std::int64_t v = 0; v < vocab; ++v) s += d[r * vocab + v], a += std::fabs(d[r * vocab + v]);
    CAPTURE(r, s);
    CHECK(std::fabs(s) <= 1e-14);
    if (t[r] != -100) CHECK(a > 0.0);
  }
}

TEST_CASE("cross entropy rejects bad arguments", "[cpu][loss]") {
  const std::int64_t n = 4, vocab = 10;
  Tensor logits = test::random_tensor({n, vocab}, DType::f32, 91);
  Tensor targets = targets_tensor({1, 2, 3, 4}, DType::i64);
  Tensor losses = Tensor::empty({n}, DType::f32), lse = Tensor::empty({n}, DType::f32);
  Tensor dl = Tensor::full({n}, 1.0, DType::f32), dlogits = Tensor::empty({n, vocab}, DType::f32);
  using Catch::Contains;

  CHECK_THROWS_WITH(ops::cross_entropy_fwd(logits, targets_tensor({1, 2, 3}, DType::i64), {}, losses, lse),
                    Contains("[cross_entropy_fwd]") && Contains("'targets'") && Contains("(3)") &&
                        Contains("(4)") && Contains("(4, 10)"));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(logits, targets_tensor({1, 2, 12, 4}, DType::i32), {}, losses, lse),
                    Contains("[cross_entropy_fwd]") && Contains("'targets'") && Contains("value 12") &&
                        Contains("row 2"));
  CHECK_THROWS_WITH(ops::cross_entropy_bwd(dl, logits, targets_tensor({1, -1, 3, 4}, DType::i64), lse, {}, dlogits),
                    Contains("[cross_entropy_bwd]") && Contains("value -1") && Contains("row 1"));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(logits, targets.to(DType::f32), {}, losses, lse),
                    Contains("[cross_entropy_fwd]") && Contains("'targets'") && Contains("f32"));
  CHECK_THROWS_WITH(ops::cross_entropy_bwd(dl, logits, targets, lse, {}, Tensor::empty({n, vocab + 1}, DType::f32)),
                    Contains("[cross_entropy_bwd]") && Contains("'dlogits'") && Contains("(4, 11)") &&
                        Contains("(4, 10)"));
  ops::CrossEntropyArgs bad_w;
  bad_w.weights = Tensor::full({n + 1}, 1.0, DType::f32);
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(logits, targets, bad_w, losses, lse),
                    Contains("[cross_entropy_fwd]") && Contains("'weights'") && Contains("(5)") &&
                        Contains("(4)"));
  bad_w.weights = Tensor::full({n}, 1.0, DType::f64);
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(logits, targets, bad_w, losses, lse),
                    Contains("[cross_entropy_fwd]") && Contains("'weights'") && Contains("f64") &&
                        Contains("f32"));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(logits, targets, {}, Tensor::empty({n}, DType::f64), lse),
                    Contains("[cross_entropy_fwd]") && Contains("'losses'") && Contains("f64"));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(logits, targets, {}, losses, Tensor::empty({n, 1}, DType::f32)),
                    Contains("[cross_entropy_fwd]") && Contains("'lse'") && Contains("(4, 1)"));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(logits.view({-1}), targets, {}, losses, lse),
                    Contains("[cross_entropy_fwd]") && Contains("'logits'") && Contains("(40)"));
  CHECK_THROWS_WITH(ops::cross_entropy_bwd(Tensor::full({n}, 1.0, DType::f64), logits, targets, lse, {}, dlogits),
                    Contains("[cross_entropy_bwd]") && Contains("'dlosses'") && Contains("f64"));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(Tensor(), targets, {}, losses, lse),
                    Contains("[cross_entropy_fwd]") && Contains("'logits'") && Contains("undefined"));
  CHECK_THROWS_AS(ops::cross_entropy_fwd(logits.to(DType::bf16), targets, {}, losses, lse), Error);
  // An undefined gradient output is skipped; the inputs are still checked.
  CHECK_NOTHROW(ops::cross_entropy_bwd(dl, logits, targets, lse, {}, Tensor()));
}

TEST_CASE("cross entropy with a NaN logit gives that row a NaN loss only", "[cpu][loss]") {
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    const std::int64_t n = 3, vocab = 37;  // a ragged tail after the vector lanes
    std::vector<double> x = test::random_tensor({n, vocab}, DType::f64, 61, -4.0, 4.0).to_vector<double>();
    x[1 * vocab + 35] = std::nan("");
    const Tensor logits = Tensor::from_vector<double>({n, vocab}, x).to(dt);
    const Tensor targets = targets_tensor({2, 5, 36}, DType::i64);
    const Tensor losses = test::poisoned({n}, dt), lse = test::poisoned({n}, dt);
    ops::cross_entropy_fwd(logits, targets, {}, losses, lse);
    const std::vector<double> l = losses.to_vector<double>();
    CHECK(std::isfinite(l[0]));
    CHECK(std::isnan(l[1]));
    CHECK(std::isfinite(l[2]));
  }
}

// Sampling on the CPU reference: argmax ties, greedy equivalences, the drawn distribution
// against the softmax (chi-square at fixed seeds), top-k and top-p sets, reproducibility and
// argument errors; and the shared fixed-point helpers the kernel reproduces.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include "cpu/sampling.h"
#include "ops/ops.h"
#include "support/random.h"

using namespace hone;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// R copies of one row of logits (f32): each row draws with its own Philox word.
Tensor repeated_rows(const std::vector<double>& row, std::int64_t rows) {
  std::vector<double> all;
  for (std::int64_t r = 0; r < rows; ++r) all.insert(all.end(), row.begin(), row.end());
  return Tensor::from_vector<double>({rows, static_cast<std::int64_t>(row.size())}, all)
      .to(DType::f32);
}

std::vector<std::int64_t> draw(const Tensor& logits, const ops::SampleArgs& args) {
  Tensor out = Tensor::full({logits.size(0)}, -7, DType::i64);
  ops::sample(logits, args, out);
  return out.to_vector<std::int64_t>();
}

// softmax(row / temperature) in f64, of the f32-rounded logits.
std::vector<double> softmax(const std::vector<double>& row, double temperature) {
  std::vector<double> p(row.size());
  double m = -kInf, s = 0;
  for (double x : row) m = std::max(m, static_cast<double>(static_cast<float>(x)));
  for (std::size_t i = 0; i < row.size(); ++i)
    s += p[i] = std::exp((static_cast<double>(static_cast<float>(row[i])) - m) / temperature);
  for (double& x : p) x /= s;
  return p;
}

// Pearson's statistic of observed counts against probabilities (p = 0 cells must be empty).
double chi_square(const std::vector<std::int64_t>& draws, const std::vector<double>& p) {
  std::vector<double> count(p.size(), 0.0);
  for (std::int64_t d : draws) count[static_cast<std::size_t>(d)] += 1;
  double chi = 0;
  const double n = static_cast<double>(draws.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0.0) {
      if (count[i] > 0) return kInf;
      continue;
    }
    chi += (count[i] - n * p[i]) * (count[i] - n * p[i]) / (n * p[i]);
  }
  return chi;
}

// p restricted to `keep` and renormalised.
std::vector<double> restricted(std::vector<double> p, const std::set<std::int64_t>& keep) {
  double s = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (!keep.count(static_cast<std::int64_t>(i))) p[i] = 0;
    s += p[i];
  }
  for (double& x : p) x /= s;
  return p;
}

// Upper 1e-5 tail of the chi-square distribution, by degrees of freedom 1..8.
double chi_square_bound(std::size_t dof) {
  static const double kBound[] = {0, 19.5, 23.0, 25.9, 28.5, 30.9, 33.1, 35.3, 37.3};
  return kBound[dof];
}

}  // namespace

TEST_CASE("argmax takes the lowest index among equal maxima", "[cpu][sampling]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor logits = Tensor::from_vector<double>(
      {5, 4}, {1, 3, 3, 2,            // tie → 1
               -kInf, -kInf, -kInf, -kInf,  // all −inf → 0
               nan, -5, nan, -6,      // NaN counts as −inf → 1
               -0.0, 0.0, -1, -2,     // −0 == +0 → 0
               2, 2, 2, 7});
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor out = Tensor::full({5}, -1, DType::i64);
    ops::argmax(logits.to(dt), out);
    CHECK(out.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, 0, 1, 0, 3});
    ops::SampleArgs greedy;
    greedy.temperature = 0;
    CHECK(draw(logits.to(dt), greedy) == std::vector<std::int64_t>{1, 0, 1, 0, 3});
  }
}

TEST_CASE("top-k 1 and temperature 0 both equal argmax", "[cpu][sampling]") {
  for (std::int64_t vocab : {1, 31, 32, 33, 129, 1000}) {
    CAPTURE(vocab);
    Tensor logits = test::random_tensor({17, vocab}, DType::f32, 40 + vocab, -4.0, 4.0);
    Tensor want = Tensor::empty({17}, DType::i64);
    ops::argmax(logits, want);
    ops::SampleArgs k1;
    k1.top_k = 1;
    k1.seed = 99;
    ops::SampleArgs t0;
    t0.temperature = 0;
    t0.top_p = 0.5;
    CHECK(draw(logits, k1) == want.to_vector<std::int64_t>());
    CHECK(draw(logits, t0) == want.to_vector<std::int64_t>());
  }
}

TEST_CASE("sampled frequencies match the softmax at fixed seeds", "[cpu][sampling]") {
  const std::vector<double> row = {0.3, -1.2, 2.0, 0.9, -0.4, 1.5};
  const std::int64_t n = 20000;
  Tensor logits = repeated_rows(row, n);
  for (double temperature : {0.7, 1.0, 2.5}) {
    for (std::uint64_t seed : {1u, 2024u}) {
      CAPTURE(temperature, seed);
      ops::SampleArgs args;
      args.temperature = temperature;
      args.seed = seed;
      args.offset = 5;
      const double chi = chi_square(draw(logits, args), softmax(row, temperature));
      CHECK(chi < chi_square_bound(row.size() - 1));
    }
  }
  // A wrong temperature is detected by the same statistic.
  ops::SampleArgs args;
  args.temperature = 0.7;
  CHECK(chi_square(draw(logits, args), softmax(row, 1.0)) > 100);
}

TEST_CASE("top-k keeps the k largest logits with renormalised probabilities", "[cpu][sampling]") {
  // Order: 1 (2.0), 3 (1.75), 4 and 5 (1.0: the lower index first), 7, 0, 2, 6.
  const std::vector<double> row = {0.5, 2.0, -1.0, 1.75, 1.0, 1.0, -3.0, 0.9};
  Tensor logits = repeated_rows(row, 20000);
  struct Case {
    std::int64_t k;
    std::set<std::int64_t> keep;
  };
  const std::set<std::int64_t> all = {0, 1, 2, 3, 4, 5, 6, 7};
  for (const Case& c : {Case{2, {1, 3}}, Case{3, {1, 3, 4}}, Case{4, {1, 3, 4, 5}}, Case{8, all},
                        Case{100, all}}) {
    CAPTURE(c.k);
    ops::SampleArgs args;
    args.top_k = c.k;
    args.temperature = 1.3;
    args.seed = 7;
    const std::vector<std::int64_t> d = draw(logits, args);
    CHECK(std::set<std::int64_t>(d.begin(), d.end()) == c.keep);
    CHECK(chi_square(d, restricted(softmax(row, 1.3), c.keep)) <
          chi_square_bound(c.keep.size() - 1));
  }
}

TEST_CASE("top-p keeps the smallest most likely set holding p of the mass", "[cpu][sampling]") {
  // Probabilities 0.4, 0.25, 0.15, 0.1, 0.06, 0.04 in the order 2, 0, 5, 1, 3, 4.
  const std::vector<double> probs = {0.25, 0.1, 0.4, 0.06, 0.04, 0.15};
  std::vector<double> row;
  for (double p : probs) row.push_back(std::log(p));
  Tensor logits = repeated_rows(row, 20000);
  struct Case {
    double p;
    std::set<std::int64_t> keep;
  };
  for (const Case& c : {Case{0.3, {2}}, Case{0.6, {2, 0}}, Case{0.7, {2, 0, 5}},
                        Case{0.85, {2, 0, 5, 1}}, Case{0.99, {0, 1, 2, 3, 4, 5}}}) {
    CAPTURE(c.p);
    ops::SampleArgs args;
    args.top_p = c.p;
    args.seed = 11;
    const std::vector<std::int64_t> d = draw(logits, args);
    CHECK(std::set<std::int64_t>(d.begin(), d.end()) == c.keep);
    if (c.keep.size() > 1)
      CHECK(chi_square(d, restricted(softmax(row, 1.0), c.keep)) <
            chi_square_bound(c.keep.size() - 1));
  }
  // top-k first, then top-p of the top-k mass: {2, 0} hold 0.65 of all but 0.65/0.8 of top-3.
  ops::SampleArgs both;
  both.top_k = 3;
  both.top_p = 0.8;
  const std::vector<std::int64_t> d = draw(logits, both);
  CHECK(std::set<std::int64_t>(d.begin(), d.end()) == std::set<std::int64_t>{0, 2});
}

TEST_CASE("top-p sets agree with an f64 computation on random rows", "[cpu][sampling]") {
  const std::int64_t rows = 64, vocab = 50;
  Tensor logits = test::random_tensor({rows, vocab}, DType::f32, 5, -3.0, 3.0);
  const std::vector<double> x = logits.to_vector<double>();
  for (double top_p : {0.2, 0.5, 0.9}) {
    CAPTURE(top_p);
    // Several draws per row (different offsets) must all fall in the row's nucleus.
    std::vector<std::set<std::int64_t>> nucleus(rows);
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::vector<double> p =
          softmax(std::vector<double>(x.begin() + r * vocab, x.begin() + (r + 1) * vocab), 1.0);
      std::vector<std::int64_t> order(vocab);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](std::int64_t a, std::int64_t b) { return p[a] > p[b]; });
      double mass = 0;
      for (std::int64_t i = 0; i < vocab && mass < top_p; ++i) {
        mass += p[order[i]];
        nucleus[r].insert(order[i]);
      }
      REQUIRE(std::fabs(mass - top_p) > 1e-6);  // not at a boundary the fixed point could flip
    }
    for (std::uint64_t step = 0; step < 20; ++step) {
      ops::SampleArgs args;
      args.top_p = top_p;
      args.seed = 3;
      args.offset = step * (rows / 4);
      const std::vector<std::int64_t> d = draw(logits, args);
      for (std::int64_t r = 0; r < rows; ++r) REQUIRE(nucleus[r].count(d[r]) == 1);
    }
  }
}

TEST_CASE("draws are reproducible for a seed and differ between seeds and offsets", "[cpu][sampling]") {
  Tensor logits = test::random_tensor({129, 77}, DType::f32, 9, -2.0, 2.0);
  ops::SampleArgs a;
  a.seed = 1234;
  a.offset = 40;
  a.top_k = 20;
  a.top_p = 0.95;
  const std::vector<std::int64_t> first = draw(logits, a);
  CHECK(draw(logits, a) == first);
  CHECK(draw(logits.to(DType::f64), a) == first);  // f32 values given as f64: the same draws
  ops::SampleArgs b = a;
  b.seed = 1235;
  ops::SampleArgs c = a;
  c.offset = 41;
  const std::vector<std::int64_t> other_seed = draw(logits, b), other_offset = draw(logits, c);
  std::int64_t diff_seed = 0, diff_offset = 0;
  for (std::size_t i = 0; i < first.size(); ++i) {
    diff_seed += first[i] != other_seed[i];
    diff_offset += first[i] != other_offset[i];
  }
  CHECK(diff_seed > 64);
  CHECK(diff_offset > 64);
  // Row r draws word r % 4 of block offset + r / 4: row 4 at offset 40 draws like row 0 at 41.
  CHECK(draw(logits.slice(4, 5), c)[0] == first[4]);
  for (std::int64_t v : first) CHECK((v >= 0 && v < 77));
}

TEST_CASE("the shared fixed-point helpers", "[cpu][sampling]") {
  // sampling_exp: exact at 0, within 2e-7 relative of exp on [−17.5, 0], 0 below.
  CHECK(cpu::sampling_exp(0.0f) == 1.0f);
  double worst = 0;
  for (int i = 0; i <= 175000; ++i) {
    const float z = -static_cast<float>(i) * 1e-4f;
    const double want = std::exp(static_cast<double>(z));
    worst = std::max(worst, std::fabs(cpu::sampling_exp(z) - want) / want);
  }
  CHECK(worst < 2e-7);
  CHECK(cpu::sampling_exp(-17.6f) == 0.0f);
  CHECK(cpu::sampling_exp(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(cpu::sampling_weight(1.5f, 1.5f, 0.3f) == (1u << 24));
  // Keys order by value, then by lower index.
  const int bits = cpu::sampling_index_bits(1000);
  CHECK(bits == 10);
  CHECK(cpu::sampling_key(1.0f, 3, 1000, bits) > cpu::sampling_key(1.0f, 4, 1000, bits));
  CHECK(cpu::sampling_key(-1.0f, 0, 1000, bits) < cpu::sampling_key(-0.5f, 999, 1000, bits));
  CHECK(cpu::sampling_key(-std::numeric_limits<float>::infinity(), 0, 1000, bits) <
        cpu::sampling_key(-1e30f, 999, 1000, bits));
  // floor(a·b / 2³²) and the top-p mass (a ceiling, at least 1).
  CHECK(cpu::sampling_mul_shift32(std::uint64_t{3} << 40, 0x80000000u) == std::uint64_t{3} << 39);
  CHECK(cpu::sampling_mul_shift32(12345, std::uint64_t{1} << 32) == 12345);
  CHECK(cpu::sampling_top_p_mass(10, 0x80000000u) == 5);
  CHECK(cpu::sampling_top_p_mass(11, 0x80000000u) == 6);
  CHECK(cpu::sampling_top_p_mass(11, 1) == 1);
  CHECK(cpu::sampling_top_p_fixed(0.5) == 0x80000000u);
  CHECK(cpu::sampling_top_p_fixed(1.0) == std::uint64_t{1} << 32);
}

TEST_CASE("sample and argmax reject bad arguments", "[cpu][sampling]") {
  Tensor logits = test::random_tensor({3, 5}, DType::f32, 1);
  Tensor out = Tensor::empty({3}, DType::i64);
  ops::SampleArgs bad_t;
  bad_t.temperature = -1;
  CHECK_THROWS_WITH(ops::sample(logits, bad_t, out), Catch::Contains("'temperature' is -1"));
  ops::SampleArgs bad_k;
  bad_k.top_k = -2;
  CHECK_THROWS_WITH(ops::sample(logits, bad_k, out), Catch::Contains("'top_k' is -2"));
  ops::SampleArgs bad_p;
  bad_p.top_p = 0;
  CHECK_THROWS_WITH(ops::sample(logits, bad_p, out), Catch::Contains("'top_p' is 0"));
  bad_p.top_p = 1.5;
  CHECK_THROWS_WITH(ops::sample(logits, bad_p, out), Catch::Contains("'top_p' is 1.5"));
  CHECK_THROWS_WITH(ops::sample(logits, {}, Tensor::empty({3}, DType::i32)),
                    Catch::Contains("argument 'out' has dtype i32; expected i64"));
  CHECK_THROWS_WITH(ops::argmax(logits, Tensor::empty({4}, DType::i64)),
                    Catch::Contains("argument 'out' has shape (4); expected (3)"));
  CHECK_THROWS_WITH(ops::argmax(Tensor::empty({3, 0}, DType::f32), out),
                    Catch::Contains("expected at least one class"));
  CHECK_THROWS_WITH(ops::sample(logits.to(DType::i64), {}, out),
                    Catch::Contains("argument 'logits' has dtype i64"));
}

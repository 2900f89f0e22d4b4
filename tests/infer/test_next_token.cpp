// Next-token choice: at a fixed seed the draws follow softmax(logits / T) restricted by top-k
// and top-p (a chi-square bound over many steps), greedy picks the argmax, and the repetition
// penalty changes exactly the logits of the ids seen, as transformers does.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "infer/sampler.h"
#include "support/random.h"

using namespace hone;

namespace {

// The probabilities the rule keeps: softmax(x / T), the k most likely, then the shortest
// most-likely prefix holding p of their mass, renormalised; zero elsewhere.
std::vector<double> expected_probs(const std::vector<double>& x, double T, std::int64_t k, double p) {
  const std::size_t V = x.size();
  std::vector<std::size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] > x[b]; });
  const double m = x[order[0]];
  std::vector<double> w(V);
  for (std::size_t v = 0; v < V; ++v) w[v] = std::exp((x[v] - m) / T);
  const std::size_t kept_k = k > 0 ? std::min<std::size_t>(static_cast<std::size_t>(k), V) : V;
  double mass_k = 0;
  for (std::size_t i = 0; i < kept_k; ++i) mass_k += w[order[i]];
  std::vector<double> out(V, 0.0);
  double acc = 0;
  for (std::size_t i = 0; i < kept_k; ++i) {
    out[order[i]] = w[order[i]];
    acc += w[order[i]];
    if (acc >= p * mass_k) break;
  }
  const double total = std::accumulate(out.begin(), out.end(), 0.0);
  for (double& o : out) o /= total;
  return out;
}

// The chi-square value exceeded with probability about 1e-6 (Wilson–Hilferty, z = 4.75).
double chi_square_bound(double df) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + 4.75 * std::sqrt(a), 3.0);
}

}  // namespace

TEST_CASE("Sampled tokens follow the softmax within a chi-square bound", "[cpu][infer]") {
  const std::vector<double> x = {1.3, -0.4, 2.1, 0.0, 0.7, -1.9, 1.6, 0.25, -0.9, 1.05, -2.6, 0.5};
  const Tensor logits = Tensor::from_vector<double>({1, 12}, x).to(DType::f32);
  struct Case {
    double T;
    std::int64_t k;
    double p;
  };
  for (const Case c : {Case{1.0, 0, 1.0}, Case{0.7, 5, 1.0}, Case{1.4, 0, 0.8}, Case{1.0, 6, 0.9}, Case{2.5, 0, 1.0}}) {
    INFO("temperature " << c.T << " top_k " << c.k << " top_p " << c.p);
    SamplingOptions o;
    o.temperature = c.T;
    o.top_k = c.k;
    o.top_p = c.p;
    o.seed = 1234;
    const int draws = 40000;
    std::vector<double> count(x.size(), 0.0);
    for (int t = 0; t < draws; ++t) count[static_cast<std::size_t>(infer::choose_token(logits, o, 3, t))] += 1;
    const std::vector<double> p = expected_probs(x, c.T, c.k, c.p);
    double chi2 = 0;
    int kept = 0;
    for (std::size_t v = 0; v < x.size(); ++v) {
      if (p[v] == 0) {
        CHECK(count[v] == 0);  // outside top-k / top-p: never drawn
        continue;
      }
      ++kept;
      const double e = p[v] * draws;
      chi2 += (count[v] - e) * (count[v] - e) / e;
    }
    REQUIRE(kept >= 3);
    CHECK(chi2 < chi_square_bound(kept - 1));
    // The bound has teeth: the plain softmax at another temperature fails it.
    const std::vector<double> wrong = expected_probs(x, c.T * 1.25, c.k, c.p);
    double chi2_wrong = 0;
    for (std::size_t v = 0; v < x.size(); ++v)
      if (p[v] > 0) chi2_wrong += (count[v] - wrong[v] * draws) * (count[v] - wrong[v] * draws) / (wrong[v] * draws);
    CHECK(chi2_wrong > chi_square_bound(kept - 1));
  }
}

TEST_CASE("Greedy choice and seeded draws are reproducible per sequence and step", "[cpu][infer]") {
  const Tensor logits = test::random_tensor({1, 50}, DType::f32, 8, -3, 3);
  const auto v = logits.to_vector<double>();
  const auto best = static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
  SamplingOptions greedy;
  CHECK(infer::choose_token(logits, greedy, 0, 0) == best);
  SamplingOptions k1;
  k1.temperature = 5;
  k1.top_k = 1;
  CHECK(infer::choose_token(logits, k1, 4, 9) == best);
  SamplingOptions hot;
  hot.temperature = 3;
  hot.seed = 5;
  std::vector<std::int32_t> a, b, other;
  for (int t = 0; t < 64; ++t) {
    a.push_back(infer::choose_token(logits, hot, 2, t));
    b.push_back(infer::choose_token(logits, hot, 2, t));
    other.push_back(infer::choose_token(logits, hot, 3, t));
  }
  CHECK(a == b);
  CHECK(a != other);  // another sequence draws from another stream
}

TEST_CASE("Repetition penalty divides positive and multiplies negative logits of seen ids", "[cpu][infer]") {
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor row = Tensor::from_vector<double>({1, 5}, {2.0, -2.0, 0.5, -0.5, 3.0}).to(dt);
    infer::apply_repetition_penalty(row, {0, 1, 1, 3}, 2.0);  // a repeated id counts once
    CHECK(row.to_vector<double>() == std::vector<double>{1.0, -4.0, 0.5, -1.0, 3.0});
    infer::apply_repetition_penalty(row, {0, 1}, 1.0);  // 1 is off
    CHECK(row.to_vector<double>() == std::vector<double>{1.0, -4.0, 0.5, -1.0, 3.0});
    CHECK_THROWS_WITH(infer::apply_repetition_penalty(row, {5}, 1.5), Catch::Contains("token id 5 is outside [0, 5)"));
  }
  SamplingOptions o;
  o.repetition_penalty = 0;
  CHECK_THROWS_WITH(infer::check_sampling(o), Catch::Contains("repetition_penalty 0 must be > 0"));
  o = {};
  o.top_k = -2;
  CHECK_THROWS_WITH(infer::check_sampling(o), Catch::Contains("top_k -2"));
}

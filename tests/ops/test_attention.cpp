// Scaled dot-product attention: finite-difference gradients, a naive reference on ragged
// lengths, packed versus padded layouts, the causal mask, f32 versus f64, determinism, and
// argument errors; decode against a KV cache versus the last rows of the forward.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;

namespace {

// f64 against the naive reference: the kernels sum in a different order (tiled products).
constexpr test::Tolerance kF64Reference{1e-12, 1e-11};
// f32 against f64 on the same inputs (|x| ≤ 1.5, hd = 32, up to 64 keys).
constexpr test::Tolerance kF32Forward{2e-6, 2e-5};
constexpr test::Tolerance kF32Backward{2e-5, 1e-4};

// A problem's layout: padded (every sequence the same length) or packed with cu_seqlens.
struct Layout {
  std::vector<std::int64_t> lens;
  bool packed = false;
  std::int64_t hq = 2, hkv = 1, hd = 16;
  bool causal = true;
  double scale = 0.0;
  std::int64_t window = 0;  // sliding window (0: off)

  // Whether query i sees key j (ops.h: AttentionArgs).
  bool sees(std::int64_t i, std::int64_t j) const {
    return (!causal || j <= i) && (window == 0 || i - j < window);
  }
  std::int64_t tokens() const {
    std::int64_t n = 0;
    for (std::int64_t l : lens) n += l;
    return n;
  }
  std::vector<std::int64_t> offsets() const {
    std::vector<std::int64_t> cu{0};
    for (std::int64_t l : lens) cu.push_back(cu.back() + l);
    return cu;
  }
  std::int64_t batch() const { return static_cast<std::int64_t>(lens.size()); }
  std::int64_t seq_len() const { return lens.empty() ? 0 : lens[0]; }
  Shape q_shape() const {
    return packed ? Shape{tokens(), hq, hd} : Shape{batch(), seq_len(), hq, hd};
  }
  Shape kv_shape() const {
    return packed ? Shape{tokens(), hkv, hd} : Shape{batch(), seq_len(), hkv, hd};
  }
  Shape lse_shape() const { return packed ? Shape{hq, tokens()} : Shape{batch(), hq, seq_len()}; }
  // Where the lse of query head h at position t of sequence s lives.
  std::int64_t lse_index(std::int64_t s, std::int64_t h, std::int64_t t) const {
    return packed ? h * tokens() + offsets()[s] + t : (s * hq + h) * seq_len() + t;
  }
  ops::AttentionArgs args() const {
    ops::AttentionArgs a;
    a.scale = scale;
    a.causal = causal;
    a.window = window;
    if (packed) {
      std::vector<std::int32_t> cu;
      for (std::int64_t o : offsets()) cu.push_back(static_cast<std::int32_t>(o));
      a.cu_seqlens = Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(cu.size())}, cu);
    }
    return a;
  }
};

Layout padded(std::int64_t b, std::int64_t t, std::int64_t hq, std::int64_t hkv, std::int64_t hd,
              bool causal, double scale = 0.0) {
  return Layout{
      std::vector<std::int64_t>(static_cast<std::size_t>(b), t), false, hq, hkv, hd, causal, scale};
}

Layout packed(std::vector<std::int64_t> lens, std::int64_t hq, std::int64_t hkv, std::int64_t hd,
              bool causal, double scale = 0.0) {
  return Layout{std::move(lens), true, hq, hkv, hd, causal, scale};
}

Layout windowed(Layout l, std::int64_t window) {
  l.window = window;
  return l;
}

struct Inputs {
  Tensor q, k, v;
};

Inputs random_inputs(const Layout& l, DType dtype, std::uint64_t seed) {
  return {test::random_tensor(l.q_shape(), dtype, seed, -1.5, 1.5),
          test::random_tensor(l.kv_shape(), dtype, seed + 1, -1.5, 1.5),
          test::random_tensor(l.kv_shape(), dtype, seed + 2, -1.5, 1.5)};
}

struct Forward {
  Tensor out, lse;
};

// Runs the forward into NaN-poisoned outputs.
Forward run_fwd(const Layout& l, const Inputs& in) {
  Forward f{test::poisoned(l.q_shape(), in.q.dtype()), test::poisoned(l.lse_shape(), in.q.dtype())};
  ops::attention_fwd(in.q, in.k, in.v, l.args(), f.out, f.lse);
  return f;
}

struct Grads {
  Tensor dq, dk, dv;
};

// Runs the backward into NaN-poisoned gradients.
Grads run_bwd(const Layout& l, const Inputs& in, const Forward& f, const Tensor& dout) {
  const DType t = in.q.dtype();
  Grads g{test::poisoned(l.q_shape(), t), test::poisoned(l.kv_shape(), t),
          test::poisoned(l.kv_shape(), t)};
  ops::attention_bwd(dout, in.q, in.k, in.v, f.out, f.lse, l.args(), g.dq, g.dk, g.dv);
  return g;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Attention written straight from its definition, in f64, one query row at a time: the
// explicit score row, the mask (causal and sliding window), max, log-sum-exp, softmax and P·V; then the backward from the
// full probability matrix, with D_i = Σ_j P_ij dP_ij.
struct Naive {
  std::vector<double> out, lse, dq, dk, dv;
};

Naive naive_attention(const Layout& l, const Inputs& in, const Tensor& dout) {
  const std::vector<double> q = in.q.to_vector<double>(), k = in.k.to_vector<double>(),
                            v = in.v.to_vector<double>();
  const std::vector<double> go = dout.defined() ? dout.to_vector<double>() : std::vector<double>{};
  const std::int64_t hq = l.hq, hkv = l.hkv, hd = l.hd, group = hq / hkv;
  const double scale = l.scale == 0.0 ? 1.0 / std::sqrt(static_cast<double>(hd)) : l.scale;
  const std::vector<std::int64_t> cu = l.offsets();
  Naive r;
  r.out.assign(q.size(), 0.0);
  r.lse.assign(static_cast<std::size_t>(shape_numel(l.lse_shape())), 0.0);
  r.dq.assign(q.size(), 0.0);
  r.dk.assign(k.size(), 0.0);
  r.dv.assign(v.size(), 0.0);
  auto qi = [&](std::int64_t n, std::int64_t h) { return (n * hq + h) * hd; };
  auto ki = [&](std::int64_t n, std::int64_t g) { return (n * hkv + g) * hd; };
  for (std::size_t s = 0; s < l.lens.size(); ++s) {
    const std::int64_t off = cu[s], len = l.lens[s];
    for (std::int64_t h = 0; h < hq; ++h) {
      const std::int64_t g = h / group;
      std::vector<double> p(static_cast<std::size_t>(len * len), 0.0);
      for (std::int64_t i = 0; i < len; ++i) {
        std::vector<double> score(static_cast<std::size_t>(len), 0.0);
        double m = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < len; ++j) {
          if (!l.sees(i, j)) continue;
          double dot = 0;
          for (std::int64_t d = 0; d < hd; ++d)
            dot += q[qi(off + i, h) + d] * k[ki(off + j, g) + d];
          score[j] = scale * dot;
          m = std::max(m, score[j]);
        }
        double sum = 0;
        for (std::int64_t j = 0; j < len; ++j)
          if (l.sees(i, j)) sum += std::exp(score[j] - m);
        r.lse[l.lse_index(static_cast<std::int64_t>(s), h, i)] = m + std::log(sum);
        for (std::int64_t j = 0; j < len; ++j)
          if (l.sees(i, j)) p[i * len + j] = std::exp(score[j] - m) / sum;
        for (std::int64_t d = 0; d < hd; ++d) {
          double o = 0;
          for (std::int64_t j = 0; j < len; ++j) o += p[i * len + j] * v[ki(off + j, g) + d];
          r.out[qi(off + i, h) + d] = o;
        }
      }
      if (go.empty()) continue;
      for (std::int64_t i = 0; i < len; ++i) {
        std::vector<double> dp(static_cast<std::size_t>(len), 0.0);
        double big_d = 0;
        for (std::int64_t j = 0; j < len; ++j) {
          for (std::int64_t d = 0; d < hd; ++d)
            dp[j] += go[qi(off + i, h) + d] * v[ki(off + j, g) + d];
          big_d += p[i * len + j] * dp[j];
        }
        for (std::int64_t j = 0; j < len; ++j) {
          const double pij = p[i * len + j], ds = pij * (dp[j] - big_d);
          for (std::int64_t d = 0; d < hd; ++d) {
            r.dv[ki(off + j, g) + d] += pij * go[qi(off + i, h) + d];
            r.dq[qi(off + i, h) + d] += scale * ds * k[ki(off + j, g) + d];
            r.dk[ki(off + j, g) + d] += scale * ds * q[qi(off + i, h) + d];
          }
        }
      }
    }
  }
  return r;
}

std::string compare_to(const Tensor& actual, const std::vector<double>& reference,
                       test::Tolerance tol) {
  return test::compare(actual.to_vector<double>(), reference, tol);
}

}  // namespace

TEST_CASE("attention backward matches finite differences", "[cpu][attention][fd]") {
  struct Config {
    const char* name;
    Layout layout;
  };
  const std::vector<Config> configs = {
      {"causal GQA", padded(2, 5, 4, 2, 8, true)},
      {"non-causal MHA with scale", padded(2, 4, 3, 3, 6, false, 0.7)},
      {"packed causal 1 4 6", packed({1, 4, 6}, 4, 2, 8, true)},
      {"packed non-causal MQA", packed({6, 1, 4}, 2, 1, 4, false)},
      {"causal across two tiles", padded(1, 40, 2, 1, 4, true)},
      {"causal sliding window 3", windowed(padded(2, 6, 2, 1, 4, true), 3)},
      {"non-causal window across tiles", windowed(padded(1, 40, 2, 2, 4, false), 9)},
      {"packed causal window 2", windowed(packed({5, 1, 7}, 4, 2, 4, true), 2)},
  };
  std::uint64_t seed = 100;
  for (const Config& c : configs) {
    INFO(c.name);
    const Layout& l = c.layout;
    const Inputs in = random_inputs(l, DType::f64, seed += 10);
    const Tensor grad_out = test::random_tensor(l.q_shape(), DType::f64, seed + 5);
    const Forward f = run_fwd(l, in);
    const Grads g = run_bwd(l, in, f, grad_out);
    Tensor out = Tensor::empty(l.q_shape(), DType::f64);
    Tensor lse = Tensor::empty(l.lse_shape(), DType::f64);
    const ops::AttentionArgs args = l.args();
    auto loss = [&] {
      ops::attention_fwd(in.q, in.k, in.v, args, out, lse);
      return test::dot(grad_out, out);
    };
    CHECK(test::check_gradient(in.q, g.dq, loss) == "");
    CHECK(test::check_gradient(in.k, g.dk, loss) == "");
    CHECK(test::check_gradient(in.v, g.dv, loss) == "");
  }
}

TEST_CASE("attention forward and lse match a naive reference", "[cpu][attention]") {
  for (std::int64_t t : test::kRaggedSizes)
    for (bool causal : {true, false})
      for (double scale : {0.0, 0.3}) {
        CAPTURE(t, causal, scale);
        const Layout l = padded(2, t, 2, 1, 16, causal, scale);
        const Inputs in = random_inputs(l, DType::f64, 7 + static_cast<std::uint64_t>(t));
        const Forward f = run_fwd(l, in);
        const Naive ref = naive_attention(l, in, Tensor{});
        CHECK(compare_to(f.out, ref.out, kF64Reference) == "");
        CHECK(compare_to(f.lse, ref.lse, kF64Reference) == "");
      }
}

TEST_CASE("attention backward matches a naive reference", "[cpu][attention]") {
  for (std::int64_t t : test::kRaggedSizes)
    for (bool causal : {true, false}) {
      CAPTURE(t, causal);
      const Layout l = padded(1, t, 4, 2, 16, causal);
      const Inputs in = random_inputs(l, DType::f64, 30 + static_cast<std::uint64_t>(t));
      const Tensor grad_out = test::random_tensor(l.q_shape(), DType::f64, 3);
      const Forward f = run_fwd(l, in);
      const Grads g = run_bwd(l, in, f, grad_out);
      const Naive ref = naive_attention(l, in, grad_out);
      CHECK(compare_to(g.dq, ref.dq, kF64Reference) == "");
      CHECK(compare_to(g.dk, ref.dk, kF64Reference) == "");
      CHECK(compare_to(g.dv, ref.dv, kF64Reference) == "");
    }
}

TEST_CASE("attention sliding window matches a naive reference", "[cpu][attention]") {
  // Windows of 1 (each query sees itself only), inside a tile, across tiles and wider than the
  // sequence (no effect: equal bit for bit to no window), causal and not, padded and packed.
  for (std::int64_t window : {1, 5, 40, 200})
    for (bool causal : {true, false}) {
      CAPTURE(window, causal);
      for (const Layout& base :
           {padded(2, 129, 4, 2, 16, causal), packed({1, 70, 0, 33}, 2, 1, 16, causal)}) {
        const Layout l = windowed(base, window);
        const Inputs in = random_inputs(l, DType::f64, 200 + static_cast<std::uint64_t>(window));
        const Tensor grad_out = test::random_tensor(l.q_shape(), DType::f64, 201);
        const Forward f = run_fwd(l, in);
        const Grads g = run_bwd(l, in, f, grad_out);
        const Naive ref = naive_attention(l, in, grad_out);
        CHECK(compare_to(f.out, ref.out, kF64Reference) == "");
        CHECK(compare_to(f.lse, ref.lse, kF64Reference) == "");
        CHECK(compare_to(g.dq, ref.dq, kF64Reference) == "");
        CHECK(compare_to(g.dk, ref.dk, kF64Reference) == "");
        CHECK(compare_to(g.dv, ref.dv, kF64Reference) == "");
        if (window >= 200) {
          const Forward plain = run_fwd(base, in);
          CHECK(same_bits(f.out, plain.out));
          CHECK(same_bits(f.lse, plain.lse));
        }
      }
    }
  // Causal with a window of 1: every output row is its own value row (softmax over one key).
  const Layout one = windowed(padded(1, 9, 2, 1, 8, true), 1);
  const Inputs in = random_inputs(one, DType::f64, 210);
  const Forward f = run_fwd(one, in);
  const std::vector<double> out = f.out.to_vector<double>(), v = in.v.to_vector<double>();
  for (std::int64_t t = 0; t < 9; ++t)
    for (std::int64_t h = 0; h < 2; ++h)
      for (std::int64_t d = 0; d < 8; ++d)
        REQUIRE(out[(t * 2 + h) * 8 + d] == Approx(v[t * 8 + d]).epsilon(1e-14));
}

TEST_CASE("attention stays finite for large scores", "[cpu][attention]") {
  // Scores up to about ±900 · 16 / 4: exp overflows unless each row is max-shifted.
  const Layout l = packed({40, 3}, 2, 1, 16, true);
  Inputs in = random_inputs(l, DType::f64, 91);
  in.q = test::random_tensor(l.q_shape(), DType::f64, 92, -30.0, 30.0);
  in.k = test::random_tensor(l.kv_shape(), DType::f64, 93, -30.0, 30.0);
  const Tensor grad_out = test::random_tensor(l.q_shape(), DType::f64, 94);
  const Forward f = run_fwd(l, in);
  const Grads g = run_bwd(l, in, f, grad_out);
  const Naive ref = naive_attention(l, in, grad_out);
  CHECK(compare_to(f.out, ref.out, kF64Reference) == "");
  CHECK(compare_to(f.lse, ref.lse, kF64Reference) == "");
  CHECK(compare_to(g.dq, ref.dq, kF64Reference) == "");
  CHECK(compare_to(g.dk, ref.dk, kF64Reference) == "");
  CHECK(compare_to(g.dv, ref.dv, kF64Reference) == "");
  const Inputs in32{in.q.to(DType::f32), in.k.to(DType::f32), in.v.to(DType::f32)};
  const Forward f32 = run_fwd(l, in32);
  for (float x : f32.out.to_vector<float>()) REQUIRE(std::isfinite(x));
  for (float x : f32.lse.to_vector<float>()) REQUIRE(std::isfinite(x));
}

TEST_CASE("attention packed sequences equal separate padded runs", "[cpu][attention]") {
  const std::vector<std::int64_t> lens = {1, 33, 0, 7, 64};  // with an empty sequence
  for (bool causal : {true, false}) {
    CAPTURE(causal);
    const Layout l = packed(lens, 4, 2, 16, causal);
    const Inputs in = random_inputs(l, DType::f64, 41);
    const Tensor grad_out = test::random_tensor(l.q_shape(), DType::f64, 42);
    const Forward f = run_fwd(l, in);
    const Grads g = run_bwd(l, in, f, grad_out);
    const std::vector<std::int64_t> cu = l.offsets();
    for (std::size_t s = 0; s < lens.size(); ++s) {
      const std::int64_t len = lens[s];
      if (len == 0) continue;
      CAPTURE(s);
      const Layout one = padded(1, len, l.hq, l.hkv, l.hd, causal);
      auto rows = [&](const Tensor& t) {
        return t.slice(cu[s], cu[s] + len).clone().view({1, len, t.size(1), l.hd});
      };
      const Inputs part{rows(in.q), rows(in.k), rows(in.v)};
      const Forward pf = run_fwd(one, part);
      const Grads pg = run_bwd(one, part, pf, rows(grad_out));
      CHECK(test::compare(rows(f.out), pf.out, kF64Reference) == "");
      CHECK(test::compare(rows(g.dq), pg.dq, kF64Reference) == "");
      CHECK(test::compare(rows(g.dk), pg.dk, kF64Reference) == "");
      CHECK(test::compare(rows(g.dv), pg.dv, kF64Reference) == "");
      const std::vector<double> lse = f.lse.to_vector<double>(),
                                part_lse = pf.lse.to_vector<double>();
      std::vector<double> mine;
      for (std::int64_t h = 0; h < l.hq; ++h)
        for (std::int64_t t = 0; t < len; ++t) mine.push_back(lse[l.lse_index(s, h, t)]);
      CHECK(test::compare(mine, part_lse, kF64Reference) == "");
    }
  }
}

TEST_CASE("attention causal outputs ignore future keys and values", "[cpu][attention]") {
  const std::int64_t t = 45, changed = 37;  // in the second query tile, after 5 of its rows
  for (bool causal : {true, false}) {
    CAPTURE(causal);
    const Layout l = padded(1, t, 2, 1, 8, causal);
    const Inputs in = random_inputs(l, DType::f32, 51);
    const Forward before = run_fwd(l, in);
    const Inputs edited{in.q, in.k.clone(), in.v.clone()};
    for (std::int64_t d = 0; d < l.hd; ++d) {
      edited.k.data<float>()[changed * l.hd + d] += 0.75f;
      edited.v.data<float>()[changed * l.hd + d] -= 0.5f;
    }
    const Forward after = run_fwd(l, edited);
    const std::int64_t row = l.hq * l.hd;  // out elements per position
    const std::vector<float> o0 = before.out.to_vector<float>(), o1 = after.out.to_vector<float>();
    const std::vector<float> l0 = before.lse.to_vector<float>(), l1 = after.lse.to_vector<float>();
    const bool past_same = std::memcmp(o0.data(), o1.data(), changed * row * sizeof(float)) == 0;
    bool past_lse_same = true;
    for (std::int64_t h = 0; h < l.hq; ++h)
      for (std::int64_t i = 0; i < changed; ++i)
        past_lse_same = past_lse_same && l0[h * t + i] == l1[h * t + i];
    CHECK(past_same == causal);
    CHECK(past_lse_same == causal);
    CHECK(o0[changed * row] != o1[changed * row]);  // the changed position itself sees it
  }
  // Packed: editing sequence 1 leaves sequences 0 and 2 bitwise unchanged.
  const Layout l = packed({20, 9, 40}, 2, 2, 8, false);
  const Inputs in = random_inputs(l, DType::f32, 52);
  const Forward before = run_fwd(l, in);
  const Inputs edited{in.q, in.k.clone(), in.v.clone()};
  for (std::int64_t i = 20 * l.hkv * l.hd; i < 29 * l.hkv * l.hd; ++i) {
    edited.k.data<float>()[i] *= -1.0f;
    edited.v.data<float>()[i] += 1.0f;
  }
  const Forward after = run_fwd(l, edited);
  CHECK(same_bits(before.out.slice(0, 20), after.out.slice(0, 20)));
  CHECK(same_bits(before.out.slice(29, 69), after.out.slice(29, 69)));
  CHECK_FALSE(same_bits(before.out.slice(20, 29), after.out.slice(20, 29)));
}

TEST_CASE("attention f32 agrees with f64", "[cpu][attention]") {
  for (const Layout& l : {packed({50, 17, 1}, 4, 2, 32, true), padded(2, 64, 2, 2, 32, false)}) {
    CAPTURE(l.packed);
    const Inputs in64 = random_inputs(l, DType::f64, 61);
    const Tensor grad64 = test::random_tensor(l.q_shape(), DType::f64, 62);
    const Inputs in32{in64.q.to(DType::f32), in64.k.to(DType::f32), in64.v.to(DType::f32)};
    const Forward f64 = run_fwd(l, in64), f32 = run_fwd(l, in32);
    const Grads g64 = run_bwd(l, in64, f64, grad64);
    const Grads g32 = run_bwd(l, in32, f32, grad64.to(DType::f32));
    CHECK(test::compare(f32.out, f64.out, kF32Forward) == "");
    CHECK(test::compare(f32.lse, f64.lse, kF32Forward) == "");
    CHECK(test::compare(g32.dq, g64.dq, kF32Backward) == "");
    CHECK(test::compare(g32.dk, g64.dk, kF32Backward) == "");
    CHECK(test::compare(g32.dv, g64.dv, kF32Backward) == "");
  }
}

TEST_CASE("attention runs are bitwise deterministic", "[cpu][attention]") {
  const Layout l = packed({70, 3, 129}, 4, 2, 16, true);
  const Inputs in = random_inputs(l, DType::f32, 71);
  const Tensor grad_out = test::random_tensor(l.q_shape(), DType::f32, 72);
  auto run = [&] {
    const Forward f = run_fwd(l, in);
    const Grads g = run_bwd(l, in, f, grad_out);
    return std::vector<Tensor>{f.out, f.lse, g.dq, g.dk, g.dv};
  };
  const std::vector<Tensor> first = run(), second = run();
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<Tensor> one_thread = run();
  omp_set_num_threads(3);
  const std::vector<Tensor> three_threads = run();
  omp_set_num_threads(threads);
#else
  const std::vector<Tensor> one_thread = run(), three_threads = run();
#endif
  for (std::size_t i = 0; i < first.size(); ++i) {
    CAPTURE(i);
    CHECK(same_bits(first[i], second[i]));
    CHECK(same_bits(first[i], one_thread[i]));
    CHECK(same_bits(first[i], three_threads[i]));
  }
}

TEST_CASE("attention backward skips undefined gradient outputs", "[cpu][attention]") {
  const Layout l = padded(2, 35, 4, 1, 8, true);
  const Inputs in = random_inputs(l, DType::f64, 81);
  const Tensor grad_out = test::random_tensor(l.q_shape(), DType::f64, 82);
  const Forward f = run_fwd(l, in);
  const Grads all = run_bwd(l, in, f, grad_out);
  const Tensor dq = test::poisoned(l.q_shape(), DType::f64);
  ops::attention_bwd(grad_out, in.q, in.k, in.v, f.out, f.lse, l.args(), dq, Tensor{}, Tensor{});
  CHECK(same_bits(dq, all.dq));
  const Tensor dk = test::poisoned(l.kv_shape(), DType::f64);
  const Tensor dv = test::poisoned(l.kv_shape(), DType::f64);
  ops::attention_bwd(grad_out, in.q, in.k, in.v, f.out, f.lse, l.args(), Tensor{}, dk, Tensor{});
  ops::attention_bwd(grad_out, in.q, in.k, in.v, f.out, f.lse, l.args(), Tensor{}, Tensor{}, dv);
  CHECK(same_bits(dk, all.dk));
  CHECK(same_bits(dv, all.dv));
  CHECK_NOTHROW(ops::attention_bwd(grad_out, in.q, in.k, in.v, f.out, f.lse, l.args(), Tensor{},
                                   Tensor{}, Tensor{}));
}

TEST_CASE("attention rejects bad arguments", "[cpu][attention]") {
  using Catch::Contains;
  const DType f = DType::f64;
  const Tensor q = Tensor::zeros({2, 5, 4, 8}, f), k = Tensor::zeros({2, 5, 2, 8}, f);
  const Tensor v = k.clone(), out = Tensor::zeros({2, 5, 4, 8}, f);
  const Tensor lse = Tensor::zeros({2, 4, 5}, f);
  const ops::AttentionArgs args;
  const auto fwd = Contains("attention_fwd");
  const auto q_shape = Contains("(2, 5, 4, 8)");

  CHECK_THROWS_WITH(ops::attention_fwd(q, Tensor::zeros({2, 5, 2, 7}, f), v, args, out, lse),
                    fwd && Contains("'k'") && Contains("(2, 5, 2, 7)") && q_shape);
  CHECK_THROWS_WITH(ops::attention_fwd(q, k, v, args, Tensor::zeros({2, 5, 4, 7}, f), lse),
                    fwd && Contains("'out'") && Contains("(2, 5, 4, 7)") && q_shape);
  const Tensor k3 = Tensor::zeros({2, 5, 3, 8}, f);
  CHECK_THROWS_WITH(ops::attention_fwd(q, k3, k3, args, out, lse),
                    fwd && Contains("'k'") && Contains("(2, 5, 3, 8)") && q_shape);
  CHECK_THROWS_WITH(
      ops::attention_fwd(q, k, v, args, out, Tensor::zeros({2, 5, 4}, f)),
      fwd && Contains("'lse'") && Contains("(2, 5, 4)") && Contains("(2, 4, 5)") && q_shape);
  CHECK_THROWS_WITH(ops::attention_fwd(q, k.to(DType::f32), v, args, out, lse),
                    fwd && Contains("'k'") && Contains("f32") && Contains("f64"));
  CHECK_THROWS_WITH(ops::attention_fwd(q, k, v, args, out.to(DType::f32), lse),
                    fwd && Contains("'out'") && Contains("f32") && Contains("f64"));
  CHECK_THROWS_WITH(ops::attention_fwd(q.view({10, 4, 8}), k, v, args, out, lse),
                    fwd && Contains("'q'") && Contains("(10, 4, 8)"));
  ops::AttentionArgs nan_scale;
  nan_scale.scale = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(ops::attention_fwd(q, k, v, nan_scale, out, lse),
                    fwd && Contains("'scale'") && Contains("nan"));
  ops::AttentionArgs negative_window;
  negative_window.window = -3;
  CHECK_THROWS_WITH(ops::attention_fwd(q, k, v, negative_window, out, lse),
                    fwd && Contains("'window'") && Contains("-3"));

  // Packed layout: N = 11 tokens.
  const Tensor pq = Tensor::zeros({11, 4, 8}, f), pk = Tensor::zeros({11, 2, 8}, f);
  const Tensor pout = pq.clone(), plse = Tensor::zeros({4, 11}, f);
  auto with_cu = [](const std::vector<std::int32_t>& cu) {
    ops::AttentionArgs a;
    a.cu_seqlens = Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(cu.size())}, cu);
    return a;
  };
  CHECK_NOTHROW(ops::attention_fwd(pq, pk, pk, with_cu({0, 1, 5, 11}), pout, plse));
  CHECK_THROWS_WITH(
      ops::attention_fwd(pq, pk, pk, with_cu({0, 1, 5, 10}), pout, plse),
      fwd && Contains("'cu_seqlens'") && Contains("10") && Contains("11") && Contains("index 3"));
  CHECK_THROWS_WITH(ops::attention_fwd(pq, pk, pk, with_cu({0, 5, 4, 11}), pout, plse),
                    fwd && Contains("'cu_seqlens'") && Contains("index 2") && Contains("4") &&
                        Contains("decreases"));
  CHECK_THROWS_WITH(ops::attention_fwd(pq, pk, pk, with_cu({1, 5, 11}), pout, plse),
                    fwd && Contains("'cu_seqlens'") && Contains("index 0"));
  ops::AttentionArgs cu64;
  cu64.cu_seqlens = Tensor::from_vector<std::int64_t>({3}, {0, 5, 11});
  CHECK_THROWS_WITH(ops::attention_fwd(pq, pk, pk, cu64, pout, plse),
                    fwd && Contains("'cu_seqlens'") && Contains("i64"));
  CHECK_THROWS_WITH(ops::attention_fwd(pq, pk, pk, with_cu({0, 11}), pout, lse),
                    fwd && Contains("'lse'") && Contains("(2, 4, 5)") && Contains("(4, 11)") &&
                        Contains("(11, 4, 8)"));

  // Backward: its own op name; gradients checked against q and k.
  const auto bwd = Contains("attention_bwd");
  CHECK_THROWS_WITH(ops::attention_bwd(out, q, k, v, out, lse, args, q.clone(),
                                       Tensor::zeros({2, 5, 4, 8}, f), Tensor{}),
                    bwd && Contains("'dk'") && q_shape && Contains("(2, 5, 2, 8)"));
  CHECK_THROWS_WITH(ops::attention_bwd(Tensor::zeros({2, 4, 4, 8}, f), q, k, v, out, lse, args,
                                       q.clone(), Tensor{}, Tensor{}),
                    bwd && Contains("'dout'") && Contains("(2, 4, 4, 8)") && q_shape);
  CHECK_THROWS_WITH(
      ops::attention_bwd(out, q, k3, k3, out, lse, args, q.clone(), Tensor{}, Tensor{}),
      bwd && Contains("'k'") && Contains("(2, 5, 3, 8)") && q_shape);
  CHECK_THROWS_WITH(
      ops::attention_bwd(out, q, k, v, out, lse, args, Tensor{}, Tensor{}, v.to(DType::f32)),
      bwd && Contains("'dv'") && Contains("f32"));
}

TEST_CASE("attention max_seqlen is checked on the CPU and changes nothing", "[cpu][attention]") {
  using Catch::Contains;
  const Layout l = packed({3, 9, 0, 5}, 4, 2, 8, true);
  const Inputs in = random_inputs(l, DType::f64, 301);
  const Tensor grad_out = test::random_tensor(l.q_shape(), DType::f64, 302);
  const Forward f = run_fwd(l, in);
  const Grads g = run_bwd(l, in, f, grad_out);
  for (std::int64_t bound : {9, 17}) {  // the longest sequence, and more
    CAPTURE(bound);
    ops::AttentionArgs args = l.args();
    args.max_seqlen = bound;
    const Forward fb{test::poisoned(l.q_shape(), DType::f64),
                     test::poisoned(l.lse_shape(), DType::f64)};
    ops::attention_fwd(in.q, in.k, in.v, args, fb.out, fb.lse);
    CHECK(same_bits(fb.out, f.out));
    CHECK(same_bits(fb.lse, f.lse));
    const Tensor dq = test::poisoned(l.q_shape(), DType::f64);
    ops::attention_bwd(grad_out, in.q, in.k, in.v, f.out, f.lse, args, dq, Tensor{}, Tensor{});
    CHECK(same_bits(dq, g.dq));
  }
  ops::AttentionArgs short_bound = l.args();
  short_bound.max_seqlen = 8;
  const Tensor out = Tensor::empty(l.q_shape(), DType::f64);
  const Tensor lse = Tensor::empty(l.lse_shape(), DType::f64);
  CHECK_THROWS_WITH(ops::attention_fwd(in.q, in.k, in.v, short_bound, out, lse),
                    Contains("[attention_fwd]") && Contains("'cu_seqlens'") &&
                        Contains("sequence of 9 tokens at index 1") &&
                        Contains("max_seqlen = 8"));
  CHECK_THROWS_WITH(ops::attention_bwd(grad_out, in.q, in.k, in.v, f.out, f.lse, short_bound,
                                       out, Tensor{}, Tensor{}),
                    Contains("[attention_bwd]") && Contains("max_seqlen = 8"));
  ops::AttentionArgs negative = l.args();
  negative.max_seqlen = -1;
  CHECK_THROWS_WITH(ops::attention_fwd(in.q, in.k, in.v, negative, out, lse),
                    Contains("[attention_fwd]") && Contains("'max_seqlen'") && Contains("-1"));
}

namespace {

// A decode problem: B sequences of the given lengths whose last Tq tokens are new, in caches of
// C rows (rows past a sequence's length hold unrelated values the decode must not read).
struct DecodeCase {
  std::vector<std::int64_t> lens;
  std::int64_t tq = 1, capacity = 0;
  std::int64_t hq = 4, hkv = 2, hd = 8;
  bool causal = true;
  std::int64_t window = 0;
  double scale = 0.0;

  std::int64_t batch() const { return static_cast<std::int64_t>(lens.size()); }
  // The whole sequences as a packed forward problem.
  Layout full() const {
    Layout l = packed(lens, hq, hkv, hd, causal, scale);
    l.window = window;
    return l;
  }
  ops::AttentionArgs args() const {
    ops::AttentionArgs a;
    a.scale = scale;
    a.causal = causal;
    a.window = window;
    return a;
  }
  Tensor cache_seqlens() const {
    std::vector<std::int32_t> c;
    for (std::int64_t l : lens) c.push_back(static_cast<std::int32_t>(l));
    return Tensor::from_vector<std::int32_t>({batch()}, c);
  }
};

struct Decoded {
  Tensor q, k, v;  // q (B, Tq, Hq, hd); caches (B, C, Hkv, hd)
};

// The decode inputs from the packed sequences `in` of c.full(): each sequence's last Tq query
// rows, and its keys and values at the start of its cache rows.
Decoded decode_inputs(const DecodeCase& c, const Inputs& in, std::uint64_t seed) {
  const DType t = in.q.dtype();
  Decoded d{Tensor::empty({c.batch(), c.tq, c.hq, c.hd}, t),
            test::random_tensor({c.batch(), c.capacity, c.hkv, c.hd}, t, seed, -3.0, 3.0),
            test::random_tensor({c.batch(), c.capacity, c.hkv, c.hd}, t, seed + 1, -3.0, 3.0)};
  std::int64_t start = 0;
  for (std::int64_t b = 0; b < c.batch(); ++b) {
    const std::int64_t len = c.lens[static_cast<std::size_t>(b)];
    d.q.select(b).copy_from(in.q.slice(start + len - c.tq, start + len));
    d.k.select(b).slice(0, len).copy_from(in.k.slice(start, start + len));
    d.v.select(b).slice(0, len).copy_from(in.v.slice(start, start + len));
    start += len;
  }
  return d;
}

// The forward's out and lse rows of each sequence's last Tq tokens, in the decode's layouts
// (B, Tq, Hq, hd) and (B, Hq, Tq).
std::pair<std::vector<double>, std::vector<double>> last_rows(const DecodeCase& c,
                                                             const Forward& f) {
  const Layout l = c.full();
  const std::vector<double> out = f.out.to_vector<double>(), lse = f.lse.to_vector<double>();
  const std::vector<std::int64_t> cu = l.offsets();
  std::vector<double> o, s;
  for (std::int64_t b = 0; b < c.batch(); ++b) {
    const std::int64_t first = cu[b + 1] - c.tq;
    o.insert(o.end(), out.begin() + first * c.hq * c.hd, out.begin() + cu[b + 1] * c.hq * c.hd);
  }
  for (std::int64_t b = 0; b < c.batch(); ++b)
    for (std::int64_t h = 0; h < c.hq; ++h)
      for (std::int64_t t = 0; t < c.tq; ++t)
        s.push_back(lse[l.lse_index(b, h, c.lens[static_cast<std::size_t>(b)] - c.tq + t)]);
  return {o, s};
}

}  // namespace

TEST_CASE("attention decode equals the last rows of the forward", "[cpu][attention][decode]") {
  std::uint64_t seed = 400;
  for (bool causal : {true, false})
    for (std::int64_t group : {1, 2, 4})
      for (std::int64_t window : {0, 1, 4})
        for (std::int64_t tq : {1, 3}) {
          CAPTURE(causal, group, window, tq);
          DecodeCase c;
          c.lens = {tq, 9, 33, 4};
          c.tq = tq;
          c.capacity = 40;
          c.hkv = 2;
          c.hq = 2 * group;
          c.causal = causal;
          c.window = window;
          c.scale = window == 4 ? 0.4 : 0.0;
          const Layout l = c.full();
          const Inputs in = random_inputs(l, DType::f64, seed += 10);
          const Forward f = run_fwd(l, in);
          const Decoded d = decode_inputs(c, in, seed + 5);
          const Tensor out = test::poisoned(d.q.shape(), DType::f64);
          const Tensor lse = test::poisoned({c.batch(), c.hq, tq}, DType::f64);
          ops::attention_decode(d.q, d.k, d.v, c.cache_seqlens(), c.args(), out, lse);
          const auto [ref_out, ref_lse] = last_rows(c, f);
          CHECK(compare_to(out, ref_out, kF64Reference) == "");
          CHECK(compare_to(lse, ref_lse, kF64Reference) == "");
          // f32 on the same inputs agrees with f64.
          const Tensor out32 = test::poisoned(d.q.shape(), DType::f32);
          ops::attention_decode(d.q.to(DType::f32), d.k.to(DType::f32), d.v.to(DType::f32),
                                c.cache_seqlens(), c.args(), out32);
          CHECK(test::compare(out32, out, kF32Forward) == "");
        }
}

TEST_CASE("attention decode without cache_seqlens reads the whole cache",
          "[cpu][attention][decode]") {
  // Every sequence holds C rows: the same as cache_seqlens = C, and the forward's last rows.
  DecodeCase c;
  c.lens = {6, 6};
  c.tq = 2;
  c.capacity = 6;
  c.window = 3;
  const Inputs in = random_inputs(c.full(), DType::f64, 501);
  const Forward f = run_fwd(c.full(), in);
  const Decoded d = decode_inputs(c, in, 502);
  const Tensor all = test::poisoned(d.q.shape(), DType::f64);
  const Tensor given = test::poisoned(d.q.shape(), DType::f64);
  ops::attention_decode(d.q, d.k, d.v, Tensor{}, c.args(), all);
  ops::attention_decode(d.q, d.k, d.v, c.cache_seqlens(), c.args(), given);
  CHECK(same_bits(all, given));
  CHECK(compare_to(all, last_rows(c, f).first, kF64Reference) == "");
  // An empty batch is a no-op.
  const Tensor none = Tensor::empty({0, 2, 4, 8}, DType::f64);
  CHECK_NOTHROW(ops::attention_decode(none, Tensor::empty({0, 6, 2, 8}, DType::f64),
                                      Tensor::empty({0, 6, 2, 8}, DType::f64),
                                      Tensor::empty({0}, DType::i32), c.args(), none.clone()));
}

TEST_CASE("attention decode rejects bad arguments", "[cpu][attention][decode]") {
  using Catch::Contains;
  const DType f = DType::f64;
  const Tensor q = Tensor::zeros({2, 3, 4, 8}, f), k = Tensor::zeros({2, 10, 2, 8}, f);
  const Tensor out = q.clone(), lens = Tensor::from_vector<std::int32_t>({2}, {3, 10});
  const ops::AttentionArgs args;
  const auto dec = Contains("[attention_decode]");
  CHECK_NOTHROW(ops::attention_decode(q, k, k, lens, args, out));
  CHECK_THROWS_WITH(ops::attention_decode(q.view({6, 4, 8}), k, k, lens, args, out),
                    dec && Contains("'q'") && Contains("(6, 4, 8)") && Contains("(B, Tq, Hq, hd)"));
  CHECK_THROWS_WITH(
      ops::attention_decode(q, Tensor::zeros({2, 10, 2, 6}, f), k, lens, args, out),
      dec && Contains("'k'") && Contains("(2, 10, 2, 6)") && Contains("(2, 3, 4, 8)"));
  CHECK_THROWS_WITH(ops::attention_decode(q, Tensor::zeros({3, 10, 2, 8}, f), k, lens, args, out),
                    dec && Contains("'k'") && Contains("(3, 10, 2, 8)"));
  const Tensor k3 = Tensor::zeros({2, 10, 3, 8}, f);
  CHECK_THROWS_WITH(ops::attention_decode(q, k3, k3, lens, args, out),
                    dec && Contains("'k'") && Contains("3 kv heads"));
  const Tensor small = Tensor::zeros({2, 2, 2, 8}, f);
  CHECK_THROWS_WITH(ops::attention_decode(q, small, small, lens, args, out),
                    dec && Contains("'k'") && Contains("cache of 2 rows") && Contains("3 new"));
  CHECK_THROWS_WITH(ops::attention_decode(q, k, Tensor::zeros({2, 9, 2, 8}, f), lens, args, out),
                    dec && Contains("'v'") && Contains("(2, 9, 2, 8)"));
  CHECK_THROWS_WITH(ops::attention_decode(q, k, k.to(DType::f32), lens, args, out),
                    dec && Contains("'v'") && Contains("f32"));
  CHECK_THROWS_WITH(
      ops::attention_decode(q, k, k, Tensor::from_vector<std::int64_t>({2}, {3, 10}), args, out),
      dec && Contains("'cache_seqlens'") && Contains("i64") && Contains("i32"));
  CHECK_THROWS_WITH(
      ops::attention_decode(q, k, k, Tensor::from_vector<std::int32_t>({3}, {3, 3, 3}), args, out),
      dec && Contains("'cache_seqlens'") && Contains("(3)") && Contains("(2)"));
  CHECK_THROWS_WITH(
      ops::attention_decode(q, k, k, Tensor::from_vector<std::int32_t>({2}, {3, 11}), args, out),
      dec && Contains("'cache_seqlens'") && Contains("value 11 at index 1") &&
          Contains("[3, 10]"));
  CHECK_THROWS_WITH(
      ops::attention_decode(q, k, k, Tensor::from_vector<std::int32_t>({2}, {2, 10}), args, out),
      dec && Contains("value 2 at index 0"));
  ops::AttentionArgs packed_args;
  packed_args.cu_seqlens = Tensor::from_vector<std::int32_t>({2}, {0, 3});
  CHECK_THROWS_WITH(ops::attention_decode(q, k, k, lens, packed_args, out),
                    dec && Contains("'cu_seqlens'") && Contains("undefined"));
  ops::AttentionArgs negative_window;
  negative_window.window = -2;
  CHECK_THROWS_WITH(ops::attention_decode(q, k, k, lens, negative_window, out),
                    dec && Contains("'window'") && Contains("-2"));
  CHECK_THROWS_WITH(ops::attention_decode(q, k, k, lens, args, Tensor::zeros({2, 3, 4, 7}, f)),
                    dec && Contains("'out'") && Contains("(2, 3, 4, 7)"));
  CHECK_THROWS_WITH(ops::attention_decode(q, k, k, lens, args, out, Tensor::zeros({2, 3, 4}, f)),
                    dec && Contains("'lse'") && Contains("(2, 3, 4)") && Contains("(2, 4, 3)"));
  CHECK_THROWS_WITH(ops::attention_decode(q.to(DType::bf16), k.to(DType::bf16), k.to(DType::bf16),
                                          lens, args, out.to(DType::bf16)),
                    dec && Contains("'q'") && Contains("has dtype bf16; expected f32 or f64"));
}

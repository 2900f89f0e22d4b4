// Cross-entropy kernels under the emulator against engine/cpu/loss: ragged row counts and
// vocabularies (including ones that are not a multiple of the chunk), misaligned rows (the
// scalar head/tail paths), bf16/f32 logits and gradients, ignored rows, weights, −inf logits,
// the fused forward, in-place gradients; bit-identical under the fwd/rev/rand schedules.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cpu/loss.h"
#include "hone/dtype.h"
#include "kernels/emu/emu.h"
#include "kernels/loss/loss.h"
#include "support/tolerance.h"

using namespace hone;
using hone::emu::Schedule;
using kernels::LossIndexType;
using kernels::LossType;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
const Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};

// Device-side storage of one dtype, with a leading pad of `shift` elements (misalignment) and
// a trailing guard element; values are kept as the float they represent.
struct Buffer {
  LossType type;
  std::int64_t shift = 0, n = 0;
  std::vector<std::uint32_t> words;  // enough 4-byte words, 16-byte aligned by the allocator

  Buffer(LossType t, std::int64_t count, std::int64_t shift_elems, float fill)
      : type(t), shift(shift_elems), n(count) {
    words.assign(static_cast<std::size_t>(count + shift + 8), 0u);
    for (std::int64_t i = -shift; i <= count; ++i) set(i, fill);
  }
  std::size_t elem() const { return type == LossType::f32 ? 4 : 2; }
  unsigned char* base() const {
    return reinterpret_cast<unsigned char*>(const_cast<std::uint32_t*>(words.data())) + shift * elem();
  }
  void* data() const { return base(); }
  void set(std::int64_t i, float v) {
    if (type == LossType::f32) {
      std::memcpy(base() + i * 4, &v, 4);
    } else {
      const std::uint16_t b = to_bf16(v).bits;
      std::memcpy(base() + i * 2, &b, 2);
    }
  }
  float get(std::int64_t i) const {
    if (type == LossType::f32) {
      float v;
      std::memcpy(&v, base() + i * 4, 4);
      return v;
    }
    bf16 b;
    std::memcpy(&b.bits, base() + i * 2, 2);
    return from_bf16(b);
  }
  std::vector<float> values() const {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) v[i] = get(i);
    return v;
  }
  std::vector<std::uint8_t> bytes() const {
    return std::vector<std::uint8_t>(base(), base() + n * elem());
  }
};

struct Case {
  std::int64_t rows, vocab;
  LossType logits, dlogits;
  LossIndexType index;
  bool weighted;
  std::int64_t shift;  // elements of misalignment of logits and dlogits
  bool neg_inf;        // some logits are −inf
};

struct Result {
  std::vector<float> losses, lse, fused_losses, fused_lse;
  std::vector<std::uint8_t> dlogits, fused_dlogits;
  std::vector<float> dlogits_values;
  bool guards_intact = true;

  bool operator==(const Result& o) const {
    return losses == o.losses && lse == o.lse && dlogits == o.dlogits &&
           fused_dlogits == o.fused_dlogits && fused_losses == o.fused_losses &&
           fused_lse == o.fused_lse;
  }
};

constexpr std::int64_t kIgnore = -100;

struct Inputs {
  Buffer logits;
  std::vector<std::int64_t> targets;
  std::vector<std::int32_t> targets32;
  std::vector<float> weights, dlosses;

  explicit Inputs(const Case& c)
      : logits(c.logits, c.rows * c.vocab, c.shift, kNaN) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(c.rows * 1000 + c.vocab));
    std::uniform_real_distribution<float> x(-4.0f, 4.0f), w(0.25f, 2.0f);
    std::uniform_int_distribution<std::int64_t> t(0, c.vocab - 1);
    for (std::int64_t i = 0; i < c.rows * c.vocab; ++i)
      logits.set(i, c.neg_inf && i % 7 == 3 ? -INFINITY : x(rng));
    for (std::int64_t n = 0; n < c.rows; ++n) {
      std::int64_t tn = n % 5 == 2 ? kIgnore : t(rng);
      if (c.neg_inf && tn != kIgnore && logits.get(n * c.vocab + tn) == -INFINITY) tn = kIgnore;
      targets.push_back(tn);
      targets32.push_back(static_cast<std::int32_t>(tn));
      weights.push_back(w(rng));
      dlosses.push_back(x(rng));
    }
    if (c.rows > 0 && !c.neg_inf) targets[0] = targets32[0] = static_cast<std::int32_t>(c.vocab - 1);
  }
};

kernels::CrossEntropyParams params(const Case& c, const Inputs& in) {
  kernels::CrossEntropyParams p;
  p.rows = c.rows;
  p.vocab = c.vocab;
  p.logits = in.logits.data();
  p.logits_type = c.logits;
  p.target_type = c.index;
  p.targets = c.index == LossIndexType::i64 ? static_cast<const void*>(in.targets.data())
                                             : static_cast<const void*>(in.targets32.data());
  p.ignore_index = kIgnore;
  p.weights = c.weighted ? in.weights.data() : nullptr;
  p.dlosses = in.dlosses.data();
  p.dlogits_type = c.dlogits;
  return p;
}

Result run(const Case& c, const Inputs& in) {
  Result r;
  kernels::CrossEntropyParams p = params(c, in);
  r.losses.assign(c.rows, kNaN);
  r.lse.assign(c.rows, kNaN);
  p.losses = r.losses.data();
  p.lse = r.lse.data();
  kernels::cross_entropy_fwd(p, nullptr);

  Buffer d(c.dlogits, c.rows * c.vocab, c.shift, kNaN);
  p.dlogits = d.data();
  kernels::cross_entropy_bwd(p, nullptr);
  r.dlogits = d.bytes();
  r.dlogits_values = d.values();
  r.guards_intact = std::isnan(d.get(c.rows * c.vocab)) && (c.shift == 0 || std::isnan(d.get(-1)));

  // The fused forward (gradient in the same launch) gives the same bits.
  Buffer fd(c.dlogits, c.rows * c.vocab, c.shift, kNaN);
  r.fused_losses.assign(c.rows, kNaN);
  r.fused_lse.assign(c.rows, kNaN);
  p.losses = r.fused_losses.data();
  p.lse = r.fused_lse.data();
  p.dlogits = fd.data();
  kernels::cross_entropy_fwd(p, nullptr);
  r.fused_dlogits = fd.bytes();
  return r;
}

// engine/cpu/loss on the (rounded) float logits; the backward uses the kernel's lse so that
// only the kernel's own arithmetic is compared.
void check_against_cpu(const Case& c, const Inputs& in, const Result& r) {
  const std::vector<float> x = in.logits.values();
  const float* w = c.weighted ? in.weights.data() : nullptr;
  std::vector<float> losses(c.rows), lse(c.rows), dx(c.rows * c.vocab);
  cpu::cross_entropy_fwd<float, std::int64_t>(x.data(), in.targets.data(), w, c.rows, c.vocab,
                                              kIgnore, losses.data(), lse.data());
  const test::Tolerance fwd_tol{3e-5, 3e-5};
  CHECK(test::compare(std::vector<double>(r.lse.begin(), r.lse.end()),
                      std::vector<double>(lse.begin(), lse.end()), fwd_tol) == "");
  CHECK(test::compare(std::vector<double>(r.losses.begin(), r.losses.end()),
                      std::vector<double>(losses.begin(), losses.end()), fwd_tol) == "");
  cpu::cross_entropy_bwd<float, std::int64_t>(in.dlosses.data(), x.data(), in.targets.data(),
                                              r.lse.data(), w, c.rows, c.vocab, kIgnore,
                                              dx.data());
  std::vector<double> want(dx.size());
  for (std::size_t i = 0; i < dx.size(); ++i)
    want[i] = c.dlogits == LossType::bf16 ? from_bf16(to_bf16(dx[i])) : dx[i];
  const test::Tolerance bwd_tol =
      c.dlogits == LossType::bf16 ? test::Tolerance{1e-6, 8e-3} : test::Tolerance{1e-7, 2e-6};
  CHECK(test::compare(std::vector<double>(r.dlogits_values.begin(), r.dlogits_values.end()), want,
                      bwd_tol) == "");
  CHECK(r.guards_intact);
  CHECK(r.fused_dlogits == r.dlogits);
  CHECK(r.fused_losses == r.losses);
  CHECK(r.fused_lse == r.lse);
}

}  // namespace

TEST_CASE("emu cross entropy matches the CPU reference on ragged shapes", "[emu][loss]") {
  const LossType bf = LossType::bf16, f32 = LossType::f32;
  const LossIndexType i64 = LossIndexType::i64, i32 = LossIndexType::i32;
  const std::vector<Case> cases = {
      {1, 1, bf, bf, i64, false, 0, false},      {31, 31, bf, f32, i32, true, 0, false},
      {32, 32, bf, bf, i64, true, 0, false},     {33, 33, f32, f32, i64, false, 1, false},
      {127, 127, bf, bf, i32, true, 3, false},   {128, 128, f32, bf, i64, true, 0, true},
      {129, 129, bf, bf, i64, false, 5, false},  {4, 5000, bf, bf, i64, true, 0, false},
      {3, 2100, f32, f32, i32, true, 2, false},  {5, 4101, bf, f32, i64, false, 1, true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.rows, c.vocab, static_cast<int>(c.logits), static_cast<int>(c.dlogits), c.shift,
            c.weighted, c.neg_inf);
    const Inputs in(c);
    Result first;
    for (Schedule s : kSchedules) {
      hone::emu::ScopedSchedule scoped(s, 17);
      const Result r = run(c, in);
      if (s == Schedule::fwd) {
        check_against_cpu(c, in, r);
        first = r;
        CHECK(run(c, in) == first);  // two runs, the same bits
      } else {
        CHECK(r == first);
      }
    }
  }
}

TEST_CASE("emu cross entropy gradient may overwrite the logits in place", "[emu][loss]") {
  const Case c{33, 1030, LossType::bf16, LossType::bf16, LossIndexType::i64, true, 0, false};
  const Inputs in(c);
  const Result want = run(c, in);
  Inputs inplace(c);
  kernels::CrossEntropyParams p = params(c, inplace);
  std::vector<float> losses(c.rows, kNaN), lse(c.rows, kNaN);
  p.losses = losses.data();
  p.lse = lse.data();
  p.dlogits = inplace.logits.data();
  kernels::cross_entropy_fwd(p, nullptr);
  CHECK(losses == want.losses);
  CHECK(lse == want.lse);
  CHECK(inplace.logits.bytes() == want.dlogits);
}

TEST_CASE("emu cross entropy scalar dloss and ignored rows", "[emu][loss]") {
  // dlosses null: g = dloss for every row, e.g. 1 / (number of counted rows) for a mean.
  const Case c{9, 40, LossType::f32, LossType::f32, LossIndexType::i64, false, 0, false};
  Inputs in(c);
  std::int64_t counted = 0;
  for (std::int64_t t : in.targets) counted += t != kIgnore;
  kernels::CrossEntropyParams p = params(c, in);
  p.dlosses = nullptr;
  p.dloss = 1.0f / static_cast<float>(counted);
  std::vector<float> losses(c.rows), lse(c.rows), dx(c.rows * c.vocab, kNaN);
  p.losses = losses.data();
  p.lse = lse.data();
  p.dlogits = dx.data();
  kernels::cross_entropy_fwd(p, nullptr);
  for (std::int64_t n = 0; n < c.rows; ++n) {
    double row_sum = 0, target_grad = 0;
    for (std::int64_t v = 0; v < c.vocab; ++v) row_sum += dx[n * c.vocab + v];
    if (in.targets[n] == kIgnore) {
      CHECK(losses[n] == 0.0f);
      for (std::int64_t v = 0; v < c.vocab; ++v) CHECK(dx[n * c.vocab + v] == 0.0f);
      continue;
    }
    target_grad = dx[n * c.vocab + in.targets[n]];
    CHECK(std::fabs(row_sum) < 1e-6);  // softmax − onehot sums to zero
    CHECK(target_grad < 0.0);
    CHECK(target_grad > -p.dloss);
  }
}

TEST_CASE("emu cross entropy rejects bad parameters", "[emu][loss]") {
  kernels::CrossEntropyParams p;
  p.rows = 2;
  p.vocab = 0;
  CHECK_THROWS_WITH(kernels::cross_entropy_fwd(p, nullptr),
                    Catch::Contains("vocab = 0; expected at least one class"));
  p.vocab = 4;
  p.rows = -1;
  CHECK_THROWS_WITH(kernels::cross_entropy_bwd(p, nullptr), Catch::Contains("rows = -1"));
  p.rows = 2;
  float x[8] = {};
  std::int64_t t[2] = {0, 1};
  float out[2];
  p.logits = x;
  p.targets = t;
  p.losses = out;
  CHECK_THROWS_WITH(kernels::cross_entropy_fwd(p, nullptr), Catch::Contains("lse is null"));
  p.lse = out;
  CHECK_THROWS_WITH(kernels::cross_entropy_bwd(p, nullptr), Catch::Contains("dlogits is null"));
  p.logits_type = LossType::f32;
  p.dlogits_type = LossType::bf16;
  p.dlogits = x;
  CHECK_THROWS_WITH(kernels::cross_entropy_bwd(p, nullptr),
                    Catch::Contains("dlogits aliases logits with a different dtype"));
}

TEST_CASE("emu cross entropy needs its barrier (mutation)", "[emu][loss]") {
  const Case c{3, 300, LossType::bf16, LossType::bf16, LossIndexType::i64, false, 0, false};
  const Inputs in(c);
  hone::emu::disable_barrier("ce.lse_partials");
  const Result broken = run(c, in);
  hone::emu::enable_all_barriers();
  const Result good = run(c, in);
  // Without the barrier the warps read partials not yet written (NaN-poisoned shared memory).
  CHECK_FALSE(broken == good);
  for (float l : good.lse) CHECK(std::isfinite(l));
}

// Optimizer kernels under the emulator against engine/cpu/optim: fused multi-tensor AdamW over
// ragged tensors (vector and scalar paths, more tensors than one launch takes, bf16 and f32
// gradients, the bf16 weight copy, a device gradient scale) and the two-pass gradient norm
// with its clip factor; bit-identical under the fwd/rev/rand schedules and across runs.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/optim.h"
#include "hone/dtype.h"
#include "kernels/emu/emu.h"
#include "kernels/optim/optim.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using test::random_floats;
using hone::emu::Schedule;
using kernels::AdamWTensor;
using kernels::OptimGradType;

namespace {

const Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};

// One tensor's host-side state: fp32 param/m/v, the gradient (as stored and as float), a bf16
// copy; `shift` floats of padding in front misalign the arrays (scalar path).
struct State {
  std::int64_t n, shift;
  std::vector<float> param, m, v, grad_f32, grad_value;
  std::vector<std::uint16_t> grad_bf16, copy;

  State(std::int64_t size, std::int64_t shift_elems, std::uint64_t seed, bool bf16)
      : n(size), shift(shift_elems) {
    param = random_floats(n + shift, seed, -1.0f, 1.0f);
    m = random_floats(n + shift, seed + 1, -0.1f, 0.1f);
    v = random_floats(n + shift, seed + 2, 0.0f, 0.01f);
    grad_f32 = random_floats(n + shift, seed + 3, -2.0f, 2.0f);
    grad_bf16.resize(grad_f32.size());
    for (std::size_t i = 0; i < grad_f32.size(); ++i) {
      grad_bf16[i] = to_bf16(grad_f32[i]).bits;
      if (bf16) grad_f32[i] = from_bf16(hone::bf16{grad_bf16[i]});
    }
    grad_value.assign(grad_f32.begin() + shift, grad_f32.end());
    copy.assign(n + shift + 4, 0xFFFFu);
  }
  AdamWTensor view(bool bf16) {
    AdamWTensor t;
    t.param = param.data() + shift;
    t.m = m.data() + shift;
    t.v = v.data() + shift;
    t.grad = bf16 ? static_cast<const void*>(grad_bf16.data() + shift) : grad_f32.data() + shift;
    t.param_bf16 = copy.data() + shift;
    t.n = n;
    return t;
  }
  std::vector<float> values(const std::vector<float>& a) const {
    return std::vector<float>(a.begin() + shift, a.begin() + shift + n);
  }
};

std::vector<State> make_states(const std::vector<std::int64_t>& sizes, bool bf16) {
  std::vector<State> s;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    s.emplace_back(sizes[i], i % 3 == 2 ? 1 : 0, 1000 + 10 * i, bf16);
  return s;
}

std::vector<AdamWTensor> views(std::vector<State>& s, bool bf16) {
  std::vector<AdamWTensor> v;
  for (State& x : s) v.push_back(x.view(bf16));
  return v;
}

const std::vector<std::int64_t> kSizes = {1, 31, 32, 33, 127, 128, 129, 4097, 9000, 0, 5};

// The kernel's norm and clip factor for the states' gradients.
std::pair<float, float> device_norm(std::vector<State>& s, bool bf16, double max_norm) {
  const std::vector<AdamWTensor> t = views(s, bf16);
  const int count = static_cast<int>(t.size());
  std::vector<double> ws(kernels::grad_norm_workspace_bytes(t.data(), count) / 8,
                         std::nan(""));
  float norm = std::nanf(""), clip = std::nanf("");
  kernels::GradNormParams p;
  p.tensors = t.data();
  p.count = count;
  p.grad_type = bf16 ? OptimGradType::bf16 : OptimGradType::f32;
  p.workspace = ws.data();
  p.norm = &norm;
  p.clip_scale = &clip;
  p.max_norm = max_norm;
  kernels::grad_norm(p, nullptr);
  return {norm, clip};
}

}  // namespace

TEST_CASE("emu fused AdamW matches the CPU reference over many ragged tensors", "[emu][optim]") {
  for (bool bf16 : {true, false}) {
    for (bool scaled : {false, true}) {
      CAPTURE(bf16, scaled);
      std::vector<std::int64_t> sizes = kSizes;
      if (scaled) sizes.insert(sizes.end(), 30, 7);  // 41 tensors: two launches
      std::vector<std::vector<float>> first_params;
      for (Schedule sch : kSchedules) {
        hone::emu::ScopedSchedule scoped(sch, 5);
        std::vector<State> s = make_states(sizes, bf16);
        std::vector<State> ref = make_states(sizes, bf16);
        const float scale = 0.37f;
        for (std::int64_t step = 1; step <= 3; ++step) {
          kernels::AdamWParams p;
          const std::vector<AdamWTensor> t = views(s, bf16);
          p.tensors = t.data();
          p.count = static_cast<int>(t.size());
          p.grad_type = bf16 ? OptimGradType::bf16 : OptimGradType::f32;
          p.lr = 1e-2;
          p.weight_decay = 0.1;
          p.step = step;
          p.grad_scale = scaled ? &scale : nullptr;
          kernels::adamw_step(p, nullptr);
          for (State& r : ref) {
            std::vector<float> g = r.grad_value;
            if (scaled)
              for (float& x : g) x *= scale;
            cpu::adamw_step<float>(r.param.data() + r.shift, g.data(), r.m.data() + r.shift,
                                   r.v.data() + r.shift, r.n,
                                   {p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, step});
          }
        }
        std::vector<std::vector<float>> params;
        for (std::size_t i = 0; i < s.size(); ++i) {
          CAPTURE(i, s[i].n);
          // The kernel and the reference compute the same f32 operations in the same order.
          CHECK(s[i].values(s[i].param) == ref[i].values(ref[i].param));
          CHECK(s[i].values(s[i].m) == ref[i].values(ref[i].m));
          CHECK(s[i].values(s[i].v) == ref[i].values(ref[i].v));
          // The bf16 copy is the rounded fp32 weight, and nothing past the end is written.
          for (std::int64_t e = 0; e < s[i].n; ++e)
            REQUIRE(s[i].copy[s[i].shift + e] == to_bf16(s[i].param[s[i].shift + e]).bits);
          CHECK(s[i].copy[s[i].shift + s[i].n] == 0xFFFFu);
          if (s[i].shift) CHECK(s[i].copy[0] == 0xFFFFu);
          params.push_back(s[i].param);
        }
        if (sch == Schedule::fwd) first_params = params;
        else CHECK(params == first_params);
      }
    }
  }
}

TEST_CASE("emu gradient norm and clip factor match ops::grad_norm's value", "[emu][optim]") {
  for (bool bf16 : {true, false}) {
    std::vector<std::int64_t> sizes = kSizes;
    sizes.insert(sizes.end(), 25, 300);  // more tensors than one launch takes
    std::vector<State> s = make_states(sizes, bf16);
    double sum = 0.0;  // the CPU reference: tensors in order, each by grad_sum_squares
    for (const State& x : s) sum += cpu::grad_sum_squares<float>(x.grad_value.data(), x.n);
    const double want = std::sqrt(sum);
    std::pair<float, float> first;
    for (Schedule sch : kSchedules) {
      hone::emu::ScopedSchedule scoped(sch, 9);
      CAPTURE(bf16, static_cast<int>(sch));
      const auto got = device_norm(s, bf16, 1.0);
      CHECK(std::fabs(got.first - want) <= 1e-6 * want);
      CHECK(std::fabs(got.second - 1.0 / (want + 1e-6)) <= 1e-6 / want);
      if (sch == Schedule::fwd) {
        first = got;
        const auto again = device_norm(s, bf16, 1.0);
        CHECK(std::memcmp(&again, &first, sizeof first) == 0);
      } else {
        CHECK(std::memcmp(&got, &first, sizeof first) == 0);
      }
    }
    // Below max_norm nothing is clipped.
    CHECK(device_norm(s, bf16, 10 * want).second == 1.0f);
  }
  // No elements at all: norm 0, factor 1.
  std::vector<State> empty = make_states({0, 0}, true);
  const auto z = device_norm(empty, true, 1.0);
  CHECK(z.first == 0.0f);
  CHECK(z.second == 1.0f);
}

TEST_CASE("emu gradient norm needs its barrier (mutation)", "[emu][optim]") {
  std::vector<State> s = make_states({5000, 300}, false);
  const auto good = device_norm(s, false, 1.0);
  hone::emu::disable_barrier("grad_norm.warp_sums");
  const auto broken = device_norm(s, false, 1.0);
  hone::emu::enable_all_barriers();
  CHECK_FALSE(broken.first == good.first);
}

TEST_CASE("emu optimizer kernels reject bad parameters", "[emu][optim]") {
  std::vector<State> s = make_states({10}, false);
  std::vector<AdamWTensor> t = views(s, false);
  kernels::AdamWParams p;
  p.tensors = t.data();
  p.count = 1;
  p.grad_type = OptimGradType::f32;
  p.step = 0;
  CHECK_THROWS_WITH(kernels::adamw_step(p, nullptr), Catch::Contains("step = 0"));
  p.step = 1;
  p.beta2 = 1.0;
  CHECK_THROWS_WITH(kernels::adamw_step(p, nullptr), Catch::Contains("beta2 = 1"));
  p.beta2 = 0.999;
  t[0].m = nullptr;
  CHECK_THROWS_WITH(kernels::adamw_step(p, nullptr),
                    Catch::Contains("tensors[0] has a null param, m, v or grad"));
  t = views(s, false);
  float norm = 0;
  kernels::GradNormParams g;
  g.tensors = t.data();
  g.count = 1;
  g.norm = &norm;
  CHECK_THROWS_WITH(kernels::grad_norm(g, nullptr), Catch::Contains("workspace is null"));
  g.clip_scale = &norm;
  g.max_norm = 0;
  CHECK_THROWS_WITH(kernels::grad_norm(g, nullptr), Catch::Contains("max_norm = 0"));
}

TEST_CASE("emu AdamW stays within a few ulp of the CPU reference over 100 steps", "[emu][optim]") {
  // Fresh gradients every step (from the step's seed), f32 and bf16; the master weights are
  // compared in units in the last place of fp32.
  for (bool bf16 : {false, true}) {
    CAPTURE(bf16);
    const std::vector<std::int64_t> sizes = {33, 1000, 4097};
    std::vector<State> s = make_states(sizes, bf16), ref = make_states(sizes, bf16);
    for (std::int64_t step = 1; step <= 100; ++step) {
      for (std::size_t i = 0; i < s.size(); ++i) {
        const std::vector<float> g = random_floats(s[i].n + s[i].shift, 77 * step + i, -1.0f, 1.0f);
        for (State* st : {&s[i], &ref[i]})
          for (std::size_t e = 0; e < g.size(); ++e) {
            st->grad_bf16[e] = to_bf16(g[e]).bits;
            st->grad_f32[e] = bf16 ? from_bf16(hone::bf16{st->grad_bf16[e]}) : g[e];
          }
      }
      kernels::AdamWParams p;
      const std::vector<AdamWTensor> t = views(s, bf16);
      p.tensors = t.data();
      p.count = static_cast<int>(t.size());
      p.grad_type = bf16 ? OptimGradType::bf16 : OptimGradType::f32;
      p.lr = 1e-3;
      p.weight_decay = 0.01;
      p.step = step;
      kernels::adamw_step(p, nullptr);
      for (State& r : ref)
        cpu::adamw_step<float>(r.param.data() + r.shift, r.grad_f32.data() + r.shift, r.m.data() + r.shift,
                               r.v.data() + r.shift, r.n, {p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, step});
    }
    // Differences in fp32 ulps of the weight's magnitude, floored at 2⁻⁷ (weights that pass
    // near zero on the way have tiny ulps but the updates' rounding, lr-sized, still applies).
    double worst = 0, mean = 0;
    std::int64_t count = 0;
    for (std::size_t i = 0; i < s.size(); ++i)
      for (std::int64_t e = 0; e < s[i].n; ++e) {
        const float a = s[i].param[s[i].shift + e], b = ref[i].param[ref[i].shift + e];
        const float mag = std::max(std::abs(b), 1.0f / 128);
        const double ulp = std::nextafter(mag, 2 * mag) - mag;
        const double d = std::abs(static_cast<double>(a) - b) / ulp;
        worst = std::max(worst, d);
        mean += d;
        ++count;
      }
    mean /= static_cast<double>(count);
    INFO("after 100 steps: largest difference " << worst << " ulp, mean " << mean << " ulp");
    // The kernel follows the reference's f64 arithmetic; fused multiply-adds (the library's
    // x86-64-v3 build, a GPU) move a rounded result by an ulp now and then.
    CHECK(worst <= 2);
    CHECK(mean <= 0.05);
  }
}

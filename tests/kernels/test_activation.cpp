// The activation kernels (kernels/activation) under the emulator against engine/cpu: ragged
// sizes, all three schedules with bit-identical results, vector and scalar paths, aliasing,
// skipped outputs, saturation and bad arguments.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/activation.h"
#include "kernels/activation/activation.h"
#include "kernels/emu/emu.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using hone::emu::Schedule;

namespace {

const Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};
// Ragged sizes plus one that spans several blocks and ends in a tail of 5 scalar elements.
const std::vector<std::int64_t> kSizes = {1, 31, 32, 33, 127, 128, 129, 8 * 256 * 2 + 13};

std::vector<std::uint16_t> bits(const Tensor& t) {
  std::vector<std::uint16_t> b(static_cast<std::size_t>(t.numel()));
  std::memcpy(b.data(), t.raw(), b.size() * 2);
  return b;
}

// Distance in bf16 units in the last place (same-sign values; 0 for equal bits).
int ulp_distance(std::uint16_t a, std::uint16_t b) {
  auto ordered = [](std::uint16_t v) { return v & 0x8000 ? -(v & 0x7fff) : (v & 0x7fff); };
  return std::abs(ordered(a) - ordered(b));
}

// The kernel output against the f32 reference rounded to bf16: within the bf16 tolerance and at
// most one bf16 ulp apart (fp32 math differs from the double reference only near a rounding tie).
void check_close(const Tensor& actual, const Tensor& reference_f32, const std::string& what) {
  const Tensor ref = reference_f32.to(DType::bf16);
  INFO(what);
  REQUIRE(test::compare(actual, ref) == "");
  const auto a = bits(actual), r = bits(ref);
  int worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, ulp_distance(a[i], r[i]));
  CHECK(worst <= 1);
}

// Runs `body` under every schedule and twice under the first; all outputs bit-identical.
template <class Body>
std::vector<std::uint16_t> same_under_schedules(Body&& body) {
  std::vector<std::uint16_t> first;
  for (int run = 0; run < 4; ++run) {
    hone::emu::ScopedSchedule scoped(kSchedules[run == 3 ? 0 : run], 17 + run);
    const std::vector<std::uint16_t> out = body();
    if (run == 0)
      first = out;
    else
      REQUIRE(out == first);
  }
  return first;
}

Tensor concat_bits(const Tensor& a, const Tensor& b) {
  Tensor c = Tensor::empty({a.numel() + b.numel()}, DType::bf16);
  std::memcpy(c.raw(), a.raw(), a.nbytes());
  std::memcpy(static_cast<char*>(c.raw()) + a.nbytes(), b.raw(), b.nbytes());
  return c;
}

}  // namespace

TEST_CASE("swiglu forward and backward kernels match engine/cpu on ragged sizes", "[emu]") {
  for (std::int64_t n : kSizes) {
    const Tensor gate = test::random_tensor({n}, DType::bf16, 1 + n, -6, 6);
    const Tensor up = test::random_tensor({n}, DType::bf16, 2 + n, -2, 2);
    const Tensor dout = test::random_tensor({n}, DType::bf16, 3 + n);
    const Tensor g32 = gate.to(DType::f32), u32 = up.to(DType::f32), d32 = dout.to(DType::f32);
    Tensor ref = Tensor::empty({n}, DType::f32);
    cpu::swiglu_fwd<float>(g32.data<float>(), u32.data<float>(), n, ref.data<float>());
    Tensor ref_dg = Tensor::empty({n}, DType::f32), ref_du = Tensor::empty({n}, DType::f32);
    cpu::swiglu_bwd<float>(d32.data<float>(), g32.data<float>(), u32.data<float>(), n,
                           ref_dg.data<float>(), ref_du.data<float>());

    Tensor out;
    same_under_schedules([&] {
      out = test::poisoned({n}, DType::bf16);
      kernels::swiglu_fwd({gate.raw(), up.raw(), out.raw(), n}, nullptr);
      return bits(out);
    });
    check_close(out, ref, "swiglu_fwd n = " + std::to_string(n));

    Tensor dg, du;
    same_under_schedules([&] {
      dg = test::poisoned({n}, DType::bf16);
      du = test::poisoned({n}, DType::bf16);
      kernels::swiglu_bwd({dout.raw(), gate.raw(), up.raw(), dg.raw(), du.raw(), n}, nullptr);
      return bits(concat_bits(dg, du));
    });
    check_close(dg, ref_dg, "swiglu_bwd dgate n = " + std::to_string(n));
    check_close(du, ref_du, "swiglu_bwd dup n = " + std::to_string(n));
  }
}

TEST_CASE("gelu forward and backward kernels match engine/cpu on ragged sizes", "[emu]") {
  for (std::int64_t n : kSizes) {
    const Tensor x = test::random_tensor({n}, DType::bf16, 5 + n, -5, 5);
    const Tensor dy = test::random_tensor({n}, DType::bf16, 6 + n);
    const Tensor x32 = x.to(DType::f32), dy32 = dy.to(DType::f32);
    Tensor ref = Tensor::empty({n}, DType::f32), ref_dx = Tensor::empty({n}, DType::f32);
    cpu::gelu_fwd<float>(x32.data<float>(), n, ref.data<float>());
    cpu::gelu_bwd<float>(dy32.data<float>(), x32.data<float>(), n, ref_dx.data<float>());

    Tensor y, dx;
    same_under_schedules([&] {
      y = test::poisoned({n}, DType::bf16);
      kernels::gelu_fwd({x.raw(), y.raw(), n}, nullptr);
      return bits(y);
    });
    check_close(y, ref, "gelu_fwd n = " + std::to_string(n));
    same_under_schedules([&] {
      dx = test::poisoned({n}, DType::bf16);
      kernels::gelu_bwd({dy.raw(), x.raw(), dx.raw(), n}, nullptr);
      return bits(dx);
    });
    check_close(dx, ref_dx, "gelu_bwd n = " + std::to_string(n));
  }
}

TEST_CASE("activation kernels: the scalar path for unaligned pointers gives the same bits",
          "[emu]") {
  // Element 1 of a tensor is 2 bytes past a 64-byte boundary: no pointer is 16-byte aligned, so
  // every element takes the scalar path; the math per element is the same as the vector path's.
  const std::int64_t n = 300;
  const Tensor x = test::random_tensor({n + 1}, DType::bf16, 41, -4, 4);
  const Tensor u = test::random_tensor({n + 1}, DType::bf16, 42, -4, 4);
  const Tensor d = test::random_tensor({n + 1}, DType::bf16, 43);
  auto at1 = [](const Tensor& t) { return static_cast<void*>(static_cast<char*>(t.raw()) + 2); };
  const Tensor xa = x.slice(1, n + 1).clone(), ua = u.slice(1, n + 1).clone(),
               da = d.slice(1, n + 1).clone();

  const Tensor y_vec = test::poisoned({n}, DType::bf16);
  const Tensor y_sc = test::poisoned({n + 1}, DType::bf16);
  kernels::swiglu_fwd({xa.raw(), ua.raw(), y_vec.raw(), n}, nullptr);
  kernels::swiglu_fwd({at1(x), at1(u), at1(y_sc), n}, nullptr);
  CHECK(bits(y_sc.slice(1, n + 1).clone()) == bits(y_vec));

  const Tensor g_vec = test::poisoned({n}, DType::bf16);
  const Tensor g_sc = test::poisoned({n + 1}, DType::bf16);
  kernels::gelu_bwd({da.raw(), xa.raw(), g_vec.raw(), n}, nullptr);
  kernels::gelu_bwd({at1(d), at1(x), at1(g_sc), n}, nullptr);
  CHECK(bits(g_sc.slice(1, n + 1).clone()) == bits(g_vec));
  CHECK(test::all_finite(g_vec));
}

TEST_CASE("activation kernels work in place and skip null outputs", "[emu]") {
  const std::int64_t n = 133;
  const Tensor gate = test::random_tensor({n}, DType::bf16, 51, -3, 3);
  const Tensor up = test::random_tensor({n}, DType::bf16, 52);
  const Tensor dout = test::random_tensor({n}, DType::bf16, 53);

  const Tensor out = test::poisoned({n}, DType::bf16);
  kernels::swiglu_fwd({gate.raw(), up.raw(), out.raw(), n}, nullptr);
  const Tensor g2 = gate.clone();
  kernels::swiglu_fwd({g2.raw(), up.raw(), g2.raw(), n}, nullptr);  // out = gate
  CHECK(bits(g2) == bits(out));

  const Tensor dg = test::poisoned({n}, DType::bf16), du = test::poisoned({n}, DType::bf16);
  kernels::swiglu_bwd({dout.raw(), gate.raw(), up.raw(), dg.raw(), du.raw(), n}, nullptr);
  const Tensor dg_only = test::poisoned({n}, DType::bf16);
  kernels::swiglu_bwd({dout.raw(), gate.raw(), up.raw(), dg_only.raw(), nullptr, n}, nullptr);
  CHECK(bits(dg_only) == bits(dg));
  const Tensor d2 = dout.clone();  // dup written over dout
  kernels::swiglu_bwd({d2.raw(), gate.raw(), up.raw(), nullptr, d2.raw(), n}, nullptr);
  CHECK(bits(d2) == bits(du));

  const Tensor x = test::random_tensor({n}, DType::bf16, 54, -3, 3);
  const Tensor y = test::poisoned({n}, DType::bf16);
  kernels::gelu_fwd({x.raw(), y.raw(), n}, nullptr);
  const Tensor x2 = x.clone();
  kernels::gelu_fwd({x2.raw(), x2.raw(), n}, nullptr);
  CHECK(bits(x2) == bits(y));
}

TEST_CASE("activation kernels stay finite and exact at saturation", "[emu]") {
  // Very negative gates: e^(−g) overflows, σ → 0, no NaN. Huge |x| in GELU: x³ overflows in fp32,
  // tanh saturates, y = x for x > 0 and −0 for x < 0, dy/dx = 1 or 0.
  const std::vector<double> g = {-1e30, -200, -150, 88, 200, 1e30, 3e38, -3e38};
  const std::int64_t n = static_cast<std::int64_t>(g.size());
  const Tensor gate = test::values({n}, g, DType::bf16);
  const Tensor up = test::values({n}, std::vector<double>(g.size(), 0.5), DType::bf16);
  const Tensor one = test::values({n}, std::vector<double>(g.size(), 1.0), DType::bf16);
  const Tensor out = test::poisoned({n}, DType::bf16);
  kernels::swiglu_fwd({gate.raw(), up.raw(), out.raw(), n}, nullptr);
  const Tensor dg = test::poisoned({n}, DType::bf16), du = test::poisoned({n}, DType::bf16);
  kernels::swiglu_bwd({one.raw(), gate.raw(), up.raw(), dg.raw(), du.raw(), n}, nullptr);
  const auto o = out.to_vector<double>(), dgv = dg.to_vector<double>();
  const auto duv = du.to_vector<double>();
  const auto gr = gate.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("gate " << gr[i]);
    if (gr[i] < 0) {
      CHECK(o[i] == 0.0);
      CHECK(dgv[i] == 0.0);
      CHECK(duv[i] == 0.0);
    } else {
      CHECK(o[i] == 0.5 * gr[i]);  // silu(g) = g once σ(g) rounds to 1
      CHECK(dgv[i] == 0.5);
      CHECK(duv[i] == gr[i]);
    }
  }

  const Tensor y = test::poisoned({n}, DType::bf16), dx = test::poisoned({n}, DType::bf16);
  kernels::gelu_fwd({gate.raw(), y.raw(), n}, nullptr);
  kernels::gelu_bwd({one.raw(), gate.raw(), dx.raw(), n}, nullptr);
  const auto yv = y.to_vector<double>(), dxv = dx.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("x " << gr[i]);
    CHECK(yv[i] == (gr[i] > 0 ? gr[i] : 0.0));
    CHECK(dxv[i] == (gr[i] > 0 ? 1.0 : 0.0));
  }
}

TEST_CASE("activation launchers reject bad arguments with the field named", "[emu]") {
  const Tensor a = test::random_tensor({4}, DType::bf16, 61);
  const Tensor b = Tensor::empty({4}, DType::bf16);
  CHECK_THROWS_WITH(kernels::swiglu_fwd({a.raw(), a.raw(), b.raw(), -3}, nullptr),
                    Catch::Contains("[swiglu_fwd]") && Catch::Contains("n = -3"));
  CHECK_THROWS_WITH(kernels::swiglu_fwd({a.raw(), nullptr, b.raw(), 4}, nullptr),
                    Catch::Contains("'up' is null"));
  CHECK_THROWS_WITH(kernels::swiglu_bwd({nullptr, a.raw(), a.raw(), b.raw(), nullptr, 4}, nullptr),
                    Catch::Contains("[swiglu_bwd]") && Catch::Contains("'dout' is null"));
  CHECK_THROWS_WITH(kernels::gelu_fwd({a.raw(), nullptr, 4}, nullptr),
                    Catch::Contains("[gelu_fwd]") && Catch::Contains("'y' is null"));
  CHECK_THROWS_WITH(kernels::gelu_bwd({a.raw(), a.raw(), b.raw(), -1}, nullptr),
                    Catch::Contains("[gelu_bwd]") && Catch::Contains("n = -1"));
  // n = 0 touches nothing, even through null pointers.
  CHECK_NOTHROW(kernels::gelu_fwd({nullptr, nullptr, 0}, nullptr));
}

// The element-wise kernels (kernels/elementwise) under the emulator against engine/cpu: add,
// scale and bias_add in f32 and bf16 on ragged sizes, vector and scalar paths, add in place;
// mul in every f32/bf16 mix and the dropout mask, bit for bit; bias_bwd's deterministic
// reduction (same bits under every schedule and at any alignment, f32 and bf16 gradients); bad
// arguments.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/elementwise.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/emu/emu.h"
#include "ops/ops.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using hone::emu::Schedule;
using kernels::ElementwiseType;

namespace {

const Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};
// Ragged sizes plus one that spans several blocks and ends in a scalar tail.
const std::vector<std::int64_t> kSizes = {1, 31, 32, 33, 127, 128, 129, 8 * 256 * 2 + 13};

std::vector<unsigned char> bytes(const Tensor& t) {
  std::vector<unsigned char> b(t.nbytes());
  std::memcpy(b.data(), t.raw(), b.size());
  return b;
}

ElementwiseType type_of(DType t) { return t == DType::f32 ? ElementwiseType::f32 : ElementwiseType::bf16; }

// Runs `body` under every schedule and twice under the first; all outputs bit-identical.
template <class Body>
std::vector<unsigned char> same_under_schedules(Body&& body) {
  std::vector<unsigned char> first;
  for (int run = 0; run < 4; ++run) {
    hone::emu::ScopedSchedule scoped(kSchedules[run == 3 ? 0 : run], 29 + run);
    const std::vector<unsigned char> out = body();
    if (run == 0)
      first = out;
    else
      REQUIRE(out == first);
  }
  return first;
}

// Distance in bf16 units in the last place (0 for equal bits).
int ulp_distance(std::uint16_t a, std::uint16_t b) {
  auto ordered = [](std::uint16_t v) { return v & 0x8000 ? -(v & 0x7fff) : (v & 0x7fff); };
  return std::abs(ordered(a) - ordered(b));
}

// A map's output against the f32 reference: f32 within f32 tolerance; bf16 at most one ulp from
// the reference rounded to bf16 (fp32 math in another order differs only near a rounding tie).
void check_map(const Tensor& actual, const Tensor& ref_f32, const std::string& what) {
  INFO(what);
  if (actual.dtype() == DType::f32) {
    REQUIRE(test::compare(actual, ref_f32) == "");
    return;
  }
  const Tensor ref = ref_f32.to(DType::bf16);
  REQUIRE(test::compare(actual, ref) == "");
  const auto* a = static_cast<const std::uint16_t*>(actual.raw());
  const auto* r = static_cast<const std::uint16_t*>(ref.raw());
  int worst = 0;
  for (std::int64_t i = 0; i < actual.numel(); ++i) worst = std::max(worst, ulp_distance(a[i], r[i]));
  CHECK(worst <= 1);
}

}  // namespace

TEST_CASE("add and scale kernels match engine/cpu on ragged sizes", "[emu]") {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (std::int64_t n : kSizes) {
      const std::string what = std::string(dtype_name(dt)) + " n = " + std::to_string(n);
      const Tensor dst0 = test::random_tensor({n}, dt, 1 + n, -2, 2);
      const Tensor src = test::random_tensor({n}, dt, 2 + n, -2, 2);
      const float alpha = -0.75f;
      const Tensor ref = dst0.to(DType::f32), src32 = src.to(DType::f32);
      cpu::add_<float>(ref.data<float>(), src32.data<float>(), n, alpha);
      Tensor out;
      same_under_schedules([&] {
        out = dst0.clone();
        kernels::add({out.raw(), src.raw(), type_of(dt), alpha, n}, nullptr);
        return bytes(out);
      });
      check_map(out, ref, "add " + what);

      const Tensor sref = dst0.to(DType::f32);
      cpu::scale_<float>(sref.data<float>(), n, 3.0f);
      same_under_schedules([&] {
        out = dst0.clone();
        kernels::scale({out.raw(), type_of(dt), 3.0f, n}, nullptr);
        return bytes(out);
      });
      check_map(out, sref, "scale " + what);
    }
  }
}

TEST_CASE("add kernel accumulates a tensor into itself", "[emu]") {
  const std::int64_t n = 301;
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor x = test::random_tensor({n}, dt, 7, -3, 3);
    const Tensor ref = x.to(DType::f32);
    cpu::add_<float>(ref.data<float>(), ref.data<float>(), n, 0.5f);
    const Tensor out = x.clone();
    kernels::add({out.raw(), out.raw(), type_of(dt), 0.5f, n}, nullptr);
    check_map(out, ref, std::string("x += 0.5 x, ") + dtype_name(dt));
  }
}

TEST_CASE("mul kernel matches engine/cpu bit for bit in every f32/bf16 mix", "[emu]") {
  // One fp32 product per element, rounded once: the f32 reference rounded to x's dtype exactly.
  for (DType xt : {DType::f32, DType::bf16})
    for (DType mt : {DType::f32, DType::bf16})
      for (std::int64_t n : kSizes) {
        const std::string what = std::string("x ") + dtype_name(xt) + ", m " + dtype_name(mt) +
                                 ", n = " + std::to_string(n);
        INFO(what);
        const Tensor x0 = test::random_tensor({n}, xt, 41 + n, -3, 3);
        const Tensor m = test::random_tensor({n}, mt, 42 + n, -2, 2);
        const Tensor ref = x0.to(DType::f32), m32 = m.to(DType::f32);
        cpu::mul_<float>(ref.data<float>(), m32.data<float>(), n);
        Tensor out;
        same_under_schedules([&] {
          out = x0.clone();
          kernels::mul({out.raw(), m.raw(), type_of(xt), type_of(mt), n}, nullptr);
          return bytes(out);
        });
        CHECK(bytes(out) == bytes(ref.to(xt)));
      }
}

TEST_CASE("mul kernel: the scalar path for unaligned pointers and x as m give the same bits", "[emu]") {
  const std::int64_t n = 8 * 37 + 5;
  for (DType xt : {DType::f32, DType::bf16})
    for (DType mt : {DType::f32, DType::bf16}) {
      INFO("x " << dtype_name(xt) << ", m " << dtype_name(mt));
      const Tensor x = test::random_tensor({n + 1}, xt, 51, -2, 2);
      const Tensor m = test::random_tensor({n + 1}, mt, 52, -2, 2);
      const Tensor xa = x.slice(1, n + 1).clone(), ma = m.slice(1, n + 1).clone();
      kernels::mul({xa.raw(), ma.raw(), type_of(xt), type_of(mt), n}, nullptr);
      // One element in, no pointer is 16-byte aligned: every element takes the scalar path.
      const Tensor xs = x.clone(), ms = m.clone();
      auto at1 = [](const Tensor& t) {
        return static_cast<void*>(static_cast<char*>(t.raw()) + dtype_size(t.dtype()));
      };
      kernels::mul({at1(xs), at1(ms), type_of(xt), type_of(mt), n}, nullptr);
      CHECK(bytes(xs.slice(1, n + 1).clone()) == bytes(xa));
      CHECK(bytes(xs.slice(0, 1).clone()) == bytes(x.slice(0, 1).clone()));  // untouched
    }
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor x = test::random_tensor({n}, dt, 53, -2, 2);
    const Tensor ref = x.to(DType::f32);
    cpu::mul_<float>(ref.data<float>(), ref.data<float>(), n);
    kernels::mul({x.raw(), x.raw(), type_of(dt), type_of(dt), n}, nullptr);
    CHECK(bytes(x) == bytes(ref.to(dt)));
  }
}

TEST_CASE("dropout_mask kernel matches engine/cpu on Philox uniforms, ties kept", "[emu]") {
  for (const float p : {0.0f, 0.1f, 0.25f, 0.5f, 0.9f})
    for (std::int64_t n : kSizes) {
      INFO("p " << p << " n = " << n);
      // Thresholds that are floats: the kernel compares in f32 what the CPU compares in double.
      const Tensor u0 = Tensor::empty({n}, DType::f32);
      ops::uniform_(u0, 5, static_cast<std::uint64_t>(n));
      const float keep = static_cast<float>(1.0 / (1.0 - p));
      const Tensor ref = u0.clone();
      cpu::dropout_mask_<float>(ref.data<float>(), n, p, keep);
      Tensor out;
      same_under_schedules([&] {
        out = u0.clone();
        kernels::dropout_mask({out.data<float>(), p, keep, n}, nullptr);
        return bytes(out);
      });
      CHECK(bytes(out) == bytes(ref));
    }
  // Equal to the threshold keeps, one float below drops, on the vector and the scalar path.
  std::vector<float> v(19);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = i % 2 ? 0.375f : std::nextafter(0.375f, 0.0f);
  const Tensor u = Tensor::from_vector<float>({19}, v);
  kernels::dropout_mask({u.data<float>(), 0.375f, 1.6f, 19}, nullptr);
  const std::vector<float> got = u.to_vector<float>();
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == (i % 2 ? 1.6f : 0.0f));
}

TEST_CASE("bias_add kernel matches engine/cpu for ragged rows and features", "[emu]") {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (std::int64_t features : {1, 7, 8, 33, 128, 129}) {
      for (std::int64_t rows : {1, 5, 33}) {
        const std::string what = std::string(dtype_name(dt)) + " rows " + std::to_string(rows) +
                                 " features " + std::to_string(features);
        const Tensor x0 = test::random_tensor({rows, features}, dt, 11 + rows, -2, 2);
        const Tensor b = test::random_tensor({features}, dt, 12 + features, -2, 2);
        const Tensor ref = x0.to(DType::f32), b32 = b.to(DType::f32);
        cpu::bias_add_<float>(ref.data<float>(), b32.data<float>(), rows, features);
        Tensor out;
        same_under_schedules([&] {
          out = x0.clone();
          kernels::bias_add({out.raw(), b.raw(), type_of(dt), rows, features}, nullptr);
          return bytes(out);
        });
        check_map(out, ref, "bias_add " + what);
      }
    }
  }
}

TEST_CASE("element-wise kernels: the scalar path for unaligned pointers gives the same bits",
          "[emu]") {
  // One element past a 64-byte boundary no pointer is 16-byte aligned: every element takes the
  // scalar path, whose per-element math is the vector path's.
  for (DType dt : {DType::f32, DType::bf16}) {
    const std::int64_t rows = 9, features = 40, n = rows * features;
    const Tensor x = test::random_tensor({n + 1}, dt, 21, -2, 2);
    const Tensor y = test::random_tensor({n + 1}, dt, 22, -2, 2);
    const Tensor b = test::random_tensor({features + 1}, dt, 23, -2, 2);
    const std::size_t es = dtype_size(dt);
    auto at1 = [es](const Tensor& t) { return static_cast<void*>(static_cast<char*>(t.raw()) + es); };
    const Tensor xa = x.slice(1, n + 1).clone(), ya = y.slice(1, n + 1).clone(),
                 ba = b.slice(1, features + 1).clone();

    const Tensor xs = x.clone();
    kernels::add({xa.raw(), ya.raw(), type_of(dt), 1.5f, n}, nullptr);
    kernels::add({at1(xs), at1(y), type_of(dt), 1.5f, n}, nullptr);
    CHECK(bytes(xs.slice(1, n + 1).clone()) == bytes(xa));

    const Tensor xb = x.clone(), xc = x.slice(1, n + 1).clone();
    kernels::bias_add({xc.raw(), ba.raw(), type_of(dt), rows, features}, nullptr);
    kernels::bias_add({at1(xb), at1(b), type_of(dt), rows, features}, nullptr);
    CHECK(bytes(xb.slice(1, n + 1).clone()) == bytes(xc));
  }
}

TEST_CASE("bias_bwd kernel reduces deterministically and matches engine/cpu", "[emu]") {
  // rows 1 .. 2100: one slot, a partial last slot, the 128-slot cap with empty trailing slots.
  for (DType dt : {DType::f32, DType::bf16}) {
    for (DType gt : {DType::f32, DType::bf16}) {
      if (dt == DType::f32 && gt == DType::bf16) continue;
      for (std::int64_t rows : {1, 17, 33, 129, 2049}) {
        for (std::int64_t features : {1, 31, 257}) {
          const std::string what = std::string("dy ") + dtype_name(dt) + ", db " + dtype_name(gt) +
                                   ", rows " + std::to_string(rows) + ", features " +
                                   std::to_string(features);
          INFO(what);
          const Tensor dy = test::random_tensor({rows, features}, dt, 31 + rows, -1, 1);
          const Tensor db0 = test::random_tensor({features}, gt, 32 + features, -1, 1);
          const Tensor ref = db0.to(DType::f32), dy32 = dy.to(DType::f32);
          cpu::bias_bwd<float>(dy32.data<float>(), ref.data<float>(), rows, features);

          const std::size_t ws_bytes = kernels::bias_bwd_workspace_bytes(rows, features);
          CHECK(ws_bytes == static_cast<std::size_t>(kernels::bias_bwd_slots(rows) * features * 4));
          Tensor db;
          same_under_schedules([&] {
            db = db0.clone();
            const Tensor ws = test::poisoned({static_cast<std::int64_t>(ws_bytes / 4)}, DType::f32);
            kernels::BiasBwdParams p;
            p.dy = dy.raw(), p.type = type_of(dt), p.db = db.raw(), p.grad_type = type_of(gt);
            p.workspace = ws.raw(), p.rows = rows, p.features = features;
            kernels::bias_bwd(p, nullptr);
            return bytes(db);
          });
          // fp32 sums of up to 2049 terms of magnitude ≤ 1, in another order than the reference's.
          const test::Tolerance tol = gt == DType::f32 ? test::Tolerance{1e-4, 1e-5}
                                                       : test::tolerance_for(DType::bf16);
          CHECK(test::compare(db, gt == DType::f32 ? ref : ref.to(DType::bf16), tol) == "");
        }
      }
    }
  }
}

TEST_CASE("bias_bwd slots depend on rows alone", "[emu]") {
  CHECK(kernels::bias_bwd_slots(0) == 0);
  CHECK(kernels::bias_bwd_slots(1) == 1);
  CHECK(kernels::bias_bwd_slots(16) == 1);
  CHECK(kernels::bias_bwd_slots(17) == 2);
  CHECK(kernels::bias_bwd_slots(8192) == 128);
  CHECK(kernels::bias_bwd_workspace_bytes(0, 64) == 0);
  // rows 0 adds nothing and needs no workspace.
  const Tensor db = test::random_tensor({5}, DType::f32, 3);
  const Tensor before = db.clone();
  kernels::BiasBwdParams p;
  p.db = db.raw(), p.rows = 0, p.features = 5;
  kernels::bias_bwd(p, nullptr);
  CHECK(bytes(db) == bytes(before));
}

TEST_CASE("element-wise kernels reject bad arguments naming the field", "[emu]") {
  using Catch::Matchers::Contains;
  const Tensor x = test::random_tensor({4}, DType::f32, 5);
  CHECK_THROWS_WITH(kernels::add({x.raw(), nullptr, ElementwiseType::f32, 1.0f, 4}, nullptr),
                    Contains("'src' is null"));
  CHECK_THROWS_WITH(kernels::add({x.raw(), x.raw(), ElementwiseType::f32, 1.0f, -1}, nullptr),
                    Contains("n = -1"));
  CHECK_THROWS_WITH(kernels::scale({nullptr, ElementwiseType::bf16, 2.0f, 3}, nullptr),
                    Contains("'x' is null"));
  CHECK_THROWS_WITH(
      kernels::scale({x.raw(), static_cast<ElementwiseType>(7), 2.0f, 3}, nullptr),
      Contains("'type'"));
  CHECK_THROWS_WITH(kernels::bias_add({x.raw(), x.raw(), ElementwiseType::f32, 2, 0}, nullptr),
                    Contains("features = 0"));
  CHECK_THROWS_WITH(
      kernels::mul({x.raw(), nullptr, ElementwiseType::f32, ElementwiseType::bf16, 4}, nullptr),
      Contains("elementwise_mul") && Contains("'m' is null"));
  CHECK_THROWS_WITH(
      kernels::mul({nullptr, x.raw(), ElementwiseType::bf16, ElementwiseType::f32, 4}, nullptr),
      Contains("'x' is null"));
  CHECK_THROWS_WITH(kernels::mul({x.raw(), x.raw(), ElementwiseType::f32,
                                  static_cast<ElementwiseType>(9), 4},
                                 nullptr),
                    Contains("'m_type'"));
  CHECK_THROWS_WITH(
      kernels::mul({x.raw(), x.raw(), ElementwiseType::f32, ElementwiseType::f32, -3}, nullptr),
      Contains("n = -3"));
  CHECK_THROWS_WITH(kernels::dropout_mask({nullptr, 0.5f, 2.0f, 4}, nullptr),
                    Contains("elementwise_dropout_mask") && Contains("'u' is null"));
  CHECK_THROWS_WITH(kernels::dropout_mask({x.data<float>(), 0.5f, 2.0f, -1}, nullptr),
                    Contains("n = -1"));
  CHECK_NOTHROW(kernels::dropout_mask({nullptr, 0.5f, 2.0f, 0}, nullptr));  // nothing to do
  kernels::BiasBwdParams p;
  p.dy = x.raw(), p.db = x.raw(), p.rows = 2, p.features = 2, p.type = ElementwiseType::f32;
  CHECK_THROWS_WITH(kernels::bias_bwd(p, nullptr), Contains("'workspace' is null"));
  p.workspace = x.raw(), p.db = nullptr;
  CHECK_THROWS_WITH(kernels::bias_bwd(p, nullptr), Contains("'db' is null"));
}

// The tensor-core GEMM (kernels/gemm) under the emulator against the CPU reference
// (engine/cpu matmul on the bf16-rounded inputs): every layout on ragged shapes, the epilogues,
// unaligned leading dimensions, batches, the skinny and split-K paths, each under the fwd, rev
// and random schedules. Small-integer inputs make every product and sum exact, so outputs
// (including C's untouched padding) must equal the reference bit for bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpu/matmul.h"
#include "hone/dtype.h"
#include "hone/error.h"
#include "kernels/emu/emu.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_probe.h"

using hone::emu::Schedule;
using hone::kernels::GemmParams;
using hone::kernels::GemmType;

namespace {

constexpr Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};

std::uint16_t bf16_bits(float x) { return hone::to_bf16(x).bits; }
float bf16_value(std::uint16_t bits) { return hone::from_bf16(hone::bf16{bits}); }
std::uint32_t f32_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
float f32_value(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// One GEMM to run: shape, layout, padding of the leading dimensions, epilogue, batch, split.
struct Case {
  std::int64_t m = 1, n = 1, k = 1;
  bool a_trans = false, b_trans = false;
  std::int64_t lda_pad = 0, ldb_pad = 0, ldc_pad = 0;  // extra elements per row
  std::int64_t offset = 0;  // elements by which every operand's start is shifted (misalignment)
  bool align8 = false;  // leading dimensions and batch strides rounded up to multiples of 8
  GemmType c_type = GemmType::f32;
  float alpha = 1.0f, beta = 0.0f;
  bool bias = false, residual = false;
  GemmType bias_type = GemmType::bf16, residual_type = GemmType::bf16;
  std::int64_t batch = 1;
  bool share_b = false;  // stride_b = 0
  int split_k = 0;
  bool integers = true;  // small integers (exact) or uniform [-1, 1) rounded to bf16
  std::uint64_t seed = 1;
};

std::string describe(const Case& c) {
  return hone::cat("m ", c.m, " n ", c.n, " k ", c.k, " a_trans ", c.a_trans, " b_trans ",
                   c.b_trans, " align8 ", c.align8, " pads ", c.lda_pad, "/", c.ldb_pad, "/", c.ldc_pad, " offset ",
                   c.offset, " c ", c.c_type == GemmType::f32 ? "f32" : "bf16", " alpha ",
                   c.alpha, " beta ", c.beta, " bias ", c.bias, " residual ", c.residual,
                   " batch ", c.batch, " split_k ", c.split_k);
}

// Host buffers of one case: bf16 bits of A and B, raw bytes of C, bias and residual.
struct Buffers {
  std::int64_t lda, ldb, ldc, ldr, sa, sb, sc, sr;
  std::vector<std::uint16_t> a, b;
  std::vector<unsigned char> c, bias, residual;
};

std::size_t bytes_of(GemmType t) { return t == GemmType::f32 ? 4 : 2; }

float load(const std::vector<unsigned char>& buf, GemmType t, std::int64_t i) {
  if (t == GemmType::f32) {
    std::uint32_t u;
    std::memcpy(&u, buf.data() + 4 * i, 4);
    return f32_value(u);
  }
  std::uint16_t u;
  std::memcpy(&u, buf.data() + 2 * i, 2);
  return bf16_value(u);
}
void store(std::vector<unsigned char>& buf, GemmType t, std::int64_t i, float x) {
  if (t == GemmType::f32) {
    const std::uint32_t u = f32_bits(x);
    std::memcpy(buf.data() + 4 * i, &u, 4);
  } else {
    const std::uint16_t u = bf16_bits(x);
    std::memcpy(buf.data() + 2 * i, &u, 2);
  }
}

Buffers make_buffers(const Case& c) {
  std::mt19937_64 rng(c.seed);
  std::uniform_int_distribution<int> small(-4, 4);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto value = [&] { return c.integers ? static_cast<float>(small(rng)) : uniform(rng); };
  // Without align8, strides are odd on purpose; with it, 16-byte copies are possible.
  auto round = [&](std::int64_t x, std::int64_t odd) { return c.align8 ? (x + 7) / 8 * 8 : x + odd; };
  Buffers b;
  b.lda = round((c.a_trans ? c.m : c.k) + c.lda_pad, 0);
  b.ldb = round((c.b_trans ? c.k : c.n) + c.ldb_pad, 0);
  b.ldc = round(c.n + c.ldc_pad, 0);
  b.ldr = round(c.n, 3);  // the residual always has its own padded layout
  const std::int64_t a_rows = c.a_trans ? c.k : c.m, b_rows = c.b_trans ? c.n : c.k;
  b.sa = round(a_rows * b.lda, 5), b.sb = c.share_b ? 0 : round(b_rows * b.ldb, 3);
  b.sc = round(c.m * b.ldc, 7), b.sr = round(c.m * b.ldr, 1);
  b.a.resize(c.offset + c.batch * b.sa);
  b.b.resize(c.offset + (c.share_b ? 1 : c.batch) * round(b_rows * b.ldb, 3) + 1);
  for (auto& x : b.a) x = bf16_bits(value());
  for (auto& x : b.b) x = bf16_bits(value());
  const std::int64_t c_elems = c.offset + c.batch * b.sc;
  b.c.resize(c_elems * bytes_of(c.c_type));
  for (std::int64_t i = 0; i < c_elems; ++i)  // prior C (NaN when beta = 0: it must not be read)
    store(b.c, c.c_type, i, c.beta == 0.0f ? std::nanf("") : value());
  if (c.bias) {
    b.bias.resize((c.offset + c.n) * bytes_of(c.bias_type));
    for (std::int64_t i = 0; i < c.offset + c.n; ++i) store(b.bias, c.bias_type, i, value());
  }
  if (c.residual) {
    const std::int64_t r_elems = c.offset + c.batch * b.sr;
    b.residual.resize(r_elems * bytes_of(c.residual_type));
    for (std::int64_t i = 0; i < r_elems; ++i) store(b.residual, c.residual_type, i, value());
  }
  return b;
}

GemmParams params_for(const Case& c, Buffers& b) {
  GemmParams p;
  p.m = c.m, p.n = c.n, p.k = c.k;
  p.a = b.a.data() + c.offset, p.lda = b.lda, p.a_trans = c.a_trans;
  p.b = b.b.data() + c.offset, p.ldb = b.ldb, p.b_trans = c.b_trans;
  p.c = b.c.data() + c.offset * bytes_of(c.c_type), p.ldc = b.ldc, p.c_type = c.c_type;
  p.alpha = c.alpha, p.beta = c.beta;
  if (c.bias) p.bias = b.bias.data() + c.offset * bytes_of(c.bias_type), p.bias_type = c.bias_type;
  if (c.residual) {
    p.residual = b.residual.data() + c.offset * bytes_of(c.residual_type);
    p.ldr = b.ldr, p.residual_type = c.residual_type;
  }
  p.batch = c.batch;
  p.stride_a = b.sa, p.stride_b = b.sb, p.stride_c = b.sc, p.stride_r = b.sr;
  p.split_k = c.split_k;
  return p;
}

// C after the kernel, as raw bytes (padding included).
std::vector<unsigned char> run_kernel(const Case& c, Schedule sch) {
  hone::emu::ScopedSchedule scoped(sch, 7);
  Buffers b = make_buffers(c);
  GemmParams p = params_for(c, b);
  std::vector<float> workspace(hone::kernels::gemm_workspace_bytes(p) / sizeof(float) + 4);
  p.workspace = workspace.data(), p.workspace_bytes = workspace.size() * sizeof(float);
  hone::kernels::gemm(p, nullptr);
  return b.c;
}

// C from the CPU reference: op(A)·op(B) by engine/cpu in f32 on the bf16 values, then the
// epilogue in the documented order, rounded once to C's type. Padding keeps its bytes.
std::vector<unsigned char> run_reference(const Case& c) {
  Buffers b = make_buffers(c);
  std::vector<float> a(c.m * c.k), bm(c.k * c.n), acc(c.m * c.n);
  for (std::int64_t e = 0; e < c.batch; ++e) {
    const std::uint16_t* pa = b.a.data() + c.offset + e * b.sa;
    const std::uint16_t* pb = b.b.data() + c.offset + e * b.sb;
    for (std::int64_t i = 0; i < c.m; ++i)
      for (std::int64_t l = 0; l < c.k; ++l)
        a[i * c.k + l] = bf16_value(c.a_trans ? pa[l * b.lda + i] : pa[i * b.lda + l]);
    for (std::int64_t l = 0; l < c.k; ++l)
      for (std::int64_t j = 0; j < c.n; ++j)
        bm[l * c.n + j] = bf16_value(c.b_trans ? pb[j * b.ldb + l] : pb[l * b.ldb + j]);
    hone::cpu::MatmulDims d;
    d.m = c.m, d.n = c.n, d.k = c.k;
    hone::cpu::matmul<float>(a.data(), bm.data(), acc.data(), d, 1.0f, 0.0f);
    for (std::int64_t i = 0; i < c.m; ++i)
      for (std::int64_t j = 0; j < c.n; ++j) {
        const std::int64_t ci = c.offset + e * b.sc + i * b.ldc + j;
        float v = c.alpha * acc[i * c.n + j];
        if (c.beta != 0.0f) v += c.beta * load(b.c, c.c_type, ci);
        if (c.bias) v += load(b.bias, c.bias_type, c.offset + j);
        if (c.residual) v += load(b.residual, c.residual_type, c.offset + e * b.sr + i * b.ldr + j);
        store(b.c, c.c_type, ci, v);
      }
  }
  return b.c;
}

std::vector<float> as_floats(const std::vector<unsigned char>& buf, GemmType t) {
  std::vector<float> v(buf.size() / bytes_of(t));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = load(buf, t, static_cast<std::int64_t>(i));
  return v;
}

// Where the kernel's output first differs from the reference, for the failure message.
std::string first_difference(const Case& c, const std::vector<unsigned char>& got,
                             const std::vector<unsigned char>& want) {
  const auto g = as_floats(got, c.c_type), w = as_floats(want, c.c_type);
  std::int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (std::memcmp(&got[i * bytes_of(c.c_type)], &want[i * bytes_of(c.c_type)],
                    bytes_of(c.c_type)) != 0) {
      if (first < 0) first = static_cast<std::int64_t>(i);
      ++bad;
    }
  if (first < 0) return "identical";
  return hone::cat(bad, " of ", g.size(), " elements differ; first at ", first, ": ", g[first],
                   " vs ", w[first]);
}

// Runs an exact (small-integer) case under every schedule: bit-identical to the reference.
void check_exact(const Case& c) {
  const auto want = run_reference(c);
  for (Schedule sch : kSchedules) {
    const auto got = run_kernel(c, sch);
    INFO(describe(c) << " schedule " << static_cast<int>(sch) << ": "
                     << first_difference(c, got, want));
    REQUIRE(got == want);
  }
}

}  // namespace

TEST_CASE("gemm all four layouts on ragged shapes equal engine/cpu exactly", "[emu]") {
  const std::int64_t shapes[][3] = {{17, 33, 129}, {129, 17, 33}, {33, 129, 17}, {1, 1, 1},
                                    {16, 65, 200}, {5, 129, 33},  {127, 31, 70}};
  // align8: 16-byte copies with zero-filled or element-wise edges; else element-wise loads.
  for (bool align8 : {true, false})
    for (bool a_trans : {false, true})
      for (bool b_trans : {false, true})
        for (const auto& s : shapes) {
          Case c;
          c.m = s[0], c.n = s[1], c.k = s[2], c.a_trans = a_trans, c.b_trans = b_trans;
          c.align8 = align8;
          c.seed = static_cast<std::uint64_t>(s[0] * 1000 + s[1] + s[2] * 7);
          check_exact(c);
        }
}

TEST_CASE("gemm full tiles with several k stages equal engine/cpu exactly", "[emu]") {
  Case c;
  c.m = 128, c.n = 256, c.k = 192, c.b_trans = true;  // 6 k tiles through 4 stages
  check_exact(c);
}

TEST_CASE("gemm epilogues: alpha, beta, bias, residual, f32 and bf16 output", "[emu]") {
  for (GemmType out : {GemmType::f32, GemmType::bf16})
    for (GemmType side : {GemmType::f32, GemmType::bf16}) {
      Case c;
      c.m = 40, c.n = 37, c.k = 45, c.b_trans = true, c.ldc_pad = 3;
      c.c_type = out, c.alpha = 2.0f, c.beta = -0.5f;
      c.bias = c.residual = true, c.bias_type = c.residual_type = side;
      check_exact(c);
      c.beta = 1.0f, c.bias = false, c.a_trans = true, c.b_trans = false;  // dW += dyᵀ·x
      check_exact(c);
      c.m = 3, c.beta = 0.0f, c.bias = true, c.residual = false;  // skinny path epilogue
      check_exact(c);
    }
}

TEST_CASE("gemm residual may be C itself (an in-place add)", "[emu]") {
  for (int split : {1, 2}) {
    Case c;
    c.m = 20, c.n = 24, c.k = 160, c.b_trans = true, c.beta = 1.0f, c.split_k = split;
    const auto want = run_reference(c);  // acc + 1·C equals acc + C as a residual
    Buffers b = make_buffers(c);
    GemmParams p = params_for(c, b);
    p.beta = 0.0f, p.residual = p.c, p.ldr = p.ldc, p.residual_type = p.c_type;
    std::vector<float> workspace(hone::kernels::gemm_workspace_bytes(p) / sizeof(float) + 4);
    p.workspace = workspace.data(), p.workspace_bytes = workspace.size() * sizeof(float);
    hone::kernels::gemm(p, nullptr);
    INFO("split " << split << ": " << first_difference(c, b.c, want));
    REQUIRE(b.c == want);
  }
}

TEST_CASE("gemm unaligned pointers and odd leading dimensions take the scalar path", "[emu]") {
  for (bool a_trans : {false, true})
    for (bool b_trans : {false, true}) {
      Case c;
      c.m = 35, c.n = 41, c.k = 50, c.a_trans = a_trans, c.b_trans = b_trans;
      c.lda_pad = 1, c.ldb_pad = 3, c.ldc_pad = 1;
      check_exact(c);
      c.lda_pad = c.ldb_pad = 8, c.offset = 1;  // ld multiple of 8 but starts misaligned
      c.c_type = GemmType::bf16, c.residual = true;
      check_exact(c);
      c.m = 9;  // skinny
      check_exact(c);
    }
}

TEST_CASE("gemm batched entries with a shared operand", "[emu]") {
  Case c;
  c.m = 20, c.n = 24, c.k = 40, c.batch = 3, c.b_trans = true, c.residual = true;
  check_exact(c);
  c.align8 = true;
  check_exact(c);
  c.share_b = true, c.a_trans = true, c.beta = 1.0f, c.c_type = GemmType::bf16;
  check_exact(c);
  c.m = 4, c.split_k = 2;  // skinny and split, batched
  check_exact(c);
}

TEST_CASE("gemm skinny products (m 1-16) with split-K equal engine/cpu exactly", "[emu]") {
  for (std::int64_t m : {1, 2, 7, 16})
    for (int split : {1, 3, 0}) {  // 0: the automatic choice (splits this small grid)
      Case c;
      c.m = m, c.n = 70, c.k = 600, c.b_trans = true, c.split_k = split;
      c.bias = true, c.beta = 1.0f, c.c_type = GemmType::bf16;
      check_exact(c);
    }
  Case lora;  // LoRA's dA = dyᵀ-like product: a_trans, rank-sized m, long k
  lora.m = 8, lora.n = 33, lora.k = 300, lora.a_trans = true, lora.split_k = 4;
  check_exact(lora);
}

TEST_CASE("gemm split-K on the large tiles equals engine/cpu exactly", "[emu]") {
  Case c;
  c.m = 33, c.n = 40, c.k = 260, c.split_k = 3, c.residual = true, c.beta = -2.0f;
  check_exact(c);
  c.align8 = true, c.a_trans = true;
  check_exact(c);
  c.split_k = 100;  // more splits than k tiles: clamped
  check_exact(c);
}

TEST_CASE("gemm k = 0 leaves alpha·0 + beta·C + bias", "[emu]") {
  Case c;
  c.m = 20, c.n = 9, c.k = 0, c.beta = 0.5f, c.bias = true;
  check_exact(c);
  c.m = 2;
  check_exact(c);
}

TEST_CASE("gemm on fractional inputs: within f32 tolerance, identical under all schedules",
          "[emu]") {
  for (int split : {1, 4}) {
    Case c;
    c.m = 70, c.n = 50, c.k = 257, c.integers = false, c.split_k = split, c.a_trans = split > 1;
    const auto want = as_floats(run_reference(c), c.c_type);
    const auto first = run_kernel(c, Schedule::fwd);
    const auto got = as_floats(first, c.c_type);
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (std::isnan(want[i])) {  // padding
        REQUIRE(std::isnan(got[i]));
        continue;
      }
      INFO("element " << i << " split " << split);
      REQUIRE(std::fabs(got[i] - want[i]) <= 1e-4f + 1e-4f * std::fabs(want[i]));
    }
    REQUIRE(run_kernel(c, Schedule::rev) == first);
    REQUIRE(run_kernel(c, Schedule::rand) == first);
  }
}

TEST_CASE("gemm mutation: a disabled pipeline barrier makes the result wrong", "[emu]") {
  Case c;
  c.m = 64, c.n = 64, c.k = 128, c.b_trans = true;
  const auto want = run_reference(c);
  REQUIRE(run_kernel(c, Schedule::fwd) == want);
  for (const char* barrier : {"gemm_tile_ready", "gemm_first_tile"})
    for (Schedule sch : {Schedule::fwd, Schedule::rev}) {
      hone::emu::disable_barrier(barrier);
      std::vector<unsigned char> got;
      try {
        got = run_kernel(c, sch);
      } catch (...) {
        hone::emu::enable_all_barriers();
        throw;
      }
      hone::emu::enable_all_barriers();
      INFO(barrier << " disabled, schedule " << static_cast<int>(sch));
      CHECK(got != want);
    }
  REQUIRE(run_kernel(c, Schedule::rev) == want);
}

TEST_CASE("gemm loaders hand mma the PTX fragment layouts (golden layout)", "[emu]") {
  using D = hone::kernels::GemmFragmentDump;
  std::vector<std::uint16_t> a(D::kM * D::kK), b(D::kK * D::kN);  // logical op(A), op(B)
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint16_t>(i + 1);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint16_t>(0x8000u + i);
  const auto want = hone::kernels::expected_gemm_fragments(a, b);
  for (bool a_trans : {false, true})
    for (bool b_trans : {false, true}) {
      std::vector<std::uint16_t> sa(a.size()), sb(b.size());
      for (int m = 0; m < D::kM; ++m)
        for (int k = 0; k < D::kK; ++k)
          sa[a_trans ? k * D::kM + m : m * D::kK + k] = a[m * D::kK + k];
      for (int k = 0; k < D::kK; ++k)
        for (int n = 0; n < D::kN; ++n)
          sb[b_trans ? n * D::kK + k : k * D::kN + n] = b[k * D::kN + n];
      std::vector<std::uint32_t> got(D::kTotal, 0xdeadbeefu);
      hone::kernels::gemm_dump_fragments(sa.data(), a_trans, sb.data(), b_trans, got.data(),
                                         nullptr);
      std::size_t bad = 0;
      for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] != want[i];
      INFO("a_trans " << a_trans << " b_trans " << b_trans);
      REQUIRE(bad == 0);
    }
}

namespace {

std::string error_of(const GemmParams& p) {
  try {
    hone::kernels::gemm(p, nullptr);
  } catch (const hone::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("gemm rejects bad parameters naming the field and value", "[emu]") {
  std::vector<std::uint16_t> a(64 * 64), b(64 * 64);
  std::vector<float> c(64 * 64);
  GemmParams ok;
  ok.m = 8, ok.n = 16, ok.k = 32;
  ok.a = a.data(), ok.lda = 32, ok.b = b.data(), ok.ldb = 16, ok.c = c.data(), ok.ldc = 16;
  REQUIRE(error_of(ok).empty());

  auto expect = [&](GemmParams p, const std::string& text) {
    const std::string e = error_of(p);
    INFO(e);
    CHECK(e.find("[gemm]") != std::string::npos);
    CHECK(e.find(text) != std::string::npos);
  };
  GemmParams p = ok;
  p.m = -3;
  expect(p, "m = -3");
  p = ok, p.lda = 31;
  expect(p, "lda = 31 is less than k = 32");
  p = ok, p.a_trans = true;  // stored k×m now: lda must cover m = 8, which 32 does
  REQUIRE(error_of(p).empty());
  p = ok, p.b_trans = true, p.ldb = 16;
  expect(p, "ldb = 16 is less than k = 32");
  p = ok, p.ldc = 15;
  expect(p, "ldc = 15 is less than n = 16");
  p = ok, p.a = nullptr;
  expect(p, "a is null");
  p = ok, p.c = nullptr;
  expect(p, "c is null");
  p = ok, p.residual = c.data(), p.ldr = 4;
  expect(p, "ldr = 4");
  p = ok, p.batch = 0;
  expect(p, "batch = 0");
  p = ok, p.batch = 2, p.stride_c = 100;
  expect(p, "stride_c = 100");
  p = ok, p.split_k = -1;
  expect(p, "split_k = -1");
  p = ok, p.k = 128, p.lda = 128, p.split_k = 2;  // splitting needs workspace
  expect(p, "workspace_bytes = 0");
  p = ok, p.c_type = static_cast<GemmType>(7);
  expect(p, "c_type = 7");
  p = ok, p.workspace_bytes = 64;
  expect(p, "workspace is null");
  // Empty products touch nothing, whatever the pointers.
  p = ok, p.m = 0, p.a = nullptr, p.c = nullptr;
  REQUIRE(error_of(p).empty());
}

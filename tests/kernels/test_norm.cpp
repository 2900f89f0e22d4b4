// The norm kernels (kernels/norm) under the emulator against engine/cpu: RMSNorm and LayerNorm,
// forward and backward, plain and fused with the residual add, on ragged shapes (vector and
// scalar paths, one warp to a whole block per row), under all three schedules with
// bit-identical results; deterministic dw/db; aliasing; the barriers are needed; bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/norm.h"
#include "kernels/emu/emu.h"
#include "kernels/norm/norm.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using hone::emu::Schedule;
using kernels::NormBwdParams;
using kernels::NormFwdParams;
using kernels::NormGradType;
using kernels::NormKind;

namespace {

const Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};
constexpr double kEps = 1e-5;

// fp32 sums of up to a few hundred O(1) terms (dw, db, and the row statistics).
constexpr test::Tolerance kSumTolerance{1e-4, 1e-4};
constexpr test::Tolerance kStatTolerance{1e-5, 1e-5};

std::vector<unsigned char> bytes(const Tensor& t) {
  std::vector<unsigned char> b(t.nbytes());
  std::memcpy(b.data(), t.raw(), b.size());
  return b;
}

using test::bf16_close;

struct Shape2 {
  std::int64_t rows, dim;
};

// Inputs, CPU reference results and kernel results of one forward + backward.
struct Run {
  Tensor y, residual_out, mean, rstd, dx, dw, db;
};

struct Case {
  NormKind kind;
  std::int64_t rows, dim;
  bool fused;
  NormGradType grad_type;
  std::int64_t partials = 0;
  std::uint64_t seed = 1;

  bool layer() const { return kind == NormKind::layer; }
  DType grad_dtype() const { return grad_type == NormGradType::f32 ? DType::f32 : DType::bf16; }
  std::string str() const {
    std::ostringstream os;
    os << (layer() ? "layer" : "rms") << " rows " << rows << " dim " << dim
       << (fused ? " fused" : "") << " grads " << (grad_type == NormGradType::f32 ? "f32" : "bf16")
       << " partials " << partials;
    return os.str();
  }
};

struct Inputs {
  Tensor x, residual, w, b, dy, dresidual, dw0, db0;
  explicit Inputs(const Case& c) {
    const std::uint64_t s = c.seed * 100;
    x = test::random_tensor({c.rows, c.dim}, DType::bf16, s + 1, -2, 2);
    residual = test::random_tensor({c.rows, c.dim}, DType::bf16, s + 2);
    w = test::random_tensor({c.dim}, DType::bf16, s + 3, 0.5, 1.5);
    b = test::random_tensor({c.dim}, DType::bf16, s + 4, -0.5, 0.5);
    dy = test::random_tensor({c.rows, c.dim}, DType::bf16, s + 5);
    dresidual = test::random_tensor({c.rows, c.dim}, DType::bf16, s + 6);
    dw0 = test::random_tensor({c.dim}, c.grad_dtype(), s + 7);
    db0 = test::random_tensor({c.dim}, c.grad_dtype(), s + 8);
  }
};

// The kernels' forward then backward (the backward on the forward's own r, mean and rstd).
Run run_kernels(const Case& c, const Inputs& in) {
  Run r;
  const Shape rd = {c.rows, c.dim};
  r.y = test::poisoned(rd, DType::bf16);
  r.residual_out = test::poisoned(rd, DType::bf16);
  r.mean = test::poisoned({c.rows}, DType::f32);
  r.rstd = test::poisoned({c.rows}, DType::f32);
  NormFwdParams f;
  f.kind = c.kind;
  f.x = in.x.raw();
  if (c.fused) {
    f.residual = in.residual.raw();
    f.residual_out = r.residual_out.raw();
  }
  f.w = in.w.raw();
  f.b = c.layer() ? in.b.raw() : nullptr;
  f.y = r.y.raw();
  f.mean = c.layer() ? r.mean.data<float>() : nullptr;
  f.rstd = r.rstd.data<float>();
  f.rows = c.rows;
  f.dim = c.dim;
  f.eps = static_cast<float>(kEps);
  kernels::norm_fwd(f, nullptr);

  r.dx = test::poisoned(rd, DType::bf16);
  r.dw = in.dw0.clone();
  r.db = in.db0.clone();
  NormBwdParams p;
  p.kind = c.kind;
  p.dy = in.dy.raw();
  p.x = c.fused ? r.residual_out.raw() : in.x.raw();
  p.w = in.w.raw();
  p.mean = c.layer() ? r.mean.data<float>() : nullptr;
  p.rstd = r.rstd.data<float>();
  p.dresidual = c.fused ? in.dresidual.raw() : nullptr;
  p.dx = r.dx.raw();
  p.dw = r.dw.raw();
  p.db = c.layer() ? r.db.raw() : nullptr;
  p.grad_type = c.grad_type;
  p.rows = c.rows;
  p.dim = c.dim;
  p.partials = c.partials;
  const std::size_t ws_bytes = kernels::norm_bwd_workspace_bytes(p);
  // NaN-filled: a partial the finalize kernel reads but the row kernel never wrote shows up.
  const Tensor ws = test::poisoned({static_cast<std::int64_t>(ws_bytes / 4)}, DType::f32);
  p.workspace = ws.raw();
  kernels::norm_bwd(p, nullptr);
  return r;
}

std::vector<unsigned char> all_bytes(const Run& r) {
  std::vector<unsigned char> out;
  for (const Tensor* t : {&r.y, &r.residual_out, &r.mean, &r.rstd, &r.dx, &r.dw, &r.db}) {
    const auto b = bytes(*t);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

// Runs the case under every schedule, and a second time under the first: all bit-identical.
Run run_all_schedules(const Case& c, const Inputs& in) {
  Run first;
  std::vector<unsigned char> first_bytes;
  for (int run = 0; run < 4; ++run) {
    hone::emu::ScopedSchedule scoped(kSchedules[run == 3 ? 0 : run], 5 + run);
    Run r = run_kernels(c, in);
    if (run == 0) {
      first = r;
      first_bytes = all_bytes(r);
    } else {
      REQUIRE(all_bytes(r) == first_bytes);
    }
  }
  return first;
}

std::vector<double> as_doubles(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Compares a kernel run with engine/cpu in f32 on the same bf16 inputs.
void check_against_cpu(const Case& c, const Inputs& in, const Run& k) {
  INFO(c.str());
  const std::int64_t n = c.rows * c.dim;
  // r = x (+ residual, summed in fp32 and rounded to bf16 as the kernel stores it).
  Tensor r = in.x;
  if (c.fused) {
    const auto xv = in.x.to_vector<float>(), rv = in.residual.to_vector<float>();
    std::vector<float> sum(xv.size());
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] = xv[i] + rv[i];
    r = Tensor::from_vector<float>({c.rows, c.dim}, sum).to(DType::bf16);
    CHECK(bytes(k.residual_out) == bytes(r));
  }
  const auto r32 = r.to_vector<float>(), w32 = in.w.to_vector<float>(),
             b32 = in.b.to_vector<float>(), dy32 = in.dy.to_vector<float>();
  std::vector<float> y(n), mean(c.rows), rstd(c.rows), dx(n);
  std::vector<float> dw = in.dw0.to_vector<float>(), db = in.db0.to_vector<float>();
  if (c.layer()) {
    cpu::layernorm_fwd<float>(r32.data(), w32.data(), b32.data(), c.rows, c.dim, kEps, y.data(),
                              mean.data(), rstd.data());
    cpu::layernorm_bwd<float>(dy32.data(), r32.data(), w32.data(), mean.data(), rstd.data(),
                              c.rows, c.dim, dx.data(), dw.data(), db.data());
  } else {
    cpu::rmsnorm_fwd<float>(r32.data(), w32.data(), c.rows, c.dim, kEps, y.data(), rstd.data());
    cpu::rmsnorm_bwd<float>(dy32.data(), r32.data(), w32.data(), rstd.data(), c.rows, c.dim,
                            dx.data(), dw.data());
  }
  std::vector<double> dx_ref = as_doubles(dx);
  if (c.fused) {
    const auto dres = in.dresidual.to_vector<double>();
    for (std::int64_t i = 0; i < n; ++i) dx_ref[i] += dres[i];
  }
  CHECK(bf16_close(k.y, as_doubles(y), 1e-5) == "");
  CHECK(test::compare(k.rstd.to_vector<double>(), as_doubles(rstd), kStatTolerance) == "");
  if (c.layer())
    CHECK(test::compare(k.mean.to_vector<double>(), as_doubles(mean), kStatTolerance) == "");
  CHECK(bf16_close(k.dx, dx_ref, 1e-5) == "");
  if (c.grad_type == NormGradType::f32) {
    CHECK(test::compare(k.dw.to_vector<double>(), as_doubles(dw), kSumTolerance) == "");
    if (c.layer())
      CHECK(test::compare(k.db.to_vector<double>(), as_doubles(db), kSumTolerance) == "");
  } else {
    CHECK(bf16_close(k.dw, as_doubles(dw), 1e-4) == "");
    if (c.layer()) CHECK(bf16_close(k.db, as_doubles(db), 1e-4) == "");
  }
  if (!c.layer()) CHECK(bytes(k.db) == bytes(in.db0));  // untouched
}

// Ragged rows and dims: one warp per row (4 rows a block) up to 512 threads a row; 16-byte
// vectors (dim % 8 == 0: 1, 2 and 4 of them a thread) and the scalar path (1 to 16 elements).
const std::vector<Shape2> kShapes = {
    {1, 1},    {31, 33},   {32, 32},   {33, 31},   {127, 128}, {128, 127}, {129, 129}, {130, 512},
    {5, 24},   {17, 1000}, {3, 4096},  {2, 8192},  {1, 16384}, {2, 2053},  {1, 8191}};

void run_shapes(NormKind kind) {
  std::uint64_t seed = 1;
  for (const Shape2& s : kShapes) {
    for (bool fused : {false, true}) {
      Case c{kind, s.rows, s.dim, fused, fused ? NormGradType::bf16 : NormGradType::f32};
      c.seed = seed++;
      const Inputs in(c);
      check_against_cpu(c, in, run_all_schedules(c, in));
    }
  }
}

}  // namespace

TEST_CASE("rmsnorm kernels match engine/cpu on ragged shapes under every schedule", "[emu]") {
  run_shapes(NormKind::rms);
}

TEST_CASE("layernorm kernels match engine/cpu on ragged shapes under every schedule", "[emu]") {
  run_shapes(NormKind::layer);
}

TEST_CASE("norm weight gradients: any number of partial slots, each deterministic", "[emu]") {
  // 129 rows over 7 slots: slot s sums rows s, s + 7, ...; over 1 slot: all rows in one; over
  // 65 or more slots the slots are summed in two passes (groups of 64, then the groups).
  for (NormKind kind : {NormKind::rms, NormKind::layer}) {
    for (std::int64_t partials : {1, 7, 64, 65, 1000}) {
      Case c{kind, 129, 40, false, NormGradType::f32, partials, 77};
      const Inputs in(c);
      check_against_cpu(c, in, run_all_schedules(c, in));
    }
  }
  Case c{NormKind::rms, 129, 40, false, NormGradType::f32, 7, 78};
  NormBwdParams p;
  p.rows = 129, p.dim = 40, p.partials = 7, p.dw = &c;  // only which grads are set matters
  CHECK(kernels::norm_bwd_workspace_bytes(p) == 7u * 40u * 4u);
  CHECK(kernels::norm_bwd_slots(p) == 7);
  p.partials = 0;
  CHECK(kernels::norm_bwd_slots(p) == 129);  // fewer rows than the default slots
  CHECK(kernels::norm_bwd_workspace_bytes(p) == (129u + 3u) * 40u * 4u);  // 3 groups of ≤ 64
  // Default slots: 2^18 threads' worth. dim 40 takes one warp a row (8192 slots), dim 4096 takes
  // 512 threads (512 slots), dim 4097 (scalar path) also 512.
  p.rows = 100000;
  CHECK(kernels::norm_bwd_slots(p) == 8192);
  p.kind = NormKind::layer, p.db = &c;
  CHECK(kernels::norm_bwd_workspace_bytes(p) == 2u * (8192u + 128u) * 40u * 4u);
  p.dim = 4096;
  CHECK(kernels::norm_bwd_slots(p) == 512);
  p.dim = 4097;
  CHECK(kernels::norm_bwd_slots(p) == 512);
  p.dw = p.db = nullptr;
  CHECK(kernels::norm_bwd_workspace_bytes(p) == 0u);
}

TEST_CASE("norm kernels work in place: residual stream updated and dx over dy", "[emu]") {
  for (NormKind kind : {NormKind::rms, NormKind::layer}) {
    Case c{kind, 33, 64, true, NormGradType::f32, 0, 91};
    const Inputs in(c);
    const Run ref = run_kernels(c, in);

    // residual_out over residual, then dx over dy.
    Inputs io(c);
    NormFwdParams f;
    f.kind = kind;
    f.x = io.x.raw();
    f.residual = io.residual.raw();
    f.residual_out = io.residual.raw();
    f.w = io.w.raw();
    f.b = c.layer() ? io.b.raw() : nullptr;
    const Tensor y = test::poisoned({c.rows, c.dim}, DType::bf16);
    const Tensor mean = test::poisoned({c.rows}, DType::f32);
    const Tensor rstd = test::poisoned({c.rows}, DType::f32);
    f.y = y.raw();
    f.mean = c.layer() ? mean.data<float>() : nullptr;
    f.rstd = rstd.data<float>();
    f.rows = c.rows, f.dim = c.dim, f.eps = static_cast<float>(kEps);
    kernels::norm_fwd(f, nullptr);
    CHECK(bytes(io.residual) == bytes(ref.residual_out));
    CHECK(bytes(y) == bytes(ref.y));

    NormBwdParams p;
    p.kind = kind;
    p.dy = io.dy.raw();
    p.x = io.residual.raw();
    p.w = io.w.raw();
    p.mean = f.mean;
    p.rstd = f.rstd;
    p.dresidual = io.dresidual.raw();
    p.dx = io.dy.raw();
    p.rows = c.rows, p.dim = c.dim;
    kernels::norm_bwd(p, nullptr);  // dx only: no workspace needed
    CHECK(bytes(io.dy) == bytes(ref.dx));
  }
}

TEST_CASE("norm kernels: the row barriers are needed", "[emu]") {
  // Mutation test: without the cross-warp barrier a row's sum reads partial sums not yet
  // written (NaN-poisoned shared memory) under some schedule; likewise the dw finalisation.
  Case c{NormKind::layer, 9, 512, false, NormGradType::f32, 3, 5};  // 64 threads a row
  const Inputs in(c);
  const Run good = run_kernels(c, in);
  for (const char* barrier : {"norm_row_sum", "norm_grad_partials"}) {
    INFO(barrier);
    bool differs = false;
    hone::emu::disable_barrier(barrier);
    for (Schedule s : kSchedules) {
      hone::emu::ScopedSchedule scoped(s, 3);
      if (all_bytes(run_kernels(c, in)) != all_bytes(good)) differs = true;
    }
    hone::emu::enable_all_barriers();
    CHECK(differs);
  }
}

TEST_CASE("norm launchers reject bad arguments with the field named", "[emu]") {
  const Tensor x = test::random_tensor({2, 8}, DType::bf16, 1);
  const Tensor w = test::random_tensor({8}, DType::bf16, 2);
  const Tensor y = Tensor::empty({2, 8}, DType::bf16);
  const Tensor stat = Tensor::empty({2}, DType::f32);
  NormFwdParams f;
  f.x = x.raw(), f.w = w.raw(), f.y = y.raw(), f.rstd = stat.data<float>(), f.rows = 2, f.dim = 8;
  CHECK_NOTHROW(kernels::norm_fwd(f, nullptr));
  auto fwd_fails = [&](NormFwdParams bad, const std::string& what) {
    CHECK_THROWS_WITH(kernels::norm_fwd(bad, nullptr),
                      Catch::Contains("[norm_fwd]") && Catch::Contains(what));
  };
  NormFwdParams bad = f;
  bad.dim = 0;
  fwd_fails(bad, "dim = 0");
  bad.dim = kernels::kNormMaxDim + 1;
  fwd_fails(bad, "dim = 16385");
  bad = f, bad.dim = 8193, bad.rows = 1;  // odd: the scalar path, which holds at most 8192
  fwd_fails(bad, "does not fit the row kernels");
  bad = f, bad.rows = -1;
  fwd_fails(bad, "rows = -1");
  bad = f, bad.eps = -1.0f;
  fwd_fails(bad, "eps = -1");
  bad = f, bad.w = nullptr;
  fwd_fails(bad, "'w' is null");
  bad = f, bad.residual = x.raw();
  fwd_fails(bad, "'residual_out' is null");
  bad = f, bad.b = w.raw();
  fwd_fails(bad, "'b' is set for kind rms");
  bad = f, bad.kind = static_cast<NormKind>(7);
  fwd_fails(bad, "kind 7");

  NormBwdParams p;
  p.dy = x.raw(), p.x = x.raw(), p.w = w.raw(), p.rstd = stat.data<float>();
  p.rows = 2, p.dim = 8;
  float dw[8] = {};
  p.dw = dw;
  CHECK_THROWS_WITH(kernels::norm_bwd(p, nullptr),
                    Catch::Contains("[norm_bwd]") && Catch::Contains("'workspace' is null") &&
                        Catch::Contains("= 64 bytes"));
  NormBwdParams q = p;
  q.partials = -2;
  CHECK_THROWS_WITH(kernels::norm_bwd_workspace_bytes(q), Catch::Contains("partials = -2"));
  q = p, q.kind = NormKind::layer;
  std::vector<float> ws(64);
  q.workspace = ws.data();
  CHECK_THROWS_WITH(kernels::norm_bwd(q, nullptr), Catch::Contains("'mean' is null"));
  q = p, q.db = dw;
  CHECK_THROWS_WITH(kernels::norm_bwd(q, nullptr), Catch::Contains("'db' is set for kind rms"));
  q = p, q.dw = nullptr, q.dx = y.raw(), q.w = nullptr;
  CHECK_THROWS_WITH(kernels::norm_bwd(q, nullptr), Catch::Contains("'w' is null"));
  q = p, q.grad_type = static_cast<NormGradType>(9);
  CHECK_THROWS_WITH(kernels::norm_bwd(q, nullptr), Catch::Contains("grad_type 9"));
}

// ops::matmul / matmul_bwd: argument validation (shapes, dtypes, devices, aliasing) and device
// dispatch to the CPU reference in engine/cpu/matmul.
#include "cpu/matmul.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "ops/check.h"
#include "ops/ops.h"

namespace hone::ops {

namespace {

std::string flags(const MatmulArgs& args) {
  return cat("trans_a = ", args.trans_a ? "true" : "false",
             ", trans_b = ", args.trans_b ? "true" : "false");
}

// Checks a and b against each other and returns the product's dimensions.
cpu::MatmulDims matmul_dims(std::string_view op, const Tensor& a, const Tensor& b,
                            const MatmulArgs& args) {
  HONE_CHECK(a.ndim() == 2 || a.ndim() == 3, op, "argument 'a' has shape ", shape_str(a.shape()),
             "; expected 2 or 3 dimensions: ",
             args.trans_a ? "(K, M) or (B, K, M)" : "(M, K) or (B, M, K)");
  HONE_CHECK(b.ndim() == 2 || b.ndim() == 3, op, "argument 'b' has shape ", shape_str(b.shape()),
             "; expected 2 or 3 dimensions: ",
             args.trans_b ? "(N, K) or (B, N, K)" : "(K, N) or (B, K, N)");
  cpu::MatmulDims d;
  d.trans_a = args.trans_a;
  d.trans_b = args.trans_b;
  d.a_batched = a.ndim() == 3;
  d.b_batched = b.ndim() == 3;
  d.m = args.trans_a ? a.size(-1) : a.size(-2);
  d.k = args.trans_a ? a.size(-2) : a.size(-1);
  const std::int64_t kb = args.trans_b ? b.size(-1) : b.size(-2);
  d.n = args.trans_b ? b.size(-2) : b.size(-1);
  HONE_CHECK(kb == d.k, op, "argument 'b' has shape ", shape_str(b.shape()),
             " with inner dimension K' = ", kb, "; expected K = ", d.k, " from ", described("a", a),
             " (", flags(args), ")");
  if (d.a_batched && d.b_batched)
    HONE_CHECK(a.size(0) == b.size(0), op, "argument 'b' has shape ", shape_str(b.shape()),
               " with batch ", b.size(0), "; expected batch ", a.size(0), " from ",
               described("a", a));
  d.batch = d.a_batched ? a.size(0) : d.b_batched ? b.size(0) : 1;
  return d;
}

Shape c_shape(const cpu::MatmulDims& d) {
  if (d.a_batched || d.b_batched) return {d.batch, d.m, d.n};
  return {d.m, d.n};
}

// `t` is defined, has ref's dtype and device.
void expect_like(std::string_view op, std::string_view name, const Tensor& t,
                 std::string_view ref_name, const Tensor& ref) {
  expect_dtype(op, name, t, ref_name, ref);
  expect_device(op, name, t, ref_name, ref);
}

// An output must not share memory with another argument (the products read their inputs while
// writing the output).
void expect_disjoint(std::string_view op, std::string_view name, const Tensor& out,
                     std::string_view other_name, const Tensor& other) {
  if (!out.defined() || !other.defined() || out.numel() == 0 || other.numel() == 0) return;
  const auto* o0 = static_cast<const char*>(out.raw());
  const auto* p0 = static_cast<const char*>(other.raw());
  const bool overlap = o0 < p0 + other.nbytes() && p0 < o0 + out.nbytes();
  HONE_CHECK(!overlap, op, "argument '", name, "' ", shape_str(out.shape()),
             " shares memory with '", other_name, "' ", shape_str(other.shape()),
             "; outputs must not alias inputs");
}

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& c, const MatmulArgs& args) {
  constexpr std::string_view op = "matmul";
  expect_float(op, "a", a);
  expect_like(op, "b", b, "a", a);
  expect_like(op, "c", c, "a", a);
  const cpu::MatmulDims d = matmul_dims(op, a, b, args);
  expect_shape(op, "c", c, c_shape(d), cat(described("a", a), " and ", described("b", b)));
  expect_disjoint(op, "c", c, "a", a);
  expect_disjoint(op, "c", c, "b", b);
  if (a.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::matmul<T>(a.data<T>(), b.data<T>(), c.data<T>(), d, static_cast<T>(args.alpha),
                   static_cast<T>(args.beta));
  });
}

void matmul_bwd(const Tensor& a, const Tensor& b, const Tensor& dc, const Tensor& da,
                const Tensor& db, const MatmulArgs& args) {
  constexpr std::string_view op = "matmul_bwd";
  expect_float(op, "a", a);
  expect_like(op, "b", b, "a", a);
  expect_like(op, "dc", dc, "a", a);
  const cpu::MatmulDims d = matmul_dims(op, a, b, args);
  expect_shape(op, "dc", dc, c_shape(d), cat(described("a", a), " and ", described("b", b)));
  if (da.defined()) {
    expect_like(op, "da", da, "a", a);
    expect_shape(op, "da", da, a.shape(), described("a", a));
  }
  if (db.defined()) {
    expect_like(op, "db", db, "a", a);
    expect_shape(op, "db", db, b.shape(), described("b", b));
  }
  auto expect_disjoint_inputs = [&](std::string_view name, const Tensor& out) {
    expect_disjoint(op, name, out, "a", a);
    expect_disjoint(op, name, out, "b", b);
    expect_disjoint(op, name, out, "dc", dc);
  };
  expect_disjoint_inputs("da", da);
  expect_disjoint_inputs("db", db);
  expect_disjoint(op, "db", db, "da", da);
  if (a.device().is_cuda()) no_cuda_kernel(op);
  if (!da.defined() && !db.defined()) return;
  dispatch_float(op, a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::matmul_bwd<T>(a.data<T>(), b.data<T>(), dc.data<T>(), ptr<T>(da), ptr<T>(db), d,
                       static_cast<T>(args.alpha));
  });
}

}  // namespace hone::ops

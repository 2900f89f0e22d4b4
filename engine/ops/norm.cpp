// ops::rmsnorm_* / layernorm_*: argument validation and device dispatch.
#include <cmath>
#include <cstdint>
#include <string>

#include "cpu/norm.h"
#include "ops/check.h"
#include "ops/ops.h"

namespace hone::ops {

namespace {

// x: float, (..., D) with D ≥ 1. Returns D.
std::int64_t check_rows(std::string_view op, const Tensor& x) {
  expect_float(op, "x", x);
  HONE_CHECK(x.ndim() >= 1 && x.size(-1) >= 1, op, "argument 'x' has shape ",
             shape_str(x.shape()), "; expected (..., D) with D ≥ 1");
  return x.size(-1);
}

// `t` has x's dtype and device and the given shape (derived from x).
void expect_like(std::string_view op, std::string_view name, const Tensor& t, const Shape& shape,
                 const Tensor& x) {
  expect_dtype(op, name, t, "x", x);
  expect_shape(op, name, t, shape, described("x", x));
  expect_device(op, name, t, "x", x);
}

void check_eps(std::string_view op, double eps) {
  HONE_CHECK(eps >= 0 && std::isfinite(eps), op, "eps is ", eps, "; expected a finite value ≥ 0");
}

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void rmsnorm_fwd(const Tensor& x, const Tensor& w, double eps, const Tensor& y, const Tensor& rstd) {
  constexpr std::string_view op = "rmsnorm_fwd";
  const std::int64_t dim = check_rows(op, x);
  const std::int64_t rows = x.numel() / dim;
  expect_like(op, "w", w, {dim}, x);
  expect_like(op, "y", y, x.shape(), x);
  expect_like(op, "rstd", rstd, {rows}, x);
  check_eps(op, eps);
  if (x.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::rmsnorm_fwd<T>(x.data<T>(), w.data<T>(), rows, dim, eps, y.data<T>(), rstd.data<T>());
  });
}

void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                 const Tensor& dx, const Tensor& dw) {
  constexpr std::string_view op = "rmsnorm_bwd";
  const std::int64_t dim = check_rows(op, x);
  const std::int64_t rows = x.numel() / dim;
  expect_like(op, "dy", dy, x.shape(), x);
  expect_like(op, "w", w, {dim}, x);
  expect_like(op, "rstd", rstd, {rows}, x);
  if (dx.defined()) expect_like(op, "dx", dx, x.shape(), x);
  if (dw.defined()) expect_like(op, "dw", dw, {dim}, x);
  if (x.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::rmsnorm_bwd<T>(dy.data<T>(), x.data<T>(), w.data<T>(), rstd.data<T>(), rows, dim,
                        ptr<T>(dx), ptr<T>(dw));
  });
}

void layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& y,
                   const Tensor& mean, const Tensor& rstd) {
  constexpr std::string_view op = "layernorm_fwd";
  const std::int64_t dim = check_rows(op, x);
  const std::int64_t rows = x.numel() / dim;
  expect_like(op, "w", w, {dim}, x);
  expect_like(op, "b", b, {dim}, x);
  expect_like(op, "y", y, x.shape(), x);
  expect_like(op, "mean", mean, {rows}, x);
  expect_like(op, "rstd", rstd, {rows}, x);
  check_eps(op, eps);
  if (x.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::layernorm_fwd<T>(x.data<T>(), w.data<T>(), b.data<T>(), rows, dim, eps, y.data<T>(),
                          mean.data<T>(), rstd.data<T>());
  });
}

void layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                   const Tensor& rstd, const Tensor& dx, const Tensor& dw, const Tensor& db) {
  constexpr std::string_view op = "layernorm_bwd";
  const std::int64_t dim = check_rows(op, x);
  const std::int64_t rows = x.numel() / dim;
  expect_like(op, "dy", dy, x.shape(), x);
  expect_like(op, "w", w, {dim}, x);
  expect_like(op, "mean", mean, {rows}, x);
  expect_like(op, "rstd", rstd, {rows}, x);
  if (dx.defined()) expect_like(op, "dx", dx, x.shape(), x);
  if (dw.defined()) expect_like(op, "dw", dw, {dim}, x);
  if (db.defined()) expect_like(op, "db", db, {dim}, x);
  if (x.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::layernorm_bwd<T>(dy.data<T>(), x.data<T>(), w.data<T>(), mean.data<T>(), rstd.data<T>(),
                          rows, dim, ptr<T>(dx), ptr<T>(dw), ptr<T>(db));
  });
}

}  // namespace hone::ops

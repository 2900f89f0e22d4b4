// ops::rmsnorm_* / layernorm_*: argument validation and device dispatch: the CPU reference, or
// on CUDA the bf16 kernels of kernels/norm (statistics in f32; weight gradients f32 or bf16,
// reduced deterministically through a workspace from the caching allocator).
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "cpu/norm.h"
#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the norm kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_NORM when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_NORM)
#define HONE_CUDA_NORM 1
#endif

#ifdef HONE_CUDA_NORM
#include "cuda/context.h"
#include "kernels/norm/norm.h"
#endif

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

// ---------------------------------------------------------------- CUDA
// x, w, b, y, dy, dx: bf16; mean, rstd: f32; dw, db: f32 or bf16 (one dtype for both).

// The largest row the kernels take (they name the limit for unaligned rows themselves).
constexpr std::int64_t kCudaMaxDim = 16384;

// x: bf16 (..., D), 1 ≤ D ≤ kCudaMaxDim. Returns D.
std::int64_t check_cuda_rows(std::string_view op, const Tensor& x) {
  expect_cuda_dtype(op, "x", x, {DType::bf16});
  HONE_CHECK(x.ndim() >= 1 && x.size(-1) >= 1 && x.size(-1) <= kCudaMaxDim, op,
             "argument 'x' has shape ", shape_str(x.shape()), "; expected (..., D) with 1 ≤ D ≤ ",
             kCudaMaxDim, " on ", x.device().str());
  return x.size(-1);
}

// `t`: dtype `dt`, the given shape (derived from x), x's device.
void expect_cuda_like(std::string_view op, std::string_view name, const Tensor& t, DType dt,
                      const Shape& shape, const Tensor& x) {
  expect_cuda_dtype(op, name, t, {dt});
  expect_shape(op, name, t, shape, described("x", x));
  expect_device(op, name, t, "x", x);
}

// dw / db: f32 or bf16, (D), on x's device; when both are given, one dtype.
void check_cuda_param_grads(std::string_view op, const Tensor& dw, const Tensor& db,
                            std::int64_t dim, const Tensor& x) {
  for (const auto& [name, g] : {std::pair<const char*, const Tensor*>{"dw", &dw}, {"db", &db}}) {
    if (!g->defined()) continue;
    expect_cuda_dtype(op, name, *g, {DType::f32, DType::bf16});
    expect_shape(op, name, *g, {dim}, described("x", x));
    expect_device(op, name, *g, "x", x);
  }
  if (dw.defined() && db.defined()) expect_dtype(op, "db", db, "dw", dw);
}

#ifdef HONE_CUDA_NORM
void* raw_or_null(const Tensor& t) { return t.defined() ? t.raw() : nullptr; }

void cuda_norm_fwd(kernels::NormKind kind, const Tensor& x, const Tensor& w, const Tensor& b,
                   double eps, const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  kernels::NormFwdParams p;
  p.kind = kind;
  p.x = x.raw();
  p.w = w.raw();
  p.b = raw_or_null(b);
  p.y = y.raw();
  p.mean = mean.defined() ? mean.data<float>() : nullptr;
  p.rstd = rstd.data<float>();
  p.dim = x.size(-1);
  p.rows = x.numel() / p.dim;
  p.eps = static_cast<float>(eps);
  if (p.rows == 0) return;
  cuda::DeviceGuard device(x.device().index);
  kernels::norm_fwd(p, cuda::current_stream());
}

void cuda_norm_bwd(kernels::NormKind kind, const Tensor& dy, const Tensor& x, const Tensor& w,
                   const Tensor& mean, const Tensor& rstd, const Tensor& dx, const Tensor& dw,
                   const Tensor& db) {
  kernels::NormBwdParams p;
  p.kind = kind;
  p.dy = dy.raw();
  p.x = x.raw();
  p.w = w.raw();
  p.mean = mean.defined() ? mean.data<float>() : nullptr;
  p.rstd = rstd.data<float>();
  p.dx = raw_or_null(dx);
  p.dw = raw_or_null(dw);
  p.db = raw_or_null(db);
  const Tensor& g = dw.defined() ? dw : db;
  p.grad_type = g.defined() && g.dtype() == DType::bf16 ? kernels::NormGradType::bf16
                                                        : kernels::NormGradType::f32;
  p.dim = x.size(-1);
  p.rows = x.numel() / p.dim;
  if (p.rows == 0 || (!p.dx && !p.dw && !p.db)) return;
  cuda::DeviceGuard device(x.device().index);
  const DeviceScratch workspace(x.device().index, kernels::norm_bwd_workspace_bytes(p));
  p.workspace = workspace.get();
  kernels::norm_bwd(p, cuda::current_stream());
}
#endif

}  // namespace

void rmsnorm_fwd(const Tensor& x, const Tensor& w, double eps, const Tensor& y, const Tensor& rstd) {
  constexpr std::string_view op = "rmsnorm_fwd";
  if (x.defined() && x.device().is_cuda()) {
    const std::int64_t dim = check_cuda_rows(op, x);
    expect_cuda_like(op, "w", w, DType::bf16, {dim}, x);
    expect_cuda_like(op, "y", y, DType::bf16, x.shape(), x);
    expect_cuda_like(op, "rstd", rstd, DType::f32, {x.numel() / dim}, x);
    check_eps(op, eps);
#ifdef HONE_CUDA_NORM
    return cuda_norm_fwd(kernels::NormKind::rms, x, w, Tensor{}, eps, y, Tensor{}, rstd);
#else
    cuda_unavailable(op, "norm");
#endif
  }
  const std::int64_t dim = check_rows(op, x);
  const std::int64_t rows = x.numel() / dim;
  expect_like(op, "w", w, {dim}, x);
  expect_like(op, "y", y, x.shape(), x);
  expect_like(op, "rstd", rstd, {rows}, x);
  check_eps(op, eps);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::rmsnorm_fwd<T>(x.data<T>(), w.data<T>(), rows, dim, eps, y.data<T>(), rstd.data<T>());
  });
}

void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                 const Tensor& dx, const Tensor& dw) {
  constexpr std::string_view op = "rmsnorm_bwd";
  if (x.defined() && x.device().is_cuda()) {
    const std::int64_t dim = check_cuda_rows(op, x);
    expect_cuda_like(op, "dy", dy, DType::bf16, x.shape(), x);
    expect_cuda_like(op, "w", w, DType::bf16, {dim}, x);
    expect_cuda_like(op, "rstd", rstd, DType::f32, {x.numel() / dim}, x);
    if (dx.defined()) expect_cuda_like(op, "dx", dx, DType::bf16, x.shape(), x);
    check_cuda_param_grads(op, dw, Tensor{}, dim, x);
#ifdef HONE_CUDA_NORM
    return cuda_norm_bwd(kernels::NormKind::rms, dy, x, w, Tensor{}, rstd, dx, dw, Tensor{});
#else
    cuda_unavailable(op, "norm");
#endif
  }
  const std::int64_t dim = check_rows(op, x);
  const std::int64_t rows = x.numel() / dim;
  expect_like(op, "dy", dy, x.shape(), x);
  expect_like(op, "w", w, {dim}, x);
  expect_like(op, "rstd", rstd, {rows}, x);
  if (dx.defined()) expect_like(op, "dx", dx, x.shape(), x);
  if (dw.defined()) expect_like(op, "dw", dw, {dim}, x);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::rmsnorm_bwd<T>(dy.data<T>(), x.data<T>(), w.data<T>(), rstd.data<T>(), rows, dim,
                        ptr<T>(dx), ptr<T>(dw));
  });
}

void layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& y,
                   const Tensor& mean, const Tensor& rstd) {
  constexpr std::string_view op = "layernorm_fwd";
  if (x.defined() && x.device().is_cuda()) {
    const std::int64_t dim = check_cuda_rows(op, x);
    const std::int64_t rows = x.numel() / dim;
    expect_cuda_like(op, "w", w, DType::bf16, {dim}, x);
    expect_cuda_like(op, "b", b, DType::bf16, {dim}, x);
    expect_cuda_like(op, "y", y, DType::bf16, x.shape(), x);
    expect_cuda_like(op, "mean", mean, DType::f32, {rows}, x);
    expect_cuda_like(op, "rstd", rstd, DType::f32, {rows}, x);
    check_eps(op, eps);
#ifdef HONE_CUDA_NORM
    return cuda_norm_fwd(kernels::NormKind::layer, x, w, b, eps, y, mean, rstd);
#else
    cuda_unavailable(op, "norm");
#endif
  }
  const std::int64_t dim = check_rows(op, x);
  const std::int64_t rows = x.numel() / dim;
  expect_like(op, "w", w, {dim}, x);
  expect_like(op, "b", b, {dim}, x);
  expect_like(op, "y", y, x.shape(), x);
  expect_like(op, "mean", mean, {rows}, x);
  expect_like(op, "rstd", rstd, {rows}, x);
  check_eps(op, eps);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::layernorm_fwd<T>(x.data<T>(), w.data<T>(), b.data<T>(), rows, dim, eps, y.data<T>(),
                          mean.data<T>(), rstd.data<T>());
  });
}

void layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                   const Tensor& rstd, const Tensor& dx, const Tensor& dw, const Tensor& db) {
  constexpr std::string_view op = "layernorm_bwd";
  if (x.defined() && x.device().is_cuda()) {
    const std::int64_t dim = check_cuda_rows(op, x);
    const std::int64_t rows = x.numel() / dim;
    expect_cuda_like(op, "dy", dy, DType::bf16, x.shape(), x);
    expect_cuda_like(op, "w", w, DType::bf16, {dim}, x);
    expect_cuda_like(op, "mean", mean, DType::f32, {rows}, x);
    expect_cuda_like(op, "rstd", rstd, DType::f32, {rows}, x);
    if (dx.defined()) expect_cuda_like(op, "dx", dx, DType::bf16, x.shape(), x);
    check_cuda_param_grads(op, dw, db, dim, x);
#ifdef HONE_CUDA_NORM
    return cuda_norm_bwd(kernels::NormKind::layer, dy, x, w, mean, rstd, dx, dw, db);
#else
    cuda_unavailable(op, "norm");
#endif
  }
  const std::int64_t dim = check_rows(op, x);
  const std::int64_t rows = x.numel() / dim;
  expect_like(op, "dy", dy, x.shape(), x);
  expect_like(op, "w", w, {dim}, x);
  expect_like(op, "mean", mean, {rows}, x);
  expect_like(op, "rstd", rstd, {rows}, x);
  if (dx.defined()) expect_like(op, "dx", dx, x.shape(), x);
  if (dw.defined()) expect_like(op, "dw", dw, {dim}, x);
  if (db.defined()) expect_like(op, "db", db, {dim}, x);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::layernorm_bwd<T>(dy.data<T>(), x.data<T>(), w.data<T>(), mean.data<T>(), rstd.data<T>(),
                          rows, dim, ptr<T>(dx), ptr<T>(dw), ptr<T>(db));
  });
}

}  // namespace hone::ops

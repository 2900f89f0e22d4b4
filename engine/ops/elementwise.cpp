// ops::add_ / scale_ / mul_ / dropout_mask_ / bias_add_ / bias_bwd: argument validation and
// device dispatch to engine/cpu/elementwise, or on CUDA to kernels/elementwise (f32 or bf16, fp32
// math; bias_bwd reduced deterministically through a workspace from the caching allocator).
#include "cpu/elementwise.h"

#include <cmath>
#include <string_view>

#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the elementwise kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_ELEMENTWISE when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_ELEMENTWISE)
#define HONE_CUDA_ELEMENTWISE 1
#endif

#ifdef HONE_CUDA_ELEMENTWISE
#include "cuda/context.h"
#include "kernels/elementwise/elementwise.h"
#endif

namespace hone::ops {

namespace {

// On CUDA the element-wise ops take f32 or bf16.
bool on_cuda(std::string_view op, std::string_view name, const Tensor& t) {
  if (!t.defined() || !t.device().is_cuda()) return false;
  expect_cuda_dtype(op, name, t, {DType::f32, DType::bf16});
  return true;
}

#ifdef HONE_CUDA_ELEMENTWISE
kernels::ElementwiseType elem_type(const Tensor& t) {
  return t.dtype() == DType::f32 ? kernels::ElementwiseType::f32 : kernels::ElementwiseType::bf16;
}
#endif

}  // namespace

void add_(const Tensor& dst, const Tensor& src, double alpha) {
  constexpr std::string_view op = "add_";
  const bool cuda = on_cuda(op, "dst", dst);
  if (!cuda) expect_float(op, "dst", dst);
  expect_dtype(op, "src", src, "dst", dst);
  expect_shape(op, "src", src, dst.shape(), described("dst", dst));
  expect_device(op, "src", src, "dst", dst);
  expect_same_or_apart(op, "src", src, "dst", dst);  // dst += alpha · dst is fine
  if (cuda) {
#ifdef HONE_CUDA_ELEMENTWISE
    if (dst.numel() == 0) return;
    cuda::DeviceGuard device(dst.device().index);
    kernels::add({dst.raw(), src.raw(), elem_type(dst), static_cast<float>(alpha), dst.numel()},
                 cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "elementwise");
#endif
  }
  dispatch_float(op, dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::add_<T>(dst.data<T>(), src.data<T>(), dst.numel(), static_cast<T>(alpha));
  });
}

void scale_(const Tensor& x, double alpha) {
  constexpr std::string_view op = "scale_";
  if (on_cuda(op, "x", x)) {
#ifdef HONE_CUDA_ELEMENTWISE
    if (x.numel() == 0) return;
    cuda::DeviceGuard device(x.device().index);
    kernels::scale({x.raw(), elem_type(x), static_cast<float>(alpha), x.numel()},
                   cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "elementwise");
#endif
  }
  expect_float(op, "x", x);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::scale_<T>(x.data<T>(), x.numel(), static_cast<T>(alpha));
  });
}

void mul_(const Tensor& x, const Tensor& m) {
  constexpr std::string_view op = "mul_";
  const bool cuda = on_cuda(op, "x", x);
  if (!cuda) expect_float(op, "x", x);
  expect_shape(op, "m", m, x.shape(), described("x", x));
  expect_device(op, "m", m, "x", x);
  if (cuda)
    expect_cuda_dtype(op, "m", m, {DType::f32, DType::bf16});
  else
    expect_dtype(op, "m", m, "x", x);
  expect_same_or_apart(op, "m", m, "x", x);
  if (cuda) {
#ifdef HONE_CUDA_ELEMENTWISE
    if (x.numel() == 0) return;
    cuda::DeviceGuard device(x.device().index);
    kernels::MulParams p;
    p.x = x.raw();
    p.m = m.raw();
    p.x_type = elem_type(x);
    p.m_type = elem_type(m);
    p.n = x.numel();
    kernels::mul(p, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "elementwise");
#endif
  }
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::mul_<T>(x.data<T>(), m.data<T>(), x.numel());
  });
}

void dropout_mask_(const Tensor& u, double p) {
  constexpr std::string_view op = "dropout_mask_";
  HONE_CHECK(p >= 0 && p < 1, op, "p is ", p, "; expected [0, 1)");
  const double keep = 1.0 / (1.0 - p);
  if (u.defined() && u.device().is_cuda()) {
    expect_cuda_dtype(op, "u", u, {DType::f32});
#ifdef HONE_CUDA_ELEMENTWISE
    if (u.numel() == 0) return;
    // The smallest float ≥ p: for every f32 u, u ≥ threshold exactly when u ≥ p, as the CPU
    // compares in double.
    float threshold = static_cast<float>(p);
    if (static_cast<double>(threshold) < p) threshold = std::nextafter(threshold, 2.0f);
    cuda::DeviceGuard device(u.device().index);
    kernels::DropoutMaskParams k;
    k.u = u.data<float>();
    k.threshold = threshold;
    k.keep = static_cast<float>(keep);
    k.n = u.numel();
    kernels::dropout_mask(k, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "elementwise");
#endif
  }
  expect_float(op, "u", u);
  dispatch_float(op, u.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::dropout_mask_<T>(u.data<T>(), u.numel(), p, static_cast<T>(keep));
  });
}

void bias_add_(const Tensor& x, const Tensor& b) {
  constexpr std::string_view op = "bias_add_";
  const bool cuda = on_cuda(op, "x", x);
  if (!cuda) expect_float(op, "x", x);
  HONE_CHECK(x.ndim() >= 1, op, "argument 'x' must have at least one dimension");
  expect_dtype(op, "b", b, "x", x);
  expect_shape(op, "b", b, {x.size(-1)}, described("x", x));
  expect_device(op, "b", b, "x", x);
  const std::int64_t features = x.size(-1), rows = features ? x.numel() / features : 0;
  if (cuda) {
#ifdef HONE_CUDA_ELEMENTWISE
    if (rows == 0) return;
    cuda::DeviceGuard device(x.device().index);
    kernels::bias_add({x.raw(), b.raw(), elem_type(x), rows, features}, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "elementwise");
#endif
  }
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::bias_add_<T>(x.data<T>(), b.data<T>(), rows, features);
  });
}

void bias_bwd(const Tensor& dy, const Tensor& db) {
  constexpr std::string_view op = "bias_bwd";
  if (on_cuda(op, "dy", dy)) {
    // db (+=): f32, or bf16 like a bf16 dy.
    HONE_CHECK(dy.ndim() >= 1, op, "argument 'dy' must have at least one dimension");
    if (!db.defined()) return;
    if (dy.dtype() == DType::bf16)
      expect_cuda_dtype(op, "db", db, {DType::f32, DType::bf16});
    else
      expect_cuda_dtype(op, "db", db, {DType::f32});
    expect_shape(op, "db", db, {dy.size(-1)}, described("dy", dy));
    expect_device(op, "db", db, "dy", dy);
#ifdef HONE_CUDA_ELEMENTWISE
    const std::int64_t features = dy.size(-1), rows = features ? dy.numel() / features : 0;
    if (rows == 0) return;
    cuda::DeviceGuard device(dy.device().index);
    const DeviceScratch workspace(dy.device().index,
                                  kernels::bias_bwd_workspace_bytes(rows, features));
    kernels::BiasBwdParams p;
    p.dy = dy.raw();
    p.type = elem_type(dy);
    p.db = db.raw();
    p.grad_type = elem_type(db);
    p.workspace = workspace.get();
    p.rows = rows;
    p.features = features;
    kernels::bias_bwd(p, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "elementwise");
#endif
  }
  expect_float(op, "dy", dy);
  HONE_CHECK(dy.ndim() >= 1, op, "argument 'dy' must have at least one dimension");
  if (!db.defined()) return;
  expect_dtype(op, "db", db, "dy", dy);
  expect_shape(op, "db", db, {dy.size(-1)}, described("dy", dy));
  expect_device(op, "db", db, "dy", dy);
  const std::int64_t features = dy.size(-1), rows = features ? dy.numel() / features : 0;
  dispatch_float(op, dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::bias_bwd<T>(dy.data<T>(), db.data<T>(), rows, features);
  });
}

}  // namespace hone::ops

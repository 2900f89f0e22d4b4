// ops::add_ / scale_: argument validation and device dispatch to engine/cpu/elementwise.
#include "cpu/elementwise.h"

#include <string_view>

#include "ops/check.h"
#include "ops/ops.h"

namespace hone::ops {

void add_(const Tensor& dst, const Tensor& src, double alpha) {
  constexpr std::string_view op = "add_";
  expect_float(op, "dst", dst);
  expect_dtype(op, "src", src, "dst", dst);
  expect_shape(op, "src", src, dst.shape(), described("dst", dst));
  expect_device(op, "src", src, "dst", dst);
  // The same tensor is fine (dst += alpha · dst); a partial overlap would make the result
  // depend on the order the chunks run in.
  if (dst.numel() > 0 && dst.raw() != src.raw()) {
    const auto* d0 = static_cast<const char*>(dst.raw());
    const auto* s0 = static_cast<const char*>(src.raw());
    HONE_CHECK(!(d0 < s0 + src.nbytes() && s0 < d0 + dst.nbytes()), op, "argument 'src' ",
               shape_str(src.shape()), " partly overlaps dst ", shape_str(dst.shape()));
  }
  if (dst.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::add_<T>(dst.data<T>(), src.data<T>(), dst.numel(), static_cast<T>(alpha));
  });
}

void scale_(const Tensor& x, double alpha) {
  constexpr std::string_view op = "scale_";
  expect_float(op, "x", x);
  if (x.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::scale_<T>(x.data<T>(), x.numel(), static_cast<T>(alpha));
  });
}

void bias_add_(const Tensor& x, const Tensor& b) {
  constexpr std::string_view op = "bias_add_";
  expect_float(op, "x", x);
  HONE_CHECK(x.ndim() >= 1, op, "argument 'x' must have at least one dimension");
  expect_dtype(op, "b", b, "x", x);
  expect_shape(op, "b", b, {x.size(-1)}, described("x", x));
  expect_device(op, "b", b, "x", x);
  if (x.device().is_cuda()) no_cuda_kernel(op);
  const std::int64_t features = x.size(-1), rows = features ? x.numel() / features : 0;
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::bias_add_<T>(x.data<T>(), b.data<T>(), rows, features);
  });
}

void bias_bwd(const Tensor& dy, const Tensor& db) {
  constexpr std::string_view op = "bias_bwd";
  expect_float(op, "dy", dy);
  HONE_CHECK(dy.ndim() >= 1, op, "argument 'dy' must have at least one dimension");
  if (!db.defined()) return;
  expect_dtype(op, "db", db, "dy", dy);
  expect_shape(op, "db", db, {dy.size(-1)}, described("dy", dy));
  expect_device(op, "db", db, "dy", dy);
  if (dy.device().is_cuda()) no_cuda_kernel(op);
  const std::int64_t features = dy.size(-1), rows = features ? dy.numel() / features : 0;
  dispatch_float(op, dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::bias_bwd<T>(dy.data<T>(), db.data<T>(), rows, features);
  });
}

}  // namespace hone::ops

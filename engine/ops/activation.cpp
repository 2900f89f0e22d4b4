// ops::swiglu_* / gelu_*: argument validation and device dispatch.
#include <cstdint>
#include <string>

#include "cpu/activation.h"
#include "ops/check.h"
#include "ops/ops.h"

namespace hone::ops {

namespace {

// `t` has ref's dtype, shape and device.
void expect_same(std::string_view op, std::string_view name, const Tensor& t,
                 std::string_view ref_name, const Tensor& ref) {
  expect_dtype(op, name, t, ref_name, ref);
  expect_shape(op, name, t, ref.shape(), described(ref_name, ref));
  expect_device(op, name, t, ref_name, ref);
}

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void swiglu_fwd(const Tensor& gate, const Tensor& up, const Tensor& out) {
  constexpr std::string_view op = "swiglu_fwd";
  expect_float(op, "gate", gate);
  expect_same(op, "up", up, "gate", gate);
  expect_same(op, "out", out, "gate", gate);
  if (gate.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, gate.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::swiglu_fwd<T>(gate.data<T>(), up.data<T>(), gate.numel(), out.data<T>());
  });
}

void swiglu_bwd(const Tensor& dout, const Tensor& gate, const Tensor& up, const Tensor& dgate,
                const Tensor& dup) {
  constexpr std::string_view op = "swiglu_bwd";
  expect_float(op, "gate", gate);
  expect_same(op, "up", up, "gate", gate);
  expect_same(op, "dout", dout, "gate", gate);
  if (dgate.defined()) expect_same(op, "dgate", dgate, "gate", gate);
  if (dup.defined()) expect_same(op, "dup", dup, "gate", gate);
  if (gate.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, gate.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::swiglu_bwd<T>(dout.data<T>(), gate.data<T>(), up.data<T>(), gate.numel(), ptr<T>(dgate),
                       ptr<T>(dup));
  });
}

void gelu_fwd(const Tensor& x, const Tensor& y) {
  constexpr std::string_view op = "gelu_fwd";
  expect_float(op, "x", x);
  expect_same(op, "y", y, "x", x);
  if (x.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::gelu_fwd<T>(x.data<T>(), x.numel(), y.data<T>());
  });
}

void gelu_bwd(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  constexpr std::string_view op = "gelu_bwd";
  expect_float(op, "x", x);
  expect_same(op, "dy", dy, "x", x);
  if (dx.defined()) expect_same(op, "dx", dx, "x", x);
  if (x.device().is_cuda()) no_cuda_kernel(op);
  if (!dx.defined()) return;
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::gelu_bwd<T>(dy.data<T>(), x.data<T>(), x.numel(), dx.data<T>());
  });
}

}  // namespace hone::ops

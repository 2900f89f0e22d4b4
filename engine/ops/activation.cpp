// ops::swiglu_* / gelu_*: argument validation and device dispatch: the CPU reference, or on
// CUDA the bf16 kernels of kernels/activation.
#include <cstdint>
#include <string>

#include "cpu/activation.h"
#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the activation kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_ACTIVATION when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_ACTIVATION)
#define HONE_CUDA_ACTIVATION 1
#endif

#ifdef HONE_CUDA_ACTIVATION
#include "cuda/context.h"
#include "kernels/activation/activation.h"
#endif

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

// On CUDA every tensor is bf16 (the kernels compute in fp32 and round each output once).
bool on_cuda(std::string_view op, std::string_view name, const Tensor& t) {
  if (!t.defined() || !t.device().is_cuda()) return false;
  expect_cuda_dtype(op, name, t, {DType::bf16});
  return true;
}

#ifdef HONE_CUDA_ACTIVATION
void* raw_or_null(const Tensor& t) { return t.defined() ? t.raw() : nullptr; }

// Runs `launch(stream)` on t's device's current stream unless t is empty.
template <class F>
void run_cuda(const Tensor& t, F&& launch) {
  if (t.numel() == 0) return;
  cuda::DeviceGuard device(t.device().index);
  launch(cuda::current_stream());
}
#endif

}  // namespace

void swiglu_fwd(const Tensor& gate, const Tensor& up, const Tensor& out) {
  constexpr std::string_view op = "swiglu_fwd";
  if (on_cuda(op, "gate", gate)) {
    expect_same(op, "up", up, "gate", gate);
    expect_same(op, "out", out, "gate", gate);
#ifdef HONE_CUDA_ACTIVATION
    return run_cuda(gate, [&](cudaStream_t s) {
      kernels::swiglu_fwd({gate.raw(), up.raw(), out.raw(), gate.numel()}, s);
    });
#else
    cuda_unavailable(op, "activation");
#endif
  }
  expect_float(op, "gate", gate);
  expect_same(op, "up", up, "gate", gate);
  expect_same(op, "out", out, "gate", gate);
  dispatch_float(op, gate.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::swiglu_fwd<T>(gate.data<T>(), up.data<T>(), gate.numel(), out.data<T>());
  });
}

void swiglu_bwd(const Tensor& dout, const Tensor& gate, const Tensor& up, const Tensor& dgate,
                const Tensor& dup) {
  constexpr std::string_view op = "swiglu_bwd";
  if (on_cuda(op, "gate", gate)) {
    expect_same(op, "up", up, "gate", gate);
    expect_same(op, "dout", dout, "gate", gate);
    if (dgate.defined()) expect_same(op, "dgate", dgate, "gate", gate);
    if (dup.defined()) expect_same(op, "dup", dup, "gate", gate);
#ifdef HONE_CUDA_ACTIVATION
    return run_cuda(gate, [&](cudaStream_t s) {
      kernels::swiglu_bwd({dout.raw(), gate.raw(), up.raw(), raw_or_null(dgate), raw_or_null(dup),
                           gate.numel()},
                          s);
    });
#else
    cuda_unavailable(op, "activation");
#endif
  }
  expect_float(op, "gate", gate);
  expect_same(op, "up", up, "gate", gate);
  expect_same(op, "dout", dout, "gate", gate);
  if (dgate.defined()) expect_same(op, "dgate", dgate, "gate", gate);
  if (dup.defined()) expect_same(op, "dup", dup, "gate", gate);
  dispatch_float(op, gate.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::swiglu_bwd<T>(dout.data<T>(), gate.data<T>(), up.data<T>(), gate.numel(), ptr<T>(dgate),
                       ptr<T>(dup));
  });
}

void gelu_fwd(const Tensor& x, const Tensor& y) {
  constexpr std::string_view op = "gelu_fwd";
  if (on_cuda(op, "x", x)) {
    expect_same(op, "y", y, "x", x);
#ifdef HONE_CUDA_ACTIVATION
    return run_cuda(x, [&](cudaStream_t s) { kernels::gelu_fwd({x.raw(), y.raw(), x.numel()}, s); });
#else
    cuda_unavailable(op, "activation");
#endif
  }
  expect_float(op, "x", x);
  expect_same(op, "y", y, "x", x);
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::gelu_fwd<T>(x.data<T>(), x.numel(), y.data<T>());
  });
}

void gelu_bwd(const Tensor& dy, const Tensor& x, const Tensor& dx) {
  constexpr std::string_view op = "gelu_bwd";
  if (on_cuda(op, "x", x)) {
    expect_same(op, "dy", dy, "x", x);
    if (dx.defined()) expect_same(op, "dx", dx, "x", x);
#ifdef HONE_CUDA_ACTIVATION
    if (!dx.defined()) return;
    return run_cuda(x, [&](cudaStream_t s) {
      kernels::gelu_bwd({dy.raw(), x.raw(), dx.raw(), x.numel()}, s);
    });
#else
    cuda_unavailable(op, "activation");
#endif
  }
  expect_float(op, "x", x);
  expect_same(op, "dy", dy, "x", x);
  if (dx.defined()) expect_same(op, "dx", dx, "x", x);
  if (!dx.defined()) return;
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::gelu_bwd<T>(dy.data<T>(), x.data<T>(), x.numel(), dx.data<T>());
  });
}

}  // namespace hone::ops

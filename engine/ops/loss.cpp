// ops::cross_entropy_fwd / cross_entropy_bwd: argument validation and device dispatch: the CPU
// reference, or on CUDA the chunked kernels of kernels/loss (per-row values in f32).
#include <cmath>
#include <cstdint>

#include "cpu/loss.h"
#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the loss kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_LOSS when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_LOSS)
#define HONE_CUDA_LOSS 1
#endif

#ifdef HONE_CUDA_LOSS
#include "cuda/context.h"
#include "kernels/loss/loss.h"
#endif

namespace hone::ops {

namespace {

// Checks what both directions share: logits (N, V) float; targets i32/i64 (N); optional weights
// (N) in logits' dtype; everything on logits' device. Returns V.
std::int64_t check_ce_common(std::string_view op, const Tensor& logits, const Tensor& targets,
                             const CrossEntropyArgs& args) {
  expect_float(op, "logits", logits);
  expect_ndim(op, "logits", logits, 2);
  const std::int64_t n = logits.size(0);
  const std::int64_t vocab = logits.size(1);
  HONE_CHECK(vocab >= 1, op, "argument 'logits' has shape ", shape_str(logits.shape()),
             "; expected at least one class");
  const std::string from = described("logits", logits);
  expect_index(op, "targets", targets);
  expect_shape(op, "targets", targets, {n}, from);
  expect_device(op, "targets", targets, "logits", logits);
  if (args.weights.defined()) {
    expect_dtype(op, "weights", args.weights, "logits", logits);
    expect_shape(op, "weights", args.weights, {n}, from);
    expect_device(op, "weights", args.weights, "logits", logits);
  }
  return vocab;
}

// An output or saved (N) tensor in logits' dtype on logits' device.
void check_row_tensor(std::string_view op, std::string_view name, const Tensor& t,
                      const Tensor& logits) {
  expect_dtype(op, name, t, "logits", logits);
  expect_shape(op, name, t, {logits.size(0)}, described("logits", logits));
  expect_device(op, name, t, "logits", logits);
}

// Every target is in [0, V) or equals ignore_index (host tensors only).
template <class I>
void check_target_values(std::string_view op, const Tensor& targets, std::int64_t vocab,
                         std::int64_t ignore_index) {
  const I* t = targets.data<I>();
  for (std::int64_t n = 0; n < targets.numel(); ++n) {
    const std::int64_t v = static_cast<std::int64_t>(t[n]);
    HONE_CHECK(v == ignore_index || (v >= 0 && v < vocab), op, "argument 'targets' has value ", v,
               " at row ", n, "; expected a class in [0, ", vocab, ") or ignore_index ",
               ignore_index);
  }
}

void check_targets_in_range(std::string_view op, const Tensor& targets, std::int64_t vocab,
                            std::int64_t ignore_index) {
  if (targets.dtype() == DType::i32)
    check_target_values<std::int32_t>(op, targets, vocab, ignore_index);
  else
    check_target_values<std::int64_t>(op, targets, vocab, ignore_index);
}

template <class T>
const T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// ---------------------------------------------------------------- CUDA
// logits: bf16 or f32 (N, V); targets i32/i64 (N) on the device, not range-checked (that would
// need a host round trip: a target outside [0, V) that is not ignore_index gives a NaN row);
// weights, losses, lse, dlosses: f32 (N); dlogits: bf16 or f32 (N, V).
std::int64_t check_cuda_ce_common(std::string_view op, const Tensor& logits, const Tensor& targets,
                                  const CrossEntropyArgs& args) {
  expect_cuda_dtype(op, "logits", logits, {DType::bf16, DType::f32});
  expect_ndim(op, "logits", logits, 2);
  const std::int64_t n = logits.size(0);
  const std::int64_t vocab = logits.size(1);
  HONE_CHECK(vocab >= 1, op, "argument 'logits' has shape ", shape_str(logits.shape()),
             "; expected at least one class");
  const std::string from = described("logits", logits);
  expect_index(op, "targets", targets);
  expect_shape(op, "targets", targets, {n}, from);
  expect_device(op, "targets", targets, "logits", logits);
  if (args.weights.defined()) {
    expect_cuda_dtype(op, "weights", args.weights, {DType::f32});
    expect_shape(op, "weights", args.weights, {n}, from);
    expect_device(op, "weights", args.weights, "logits", logits);
  }
  return vocab;
}

// An f32 (N) tensor on logits' device.
void check_cuda_row_tensor(std::string_view op, std::string_view name, const Tensor& t,
                           const Tensor& logits) {
  expect_cuda_dtype(op, name, t, {DType::f32});
  expect_shape(op, name, t, {logits.size(0)}, described("logits", logits));
  expect_device(op, name, t, "logits", logits);
}

#ifdef HONE_CUDA_LOSS
kernels::LossType loss_type(const Tensor& t) {
  return t.dtype() == DType::f32 ? kernels::LossType::f32 : kernels::LossType::bf16;
}

// The launch's tensors; dlogits only when defined (the forward alone leaves it null).
kernels::CrossEntropyParams ce_params(const Tensor& logits, const Tensor& targets,
                                      const CrossEntropyArgs& args, const Tensor& dlogits = {}) {
  kernels::CrossEntropyParams p;
  if (dlogits.defined()) {
    p.dlogits = dlogits.raw();
    p.dlogits_type = loss_type(dlogits);
  }
  p.rows = logits.size(0);
  p.vocab = logits.size(1);
  p.logits = logits.raw();
  p.logits_type = loss_type(logits);
  p.targets = targets.raw();
  p.target_type =
      targets.dtype() == DType::i32 ? kernels::LossIndexType::i32 : kernels::LossIndexType::i64;
  p.ignore_index = args.ignore_index;
  p.weights = args.weights.defined() ? args.weights.data<float>() : nullptr;
  return p;
}
#endif

// The gradient output: the logits' shape and device; on a device bf16 or f32, on the CPU the
// logits' dtype; the logits themselves or apart from them.
void check_dlogits(std::string_view op, const Tensor& dlogits, const Tensor& logits) {
  if (logits.device().is_cuda()) expect_cuda_dtype(op, "dlogits", dlogits, {DType::bf16, DType::f32});
  else expect_dtype(op, "dlogits", dlogits, "logits", logits);
  expect_shape(op, "dlogits", dlogits, logits.shape(), described("logits", logits));
  expect_device(op, "dlogits", dlogits, "logits", logits);
  expect_same_or_apart(op, "dlogits", dlogits, "logits", logits);
}

// The forward, and with a defined dlogits the gradient for dlosses[n] = dloss in the same pass
// (cross_entropy_fwd_bwd).
void ce_forward(std::string_view op, const Tensor& logits, const Tensor& targets,
                const CrossEntropyArgs& args, const Tensor& losses, const Tensor& lse,
                const Tensor& dlogits, double dloss) {
  if (logits.defined() && logits.device().is_cuda()) {
    check_cuda_ce_common(op, logits, targets, args);
    check_cuda_row_tensor(op, "losses", losses, logits);
    check_cuda_row_tensor(op, "lse", lse, logits);
    if (dlogits.defined()) check_dlogits(op, dlogits, logits);
#ifdef HONE_CUDA_LOSS
    if (logits.size(0) == 0) return;
    cuda::DeviceGuard device(logits.device().index);
    kernels::CrossEntropyParams p = ce_params(logits, targets, args, dlogits);
    p.losses = losses.data<float>();
    p.lse = lse.data<float>();
    p.dloss = static_cast<float>(dloss);
    kernels::cross_entropy_fwd(p, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "loss");
#endif
  }
  const std::int64_t vocab = check_ce_common(op, logits, targets, args);
  check_row_tensor(op, "losses", losses, logits);
  check_row_tensor(op, "lse", lse, logits);
  if (dlogits.defined()) check_dlogits(op, dlogits, logits);
  check_targets_in_range(op, targets, vocab, args.ignore_index);
  const std::int64_t n = logits.size(0);
  dispatch_float(op, logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_index(targets.dtype(), [&](auto itag) {
      using I = decltype(itag);
      const T* w = optional_data<T>(args.weights);
      if (dlogits.defined())
        cpu::cross_entropy_fwd_bwd<T, I>(logits.data<T>(), targets.data<I>(), w, n, vocab,
                                         args.ignore_index, static_cast<T>(dloss),
                                         losses.data<T>(), lse.data<T>(), dlogits.data<T>());
      else
        cpu::cross_entropy_fwd<T, I>(logits.data<T>(), targets.data<I>(), w, n, vocab,
                                     args.ignore_index, losses.data<T>(), lse.data<T>());
    });
  });
}

}  // namespace

void cross_entropy_fwd(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                       const Tensor& losses, const Tensor& lse) {
  ce_forward("cross_entropy_fwd", logits, targets, args, losses, lse, Tensor(), 1.0);
}

void cross_entropy_fwd_bwd(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                           double dloss, const Tensor& losses, const Tensor& lse,
                           const Tensor& dlogits) {
  constexpr std::string_view op = "cross_entropy_fwd_bwd";
  HONE_CHECK(std::isfinite(dloss), op, "dloss = ", dloss, "; expected a finite value");
  expect_defined(op, "dlogits", dlogits);
  ce_forward(op, logits, targets, args, losses, lse, dlogits, dloss);
}

void cross_entropy_bwd(const Tensor& dlosses, const Tensor& logits, const Tensor& targets,
                       const Tensor& lse, const CrossEntropyArgs& args, const Tensor& dlogits) {
  constexpr std::string_view op = "cross_entropy_bwd";
  if (logits.defined() && logits.device().is_cuda()) {
    check_cuda_ce_common(op, logits, targets, args);
    check_cuda_row_tensor(op, "dlosses", dlosses, logits);
    check_cuda_row_tensor(op, "lse", lse, logits);
    if (!dlogits.defined()) return;  // an undefined gradient output is skipped
    check_dlogits(op, dlogits, logits);
#ifdef HONE_CUDA_LOSS
    if (logits.size(0) == 0) return;
    cuda::DeviceGuard device(logits.device().index);
    kernels::CrossEntropyParams p = ce_params(logits, targets, args, dlogits);
    p.lse = lse.data<float>();
    p.dlosses = dlosses.data<float>();
    kernels::cross_entropy_bwd(p, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "loss");
#endif
  }
  const std::int64_t vocab = check_ce_common(op, logits, targets, args);
  check_row_tensor(op, "dlosses", dlosses, logits);
  check_row_tensor(op, "lse", lse, logits);
  if (!dlogits.defined()) return;  // an undefined gradient output is skipped
  check_dlogits(op, dlogits, logits);
  check_targets_in_range(op, targets, vocab, args.ignore_index);
  const std::int64_t n = logits.size(0);
  dispatch_float(op, logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_index(targets.dtype(), [&](auto itag) {
      using I = decltype(itag);
      cpu::cross_entropy_bwd<T, I>(dlosses.data<T>(), logits.data<T>(), targets.data<I>(),
                                   lse.data<T>(), optional_data<T>(args.weights), n, vocab,
                                   args.ignore_index, dlogits.data<T>());
    });
  });
}

}  // namespace hone::ops

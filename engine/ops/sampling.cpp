// ops::sample and ops::argmax: argument validation and device dispatch: the CPU reference, or on
// CUDA the kernel of kernels/sampling (one block per row, the CPU's draw rule exactly).
#include <cmath>
#include <cstdint>

#include "cpu/sampling.h"
#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the sampling kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_SAMPLING when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_SAMPLING)
#define HONE_CUDA_SAMPLING 1
#endif

#ifdef HONE_CUDA_SAMPLING
#include "cuda/context.h"
#include "kernels/sampling/sampling.h"
#endif

namespace hone::ops {

namespace {

// logits (R, V) float (on CUDA: f32 or bf16) with V ≥ 1; out i64 (R) on logits' device.
void check_rows(std::string_view op, const Tensor& logits, const Tensor& out) {
  if (logits.defined() && logits.device().is_cuda())
    expect_cuda_dtype(op, "logits", logits, {DType::f32, DType::bf16});
  else
    expect_float(op, "logits", logits);
  expect_ndim(op, "logits", logits, 2);
  HONE_CHECK(logits.size(1) >= 1, op, "argument 'logits' has shape ", shape_str(logits.shape()),
             "; expected at least one class");
  expect_defined(op, "out", out);
  HONE_CHECK(out.dtype() == DType::i64, op, "argument 'out' has dtype ", dtype_name(out.dtype()),
             "; expected i64");
  expect_shape(op, "out", out, {logits.size(0)}, described("logits", logits));
  expect_device(op, "out", out, "logits", logits);
}

// Enqueues the sampling kernel (temperature 0: greedy, which is argmax) on logits' device.
void cuda_sample(std::string_view op, const Tensor& logits, const SampleArgs& args,
                 const Tensor& out) {
#ifdef HONE_CUDA_SAMPLING
  if (logits.size(0) == 0) return;
  cuda::DeviceGuard device(logits.device().index);
  kernels::SampleParams p;
  p.rows = logits.size(0);
  p.vocab = logits.size(1);
  p.logits = logits.raw();
  p.logits_type = logits.dtype() == DType::f32 ? kernels::SampleLogitsType::f32
                                               : kernels::SampleLogitsType::bf16;
  p.out = out.data<std::int64_t>();
  p.temperature = args.temperature;
  p.top_k = args.top_k;
  p.top_p = args.top_p;
  p.seed = args.seed;
  p.offset = args.offset;
  kernels::sample(p, cuda::current_stream());
#else
  (void)logits, (void)args, (void)out;
  cuda_unavailable(op, "sampling");
#endif
}

}  // namespace

void sample(const Tensor& logits, const SampleArgs& args, const Tensor& out) {
  constexpr std::string_view op = "sample";
  check_rows(op, logits, out);
  HONE_CHECK(std::isfinite(args.temperature) && args.temperature >= 0.0, op,
             "argument 'temperature' is ", args.temperature, "; expected a finite value >= 0");
  HONE_CHECK(args.top_k >= 0, op, "argument 'top_k' is ", args.top_k, "; expected >= 0 (0: off)");
  HONE_CHECK(args.top_p > 0.0 && args.top_p <= 1.0, op, "argument 'top_p' is ", args.top_p,
             "; expected in (0, 1] (1: off)");
  if (logits.device().is_cuda()) {
    // The same 1 / temperature check as below, before anything is enqueued.
    HONE_CHECK(args.temperature == 0.0 ||
                   std::isfinite(cpu::sampling_inv_temperature(args.temperature)),
               op, "argument 'temperature' is ", args.temperature, "; 1 / temperature overflows f32");
    return cuda_sample(op, logits, args, out);
  }
  cpu::SampleConfig c;
  c.greedy = args.temperature == 0.0;
  c.inv_temperature = c.greedy ? 1.0f : cpu::sampling_inv_temperature(args.temperature);
  HONE_CHECK(c.greedy || std::isfinite(c.inv_temperature), op, "argument 'temperature' is ",
             args.temperature, "; 1 / temperature overflows f32");
  c.top_k = args.top_k;
  c.top_p = cpu::sampling_top_p_fixed(args.top_p);
  c.seed = args.seed;
  c.offset = args.offset;
  dispatch_float(op, logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::sample<T>(logits.data<T>(), logits.size(0), logits.size(1), c,
                   out.data<std::int64_t>());
  });
}

void argmax(const Tensor& logits, const Tensor& out) {
  constexpr std::string_view op = "argmax";
  check_rows(op, logits, out);
  if (logits.device().is_cuda()) {
    SampleArgs greedy;
    greedy.temperature = 0.0;  // the kernel's greedy rule is argmax: lowest index, NaN as −inf
    return cuda_sample(op, logits, greedy, out);
  }
  dispatch_float(op, logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::argmax<T>(logits.data<T>(), logits.size(0), logits.size(1), out.data<std::int64_t>());
  });
}

}  // namespace hone::ops

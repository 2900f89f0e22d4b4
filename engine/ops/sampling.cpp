// ops::sample and ops::argmax: argument validation and device dispatch.
#include <cmath>
#include <cstdint>

#include "cpu/sampling.h"
#include "ops/check.h"
#include "ops/ops.h"

namespace hone::ops {

namespace {

// logits (R, V) float with V ≥ 1; out i64 (R) on logits' device.
void check_rows(std::string_view op, const Tensor& logits, const Tensor& out) {
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

}  // namespace

void sample(const Tensor& logits, const SampleArgs& args, const Tensor& out) {
  constexpr std::string_view op = "sample";
  check_rows(op, logits, out);
  HONE_CHECK(std::isfinite(args.temperature) && args.temperature >= 0.0, op,
             "argument 'temperature' is ", args.temperature, "; expected a finite value >= 0");
  HONE_CHECK(args.top_k >= 0, op, "argument 'top_k' is ", args.top_k, "; expected >= 0 (0: off)");
  HONE_CHECK(args.top_p > 0.0 && args.top_p <= 1.0, op, "argument 'top_p' is ", args.top_p,
             "; expected in (0, 1] (1: off)");
  if (logits.device().is_cuda()) no_cuda_kernel(op);
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
  if (logits.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::argmax<T>(logits.data<T>(), logits.size(0), logits.size(1), out.data<std::int64_t>());
  });
}

}  // namespace hone::ops

// ops::adamw_step, grad_norm and clip_grad_norm: argument validation and device dispatch.
#include <cmath>
#include <cstdint>
#include <string>

#include "cpu/optim.h"
#include "ops/check.h"
#include "ops/ops.h"

namespace hone::ops {

namespace {

// Every gradient defined, f32/f64, on the first gradient's device. Returns whether any is on
// a CUDA device.
bool check_grads(std::string_view op, const std::vector<Tensor>& grads) {
  bool cuda = false;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const std::string name = cat("grads[", i, "]");
    expect_float(op, name, grads[i]);
    expect_device(op, name, grads[i], "grads[0]", grads[0]);
    cuda = cuda || grads[i].device().is_cuda();
  }
  return cuda;
}

double checked_grad_norm(std::string_view op, const std::vector<Tensor>& grads) {
  if (check_grads(op, grads)) no_cuda_kernel(op);
  double total = 0.0;  // tensors added in list order
  for (const Tensor& g : grads) {
    dispatch_float(op, g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      total += cpu::grad_sum_squares<T>(g.data<T>(), g.numel());
    });
  }
  return std::sqrt(total);
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWArgs& args) {
  constexpr std::string_view op = "adamw_step";
  expect_float(op, "param", param);
  const std::string from = described("param", param);
  auto like_param = [&](std::string_view name, const Tensor& t) {
    expect_dtype(op, name, t, "param", param);
    expect_shape(op, name, t, param.shape(), from);
    expect_device(op, name, t, "param", param);
  };
  like_param("grad", grad);
  like_param("m", m);
  like_param("v", v);
  HONE_CHECK(args.step >= 1, op, "argument 'step' is ", args.step, "; expected >= 1");
  HONE_CHECK(args.lr >= 0.0, op, "argument 'lr' is ", args.lr, "; expected >= 0");
  HONE_CHECK(args.beta1 >= 0.0 && args.beta1 < 1.0, op, "argument 'beta1' is ", args.beta1,
             "; expected in [0, 1)");
  HONE_CHECK(args.beta2 >= 0.0 && args.beta2 < 1.0, op, "argument 'beta2' is ", args.beta2,
             "; expected in [0, 1)");
  HONE_CHECK(args.eps > 0.0, op, "argument 'eps' is ", args.eps, "; expected > 0");
  HONE_CHECK(args.weight_decay >= 0.0, op, "argument 'weight_decay' is ", args.weight_decay,
             "; expected >= 0");
  if (param.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::adamw_step<T>(param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), param.numel(),
                       args.lr, args.beta1, args.beta2, args.eps, args.weight_decay, args.step);
  });
}

double grad_norm(const std::vector<Tensor>& grads) { return checked_grad_norm("grad_norm", grads); }

// clip_coef = max_norm / (norm + 1e-6), applied only when norm > max_norm (PyTorch's
// clip_grad_norm_); returns the norm measured before any scaling.
double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm) {
  constexpr std::string_view op = "clip_grad_norm";
  HONE_CHECK(max_norm > 0.0, op, "argument 'max_norm' is ", max_norm, "; expected > 0");
  const double norm = checked_grad_norm(op, grads);
  if (norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const Tensor& g : grads) {
      dispatch_float(op, g.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::grad_scale<T>(g.data<T>(), g.numel(), scale);
      });
    }
  }
  return norm;
}

}  // namespace hone::ops

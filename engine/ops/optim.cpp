// ops::adamw_step, grad_norm and clip_grad_norm: argument validation and device dispatch: the
// CPU reference, or on CUDA the kernels of kernels/optim (fp32 master weights and moments; the
// norm reduced on the device in a fixed order, then read back: the one host wait of these ops).
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "cpu/optim.h"
#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the optim kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_OPTIM when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_OPTIM)
#define HONE_CUDA_OPTIM 1
#endif

#ifdef HONE_CUDA_OPTIM
#include <cuda_runtime.h>

#include "cuda/check.h"
#include "cuda/context.h"
#include "kernels/optim/optim.h"
#endif

namespace hone::ops {

namespace {

// Every gradient defined, on the first gradient's device, and f32/f64 on the CPU or f32/bf16 on
// CUDA. Returns whether they are on a CUDA device.
bool check_grads(std::string_view op, const std::vector<Tensor>& grads) {
  const bool cuda = !grads.empty() && grads[0].defined() && grads[0].device().is_cuda();
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const std::string name = cat("grads[", i, "]");
    if (cuda)
      expect_cuda_dtype(op, name, grads[i], {DType::f32, DType::bf16});
    else
      expect_float(op, name, grads[i]);
    expect_device(op, name, grads[i], "grads[0]", grads[0]);
  }
  return cuda;
}

void check_adamw_args(std::string_view op, const AdamWArgs& args) {
  HONE_CHECK(args.step >= 1, op, "argument 'step' is ", args.step, "; expected >= 1");
  HONE_CHECK(args.lr >= 0.0, op, "argument 'lr' is ", args.lr, "; expected >= 0");
  HONE_CHECK(args.beta1 >= 0.0 && args.beta1 < 1.0, op, "argument 'beta1' is ", args.beta1,
             "; expected in [0, 1)");
  HONE_CHECK(args.beta2 >= 0.0 && args.beta2 < 1.0, op, "argument 'beta2' is ", args.beta2,
             "; expected in [0, 1)");
  HONE_CHECK(args.eps > 0.0, op, "argument 'eps' is ", args.eps, "; expected > 0");
  HONE_CHECK(args.weight_decay >= 0.0, op, "argument 'weight_decay' is ", args.weight_decay,
             "; expected >= 0");
  HONE_CHECK(args.grad_scale > 0.0 && std::isfinite(args.grad_scale), op, "argument 'grad_scale' is ",
             args.grad_scale, "; expected finite and > 0");
}

#ifdef HONE_CUDA_OPTIM
kernels::OptimGradType grad_type(const Tensor& g) {
  return g.dtype() == DType::bf16 ? kernels::OptimGradType::bf16 : kernels::OptimGradType::f32;
}

// The kernel takes one gradient dtype per launch: one launch for the f32 gradients, one for the
// bf16 ones (in that order), each writing its norm to a device scalar; the host combines the two
// after reading them back. The result is fixed by the list, never by timing.
double cuda_grad_norm(const std::vector<Tensor>& grads) {
  const int dev = grads[0].device().index;
  cuda::DeviceGuard device(dev);
  const cudaStream_t stream = cuda::current_stream();
  const DeviceScratch norms(dev, 2 * sizeof(float));
  const DType groups[2] = {DType::f32, DType::bf16};
  std::vector<kernels::AdamWTensor> table[2];
  for (const Tensor& g : grads) {
    kernels::AdamWTensor t;
    t.grad = g.raw();
    t.n = g.numel();
    table[g.dtype() == DType::bf16 ? 1 : 0].push_back(t);
  }
  const DeviceScratch ws0(dev, kernels::grad_norm_workspace_bytes(table[0].data(),
                                                                  static_cast<int>(table[0].size())));
  const DeviceScratch ws1(dev, kernels::grad_norm_workspace_bytes(table[1].data(),
                                                                  static_cast<int>(table[1].size())));
  const DeviceScratch* ws[2] = {&ws0, &ws1};
  for (int k = 0; k < 2; ++k) {
    if (table[k].empty()) continue;
    kernels::GradNormParams p;
    p.tensors = table[k].data();
    p.count = static_cast<int>(table[k].size());
    p.grad_type = groups[k] == DType::bf16 ? kernels::OptimGradType::bf16
                                           : kernels::OptimGradType::f32;
    p.workspace = ws[k]->get();
    p.norm = static_cast<float*>(norms.get()) + k;
    kernels::grad_norm(p, stream);
  }
  float host[2] = {0.0f, 0.0f};
  CUDA_CHECK(cudaMemcpyAsync(host, norms.get(), sizeof host, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  if (table[1].empty()) return host[0];
  if (table[0].empty()) return host[1];
  const double a = host[0], b = host[1];
  return std::sqrt(a * a + b * b);
}
#endif

double checked_grad_norm(std::string_view op, const std::vector<Tensor>& grads) {
  if (check_grads(op, grads)) {
#ifdef HONE_CUDA_OPTIM
    return cuda_grad_norm(grads);
#else
    cuda_unavailable(op, "optim");
#endif
  }
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
                const AdamWArgs& args, const Tensor& param_copy) {
  constexpr std::string_view op = "adamw_step";
  if (param_copy.defined() && param.defined()) {
    expect_shape(op, "param_copy", param_copy, param.shape(), described("param", param));
    expect_device(op, "param_copy", param_copy, "param", param);
    if (param.device().is_cuda()) expect_cuda_dtype(op, "param_copy", param_copy, {DType::bf16});
  }
  if (param.defined() && param.device().is_cuda()) {
    // fp32 master weights and moments; the gradient in f32 or bf16.
    expect_cuda_dtype(op, "param", param, {DType::f32});
    const std::string from = described("param", param);
    for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"grad", &grad}, {"m", &m},
                                  {"v", &v}}) {
      if (t == &grad)
        expect_cuda_dtype(op, name, *t, {DType::f32, DType::bf16});
      else
        expect_dtype(op, name, *t, "param", param);
      expect_shape(op, name, *t, param.shape(), from);
      expect_device(op, name, *t, "param", param);
    }
    check_adamw_args(op, args);
#ifdef HONE_CUDA_OPTIM
    if (param.numel() == 0) return;
    cuda::DeviceGuard device(param.device().index);
    kernels::AdamWTensor t;
    t.param = param.data<float>();
    t.m = m.data<float>();
    t.v = v.data<float>();
    t.grad = grad.raw();
    t.param_bf16 = param_copy.defined() ? param_copy.raw() : nullptr;
    t.n = param.numel();
    kernels::AdamWParams p;
    p.tensors = &t;
    p.count = 1;
    p.grad_type = grad_type(grad);
    p.lr = args.lr, p.beta1 = args.beta1, p.beta2 = args.beta2, p.eps = args.eps;
    p.weight_decay = args.weight_decay;
    p.step = args.step;
    if (args.grad_scale == 1.0) {
      kernels::adamw_step(p, cuda::current_stream());
      return;
    }
    const Tensor scale = Tensor::from_vector<float>({1}, {static_cast<float>(args.grad_scale)}).to(param.device());
    p.grad_scale = scale.data<float>();
    kernels::adamw_step(p, cuda::current_stream());
    CUDA_CHECK(cudaStreamSynchronize(cuda::current_stream()));  // before `scale` is freed
    return;
#else
    cuda_unavailable(op, "optim");
#endif
  }
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
  check_adamw_args(op, args);
  dispatch_float(op, param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::AdamWScalars a;
    a.lr = args.lr, a.beta1 = args.beta1, a.beta2 = args.beta2, a.eps = args.eps;
    a.weight_decay = args.weight_decay, a.step = args.step, a.grad_scale = args.grad_scale;
    cpu::adamw_step<T>(param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), param.numel(), a);
  });
  if (param_copy.defined()) param_copy.copy_from(param_copy.dtype() == param.dtype() ? param : param.to(param_copy.dtype()));
}

double grad_norm(const std::vector<Tensor>& grads) { return checked_grad_norm("grad_norm", grads); }

double clip_coefficient(double norm, double max_norm) {
  HONE_CHECK(max_norm > 0.0, "clip_coefficient", "argument 'max_norm' is ", max_norm, "; expected > 0");
  return norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
}

// clip_coef = max_norm / (norm + 1e-6), applied only when norm > max_norm (PyTorch's
// clip_grad_norm_); returns the norm measured before any scaling.
double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm) {
  constexpr std::string_view op = "clip_grad_norm";
  HONE_CHECK(max_norm > 0.0, op, "argument 'max_norm' is ", max_norm, "; expected > 0");
  const double norm = checked_grad_norm(op, grads);
  if (norm > max_norm) {
    const double scale = clip_coefficient(norm, max_norm);
    for (const Tensor& g : grads) {
      if (g.device().is_cuda()) {
        scale_(g, scale);  // enqueued like the norm's kernels; no further wait
        continue;
      }
      dispatch_float(op, g.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::grad_scale<T>(g.data<T>(), g.numel(), scale);
      });
    }
  }
  return norm;
}

}  // namespace hone::ops

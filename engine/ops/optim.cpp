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
kernels::OptimGradType grad_type(DType g) {
  return g == DType::bf16 ? kernels::OptimGradType::bf16 : kernels::OptimGradType::f32;
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
    p.grad_type = grad_type(groups[k]);
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

namespace {

// Validates one set of AdamW tensors; argument names carry `prefix` ("tensors[3]." in a group).
void check_adamw_tensors(std::string_view op, const std::string& prefix, const AdamWTensors& e) {
  const std::string param = prefix + "param";
  if (e.param_copy.defined() && e.param.defined()) {
    expect_shape(op, prefix + "param_copy", e.param_copy, e.param.shape(), described(param, e.param));
    expect_device(op, prefix + "param_copy", e.param_copy, param, e.param);
    if (e.param.device().is_cuda()) expect_cuda_dtype(op, prefix + "param_copy", e.param_copy, {DType::bf16});
  }
  const bool cuda = e.param.defined() && e.param.device().is_cuda();
  if (cuda)  // fp32 master weights and moments; the gradient in f32 or bf16
    expect_cuda_dtype(op, param, e.param, {DType::f32});
  else
    expect_float(op, param, e.param);
  const std::string from = described(param, e.param);
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"grad", &e.grad}, {"m", &e.m},
                                {"v", &e.v}}) {
    const std::string full = prefix + name;
    if (cuda && t == &e.grad)
      expect_cuda_dtype(op, full, *t, {DType::f32, DType::bf16});
    else
      expect_dtype(op, full, *t, param, e.param);
    expect_shape(op, full, *t, e.param.shape(), from);
    expect_device(op, full, *t, param, e.param);
  }
}

void cpu_adamw(const AdamWTensors& e, const AdamWArgs& args) {
  dispatch_float("adamw_step", e.param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::AdamWScalars a;
    a.lr = args.lr, a.beta1 = args.beta1, a.beta2 = args.beta2, a.eps = args.eps;
    a.weight_decay = args.weight_decay, a.step = args.step, a.grad_scale = args.grad_scale;
    cpu::adamw_step<T>(e.param.data<T>(), e.grad.data<T>(), e.m.data<T>(), e.v.data<T>(), e.param.numel(), a);
  });
  if (e.param_copy.defined())
    e.param_copy.copy_from(e.param_copy.dtype() == e.param.dtype() ? e.param : e.param.to(e.param_copy.dtype()));
}

#ifdef HONE_CUDA_OPTIM
// One multi-tensor launch per gradient dtype (f32 gradients first, then bf16), all on the
// current stream of the tensors' device.
void cuda_adamw(const std::vector<AdamWTensors>& group, const AdamWArgs& args) {
  cuda::DeviceGuard device(group[0].param.device().index);
  Tensor scale;  // a device scalar when the gradients are scaled; kept until the kernels ran
  if (args.grad_scale != 1.0)
    scale = Tensor::from_vector<float>({1}, {static_cast<float>(args.grad_scale)}).to(group[0].param.device());
  for (const DType gdt : {DType::f32, DType::bf16}) {
    std::vector<kernels::AdamWTensor> table;
    for (const AdamWTensors& e : group) {
      if (e.grad.dtype() != gdt || e.param.numel() == 0) continue;
      kernels::AdamWTensor t;
      t.param = e.param.data<float>();
      t.m = e.m.data<float>();
      t.v = e.v.data<float>();
      t.grad = e.grad.raw();
      t.param_bf16 = e.param_copy.defined() ? e.param_copy.raw() : nullptr;
      t.n = e.param.numel();
      table.push_back(t);
    }
    if (table.empty()) continue;
    kernels::AdamWParams p;
    p.tensors = table.data();
    p.count = static_cast<int>(table.size());
    p.grad_type = grad_type(gdt);
    p.lr = args.lr, p.beta1 = args.beta1, p.beta2 = args.beta2, p.eps = args.eps;
    p.weight_decay = args.weight_decay;
    p.step = args.step;
    p.grad_scale = scale.defined() ? scale.data<float>() : nullptr;
    kernels::adamw_step(p, cuda::current_stream());
  }
  if (scale.defined()) CUDA_CHECK(cudaStreamSynchronize(cuda::current_stream()));  // before `scale` is freed
}
#endif

void adamw_group(std::string_view op, const std::vector<AdamWTensors>& group, const AdamWArgs& args,
                 bool indexed) {
  for (std::size_t i = 0; i < group.size(); ++i) {
    const std::string prefix = indexed ? "tensors[" + std::to_string(i) + "]." : "";
    check_adamw_tensors(op, prefix, group[i]);
    if (i > 0) expect_device(op, prefix + "param", group[i].param, "tensors[0].param", group[0].param);
  }
  check_adamw_args(op, args);
  if (group.empty()) return;
  if (group[0].param.device().is_cuda()) {
#ifdef HONE_CUDA_OPTIM
    cuda_adamw(group, args);
    return;
#else
    cuda_unavailable(op, "optim");
#endif
  }
  for (const AdamWTensors& e : group) cpu_adamw(e, args);
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWArgs& args, const Tensor& param_copy) {
  adamw_group("adamw_step", {AdamWTensors{param, grad, m, v, param_copy}}, args, false);
}

void adamw_step(const std::vector<AdamWTensors>& tensors, const AdamWArgs& args) {
  adamw_group("adamw_step", tensors, args, true);
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

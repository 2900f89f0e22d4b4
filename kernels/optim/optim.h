// Launchers of the optimizer kernels (adamw.cu, grad_norm.cu). Host header without CUDA types.
//
// Fused multi-tensor AdamW, engine/cpu/optim's update in fp32 (PyTorch's order):
//   g ← grad · s                      s = *grad_scale (a device scalar, e.g. the clip factor) or 1
//   p ← p · (1 − lr·wd);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + eps);  param_bf16 ← bf16(p)
// over a table of tensors: each launch covers up to kOptimTensorsPerLaunch tensors, cut into
// fixed chunks that the blocks share out.
//
// Deterministic global gradient norm, ops::grad_norm / clip_grad_norm's value: pass 1 gives
// each block a fixed set of chunks and writes its partial Σ g² (fp32 within a chunk, f64
// across chunks and threads) to the workspace; pass 2 adds the partials in a fixed order and
// writes norm = sqrt(Σ g²) and, if asked, the clip factor max_norm / (norm + 1e-6) when
// norm > max_norm, else 1 — on the device, so AdamW can read it without a host round trip.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

enum class OptimGradType : std::uint8_t { f32, bf16 };

inline constexpr int kOptimTensorsPerLaunch = 32;

struct AdamWTensor {
  float* param = nullptr;       // (n) fp32 master weights
  float* m = nullptr;           // (n) first moment
  float* v = nullptr;           // (n) second moment
  const void* grad = nullptr;   // (n) of AdamWParams::grad_type
  void* param_bf16 = nullptr;   // (n) bf16 copy of the updated weights, or null
  std::int64_t n = 0;
};

struct AdamWParams {
  const AdamWTensor* tensors = nullptr;  // host array of `count` entries (device pointers)
  int count = 0;
  OptimGradType grad_type = OptimGradType::bf16;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  std::int64_t step = 1;                 // t, from 1
  const float* grad_scale = nullptr;     // device scalar, or null for 1
};

void adamw_step(const AdamWParams& p, cudaStream_t stream);

struct GradNormParams {
  const AdamWTensor* tensors = nullptr;  // host array; only grad and n are read
  int count = 0;
  OptimGradType grad_type = OptimGradType::bf16;
  void* workspace = nullptr;  // grad_norm_workspace_bytes(tensors, count) bytes (device)
  float* norm = nullptr;      // device scalar out
  float* clip_scale = nullptr;  // device scalar out, or null
  double max_norm = 1.0;        // > 0 when clip_scale is set
};

std::size_t grad_norm_workspace_bytes(const AdamWTensor* tensors, int count);
void grad_norm(const GradNormParams& p, cudaStream_t stream);

HONE_KERNELS_END

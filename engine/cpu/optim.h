// CPU reference for the optimizer ops: the AdamW update and the gradient-norm reduction and
// scaling used by clip_grad_norm. Raw-pointer kernels; validation lives in engine/ops/optim.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// Elements per chunk of the gradient-norm reduction. Fixed, so the partial sums and the order
// they are added in do not depend on the number of threads.
inline constexpr std::int64_t kGradNormChunk = std::int64_t{1} << 16;

struct AdamWScalars {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  std::int64_t step = 1;    // t, from 1
  double grad_scale = 1.0;  // the gradient is read as g · grad_scale (a clipping coefficient)
};

// One AdamW step over n elements (PyTorch's update, in T's arithmetic with explicit fused
// multiply-adds; the exact order is in optim.cpp and the CUDA kernel follows it):
//   g ← g · grad_scale;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p · (1 − lr·wd) − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + eps)
// The gradient itself is not written.
template <class T>
void adamw_step(T* param, const T* grad, T* m, T* v, std::int64_t n, const AdamWScalars& a);

// Σ g² over n elements in f64: each chunk of kGradNormChunk summed in kGradNormLanes
// interleaved lanes (element i into lane (i − chunk start) mod kGradNormLanes) added in lane
// order, the chunk partials then added in chunk order (deterministic for any thread count).
inline constexpr int kGradNormLanes = 32;
template <class T>
double grad_sum_squares(const T* g, std::int64_t n);

// g ← g · scale over n elements.
template <class T>
void grad_scale(T* g, std::int64_t n, double scale);

}  // namespace hone::cpu

// CPU reference for the optimizer ops: the AdamW update and the gradient-norm reduction and
// scaling used by clip_grad_norm. Raw-pointer kernels; validation lives in engine/ops/optim.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// Elements per chunk of the gradient-norm reduction. Fixed, so the partial sums and the order
// they are added in do not depend on the number of threads.
inline constexpr std::int64_t kGradNormChunk = std::int64_t{1} << 16;

// One AdamW step over n elements (PyTorch's order; arithmetic in f64, stored as T):
//   p ← p · (1 − lr·wd);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + eps)
template <class T>
void adamw_step(T* param, const T* grad, T* m, T* v, std::int64_t n, double lr, double beta1,
                double beta2, double eps, double weight_decay, std::int64_t step);

// Σ g² over n elements in f64: chunks of kGradNormChunk summed sequentially, the chunk partials
// then added in chunk order (deterministic for any thread count).
template <class T>
double grad_sum_squares(const T* g, std::int64_t n);

// g ← g · scale over n elements.
template <class T>
void grad_scale(T* g, std::int64_t n, double scale);

}  // namespace hone::cpu

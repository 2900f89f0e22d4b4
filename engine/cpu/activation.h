// CPU reference for the activations (SwiGLU, tanh-approximated GELU): element-wise raw-pointer
// kernels over n contiguous elements, parallel in fixed chunks. Validation lives in
// engine/ops/activation.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// out = silu(gate) · up, silu(g) = g · sigmoid(g). out may alias gate or up.
template <class T>
void swiglu_fwd(const T* gate, const T* up, std::int64_t n, T* out);

// dgate (=), dup (=); either may be null (skipped). Outputs may alias the inputs.
template <class T>
void swiglu_bwd(const T* dout, const T* gate, const T* up, std::int64_t n, T* dgate, T* dup);

// y = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). y may alias x.
template <class T>
void gelu_fwd(const T* x, std::int64_t n, T* y);

// dx (=). dx may alias dy or x.
template <class T>
void gelu_bwd(const T* dy, const T* x, std::int64_t n, T* dx);

}  // namespace hone::cpu

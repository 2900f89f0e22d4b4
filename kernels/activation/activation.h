// Launchers of the element-wise activations (activation.cu): SwiGLU and GELU with the tanh
// approximation, forward and backward. Host header without CUDA types.
//
// Every tensor is n contiguous bf16 elements in device memory; the math is fp32 and each output
// is rounded to bf16 once. The functions are those of engine/cpu/activation.h:
//   swiglu:  out = silu(gate) · up,  silu(g) = g · σ(g)
//   gelu:    y = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
// An output may alias any input of the same call (each element is read before it is written, by
// the thread that writes it). When every pointer is 16-byte aligned the kernels move 8 elements
// per load; the last n mod 8 elements (or all of them, if a pointer is not aligned) take a
// scalar path.
#pragma once
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

struct SwigluParams {
  const void* gate = nullptr;  // (n) bf16
  const void* up = nullptr;    // (n) bf16
  void* out = nullptr;         // (n) bf16, =
  std::int64_t n = 0;
};

struct SwigluBwdParams {
  const void* dout = nullptr;  // (n) bf16
  const void* gate = nullptr;  // (n) bf16
  const void* up = nullptr;    // (n) bf16
  void* dgate = nullptr;       // (n) bf16, =; null skips it
  void* dup = nullptr;         // (n) bf16, =; null skips it
  std::int64_t n = 0;
};

struct GeluParams {
  const void* x = nullptr;  // (n) bf16
  void* y = nullptr;        // (n) bf16, =
  std::int64_t n = 0;
};

struct GeluBwdParams {
  const void* dy = nullptr;  // (n) bf16
  const void* x = nullptr;   // (n) bf16
  void* dx = nullptr;        // (n) bf16, =
  std::int64_t n = 0;
};

// Each validates (errors name the field and value) and launches on `stream`; n = 0 is a no-op.
void swiglu_fwd(const SwigluParams& p, cudaStream_t stream);
void swiglu_bwd(const SwigluBwdParams& p, cudaStream_t stream);
void gelu_fwd(const GeluParams& p, cudaStream_t stream);
void gelu_bwd(const GeluBwdParams& p, cudaStream_t stream);

HONE_KERNELS_END

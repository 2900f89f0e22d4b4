// CPU reference for SwiGLU and GELU (tanh approximation). f64: every element computed in double
// with the C library's exp/tanh. f32: computed in float with cpu::exp_f32, in loops the compiler
// vectorizes (the logistic form of GELU below has no cancellation, so float keeps it accurate).
#include "cpu/activation.h"

#include <cmath>
#include <type_traits>

#include "cpu/fast_math.h"
#include "cpu/parallel.h"

namespace hone::cpu {

namespace {

constexpr std::int64_t kGrain = 16384;
constexpr double kGeluK = 0.79788456080286535588;  // √(2/π)
constexpr double kGeluC = 0.044715;

// 1 / (1 + e^(−g)); exp overflows to inf for very negative g, which gives 0, not NaN.
inline double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

}  // namespace

template <class T>
void swiglu_fwd(const T* gate, const T* up, std::int64_t n, T* out) {
  parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
#pragma omp simd
      for (std::int64_t i = b; i < e; ++i) out[i] = gate[i] * sigmoid_f32(gate[i]) * up[i];
      return;
    }
    for (std::int64_t i = b; i < e; ++i) {
      const double g = static_cast<double>(gate[i]);
      out[i] = static_cast<T>(g * sigmoid(g) * static_cast<double>(up[i]));
    }
  });
}

// out = silu(g) · u with silu(g) = g σ(g) and σ' = σ (1 − σ):
//   dgate = dout · u · σ(g) · (1 + g (1 − σ(g)))
//   dup   = dout · silu(g)
template <class T>
void swiglu_bwd(const T* dout, const T* gate, const T* up, std::int64_t n, T* dgate, T* dup) {
  parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
      if (dgate != nullptr) {
#pragma omp simd
        for (std::int64_t i = b; i < e; ++i) {
          const float g = gate[i], s = sigmoid_f32(g);
          dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        }
      }
      if (dup != nullptr) {
#pragma omp simd
        for (std::int64_t i = b; i < e; ++i) dup[i] = dout[i] * gate[i] * sigmoid_f32(gate[i]);
      }
      return;
    }
    for (std::int64_t i = b; i < e; ++i) {
      const double d = static_cast<double>(dout[i]);
      const double g = static_cast<double>(gate[i]);
      const double u = static_cast<double>(up[i]);
      const double s = sigmoid(g);
      if (dgate) dgate[i] = static_cast<T>(d * u * s * (1.0 + g * (1.0 - s)));
      if (dup) dup[i] = static_cast<T>(d * g * s);
    }
  });
}

template <class T>
void gelu_fwd(const T* x, std::int64_t n, T* y) {
  parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
      // 0.5 x (1 + tanh u) = x · σ(2u)
      constexpr float k2 = static_cast<float>(2.0 * kGeluK), c = static_cast<float>(kGeluC);
#pragma omp simd
      for (std::int64_t i = b; i < e; ++i) {
        const float v = x[i];
        y[i] = v * sigmoid_f32(k2 * (v + c * v * v * v));
      }
      return;
    }
    for (std::int64_t i = b; i < e; ++i) {
      const double v = static_cast<double>(x[i]);
      y[i] = static_cast<T>(0.5 * v * (1.0 + std::tanh(kGeluK * (v + kGeluC * v * v * v))));
    }
  });
}

// y = 0.5 x (1 + t), t = tanh(u), u = k (x + c x³), du/dx = k (1 + 3 c x²), tanh' = 1 − t²:
//   dx = dy · (0.5 (1 + t) + 0.5 x (1 − t²) k (1 + 3 c x²))
// In terms of s = σ(2u) = 0.5 (1 + t), with 1 − t² = 4 s (1 − s) (the f32 path):
//   dx = dy · (s + 2 x s (1 − s) k (1 + 3 c x²))
template <class T>
void gelu_bwd(const T* dy, const T* x, std::int64_t n, T* dx) {
  parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
      constexpr float k = static_cast<float>(kGeluK), c = static_cast<float>(kGeluC);
#pragma omp simd
      for (std::int64_t i = b; i < e; ++i) {
        const float v = x[i];
        const float s = sigmoid_f32(2.0f * k * (v + c * v * v * v));
        const float ds = s * (1.0f - s);  // 0 once σ saturates: avoids 0 · inf for huge |x|
        dx[i] = dy[i] * (s + (ds == 0.0f ? 0.0f : 2.0f * v * ds * k * (1.0f + 3.0f * c * v * v)));
      }
      return;
    }
    for (std::int64_t i = b; i < e; ++i) {
      const double v = static_cast<double>(x[i]);
      const double t = std::tanh(kGeluK * (v + kGeluC * v * v * v));
      const double sech2 = 1.0 - t * t;  // 0 once tanh saturates: avoids 0 · inf for huge |x|
      const double dydx =
          0.5 * (1.0 + t) +
          (sech2 == 0.0 ? 0.0 : 0.5 * v * sech2 * kGeluK * (1.0 + 3.0 * kGeluC * v * v));
      dx[i] = static_cast<T>(static_cast<double>(dy[i]) * dydx);
    }
  });
}

#define HONE_ACTIVATION_INSTANTIATE(T)                                                       \
  template void swiglu_fwd<T>(const T*, const T*, std::int64_t, T*);                         \
  template void swiglu_bwd<T>(const T*, const T*, const T*, std::int64_t, T*, T*);           \
  template void gelu_fwd<T>(const T*, std::int64_t, T*);                                     \
  template void gelu_bwd<T>(const T*, const T*, std::int64_t, T*);
HONE_ACTIVATION_INSTANTIATE(float)
HONE_ACTIVATION_INSTANTIATE(double)
#undef HONE_ACTIVATION_INSTANTIATE

}  // namespace hone::cpu

// CPU reference for rotary position embeddings. Angles, cosines, sines and the rotation itself
// are computed in double; each output is rounded to T once.
#include "cpu/rope.h"

#include <cmath>
#include <vector>

#include "cpu/parallel.h"

namespace hone::cpu {

// Forward: the pair (u, v) = (x[i], x[i + hd/2]) is rotated by a:
//   (u cos a − v sin a, v cos a + u sin a).
// The Jacobian of a rotation is the rotation itself, so its transpose — the backward applied to
// (du', dv') — is the rotation by −a:
//   du = du' cos a + dv' sin a,  dv = dv' cos a − du' sin a.
template <class T, class I>
void rope_apply(const T* x, const I* positions, const double* inv_freq, std::int64_t n_tokens,
                std::int64_t n_heads, std::int64_t head_dim, bool inverse, T* y) {
  const std::int64_t half = head_dim / 2;
  const std::int64_t per_token = n_heads * head_dim;
  const std::int64_t grain = per_token >= 4096 ? 1 : 4096 / (per_token > 0 ? per_token : 1);
  const double sign = inverse ? -1.0 : 1.0;
  parallel_for(n_tokens, grain, [&](std::int64_t t0, std::int64_t t1) {
    std::vector<double> cs(static_cast<std::size_t>(half)), sn(static_cast<std::size_t>(half));
    for (std::int64_t t = t0; t < t1; ++t) {
      const double p = static_cast<double>(positions[t]);
      for (std::int64_t i = 0; i < half; ++i) {
        const double a = p * inv_freq[i];
        cs[static_cast<std::size_t>(i)] = std::cos(a);
        sn[static_cast<std::size_t>(i)] = sign * std::sin(a);
      }
      for (std::int64_t h = 0; h < n_heads; ++h) {
        const T* xr = x + t * per_token + h * head_dim;
        T* yr = y + t * per_token + h * head_dim;
        for (std::int64_t i = 0; i < half; ++i) {
          // Both inputs are read before either output is written: y may alias x.
          const double u = static_cast<double>(xr[i]);
          const double v = static_cast<double>(xr[i + half]);
          const double c = cs[static_cast<std::size_t>(i)];
          const double s = sn[static_cast<std::size_t>(i)];
          yr[i] = static_cast<T>(u * c - v * s);
          yr[i + half] = static_cast<T>(v * c + u * s);
        }
      }
    }
  });
}

#define HONE_ROPE_INSTANTIATE(T, I)                                                       \
  template void rope_apply<T, I>(const T*, const I*, const double*, std::int64_t,         \
                                 std::int64_t, std::int64_t, bool, T*);
HONE_ROPE_INSTANTIATE(float, std::int32_t)
HONE_ROPE_INSTANTIATE(float, std::int64_t)
HONE_ROPE_INSTANTIATE(double, std::int32_t)
HONE_ROPE_INSTANTIATE(double, std::int64_t)
#undef HONE_ROPE_INSTANTIATE

}  // namespace hone::cpu

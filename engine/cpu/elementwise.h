// CPU reference for the elementwise ops (add_, scale_, mul_, dropout_mask_, bias_add_,
// bias_bwd): raw-pointer loops over contiguous buffers, parallel over fixed chunks. Validation
// lives in engine/ops/elementwise.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// Elements per parallel chunk.
inline constexpr std::int64_t kElementwiseGrain = 1 << 15;

// dst[i] += alpha · src[i], i < n. dst may be src.
template <class T>
void add_(T* dst, const T* src, std::int64_t n, T alpha);

// x[i] *= alpha, i < n.
template <class T>
void scale_(T* x, std::int64_t n, T alpha);

// x[i] *= m[i], i < n. m may be x.
template <class T>
void mul_(T* x, const T* m, std::int64_t n);

// u[i] = u[i] ≥ p ? keep : 0, i < n, compared in double (exact for f32 and f64 u).
template <class T>
void dropout_mask_(T* u, std::int64_t n, double p, T keep);

// x[r·F + f] += b[f] for r < rows.
template <class T>
void bias_add_(T* x, const T* b, std::int64_t rows, std::int64_t features);

// db[f] += Σ_r dy[r·F + f]: per-chunk partial sums over kBiasRowChunk rows, added in chunk order.
inline constexpr std::int64_t kBiasRowChunk = 64;
template <class T>
void bias_bwd(const T* dy, T* db, std::int64_t rows, std::int64_t features);

}  // namespace hone::cpu

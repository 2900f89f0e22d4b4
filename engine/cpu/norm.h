// CPU reference for RMSNorm and LayerNorm: raw-pointer kernels over contiguous (N, D) rows,
// parallel over rows. Validation lives in engine/ops/norm.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// Rows per chunk of the row reductions (dw, db) in the backward passes: each chunk sums its rows
// in order, then the chunks are added in order, so the result does not depend on the number of
// threads. Grows for very tall inputs so that at most kNormMaxChunks partial rows are kept.
inline constexpr std::int64_t kNormRowChunk = 64;
inline constexpr std::int64_t kNormMaxChunks = 256;

// y[n, :] = x[n, :] · rstd[n] · w, rstd[n] = 1 / sqrt(mean(x[n, :]²) + eps).
template <class T>
void rmsnorm_fwd(const T* x, const T* w, std::int64_t n_rows, std::int64_t dim, double eps, T* y,
                 T* rstd);

// dx (=), dw (+=); either may be null (skipped).
template <class T>
void rmsnorm_bwd(const T* dy, const T* x, const T* w, const T* rstd, std::int64_t n_rows,
                 std::int64_t dim, T* dx, T* dw);

// y[n, :] = (x[n, :] − mean[n]) · rstd[n] · w + b, rstd[n] = 1 / sqrt(var(x[n, :]) + eps)
// (biased variance).
template <class T>
void layernorm_fwd(const T* x, const T* w, const T* b, std::int64_t n_rows, std::int64_t dim,
                   double eps, T* y, T* mean, T* rstd);

// dx (=), dw (+=), db (+=); any may be null (skipped).
template <class T>
void layernorm_bwd(const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                   std::int64_t n_rows, std::int64_t dim, T* dx, T* dw, T* db);

}  // namespace hone::cpu

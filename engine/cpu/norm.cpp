// CPU reference for RMSNorm and LayerNorm. Every row statistic and every reduction is
// accumulated in double, for f32 as well as f64 (the reference favours accuracy over speed);
// results are rounded to T once, when stored.
#include "cpu/norm.h"

#include <cmath>
#include <vector>

#include "cpu/parallel.h"

namespace hone::cpu {

namespace {

// Σ_j term(j) over j < dim in double, in kRowSumLanes interleaved partial sums (term j into lane
// j mod kRowSumLanes) added in lane order: a fixed order that the compiler can keep in vector
// registers (one running sum would be a chain of dependent adds).
constexpr int kRowSumLanes = 8;
template <class Term>
double row_sum(std::int64_t dim, Term&& term) {
  double lane[kRowSumLanes] = {};
  std::int64_t j = 0;
  for (; j + kRowSumLanes <= dim; j += kRowSumLanes)
    for (int l = 0; l < kRowSumLanes; ++l) lane[l] += term(j + l);
  for (int l = 0; j < dim; ++j, ++l) lane[l] += term(j);
  double s = 0;
  for (double x : lane) s += x;
  return s;
}

// Rows per forward chunk: about 8K elements of work each.
std::int64_t forward_grain(std::int64_t dim) { return dim >= 8192 ? 1 : 8192 / dim; }

// Rows per backward reduction chunk: kNormRowChunk, or more when that would need more than
// kNormMaxChunks chunks. Depends only on n_rows, never on the thread count.
std::int64_t reduction_rows(std::int64_t n_rows) {
  std::int64_t rows = kNormRowChunk;
  if ((n_rows + rows - 1) / rows > kNormMaxChunks) rows = (n_rows + kNormMaxChunks - 1) / kNormMaxChunks;
  return rows;
}

// Calls row(r, pw, pb) for every row r, where pw/pb are the partial sums (double, dim each) of
// r's fixed-size chunk, or null when dw/db is null. The chunks' rows run in order; afterwards
// dw[j] += Σ_chunks pw[j] and db[j] += Σ_chunks pb[j], the chunks added in order. Deterministic
// and independent of the number of threads.
template <class T, class RowFn>
void for_rows_reducing(std::int64_t n_rows, std::int64_t dim, T* dw, T* db, RowFn&& row) {
  const std::int64_t rows = reduction_rows(n_rows);
  const std::int64_t chunks = (n_rows + rows - 1) / rows;
  const std::size_t partial = static_cast<std::size_t>(chunks * dim);
  std::vector<double> pw(dw ? partial : 0, 0.0);
  std::vector<double> pb(db ? partial : 0, 0.0);
  parallel_for(chunks, 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c) {
      double* cw = dw ? pw.data() + c * dim : nullptr;
      double* cb = db ? pb.data() + c * dim : nullptr;
      const std::int64_t end = (c + 1) * rows < n_rows ? (c + 1) * rows : n_rows;
      for (std::int64_t r = c * rows; r < end; ++r) row(r, cw, cb);
    }
  });
  if (!dw && !db) return;
  parallel_for(dim, 256, [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t j = j0; j < j1; ++j) {
      if (dw) {
        double s = 0;
        for (std::int64_t c = 0; c < chunks; ++c) s += pw[static_cast<std::size_t>(c * dim + j)];
        dw[j] = static_cast<T>(static_cast<double>(dw[j]) + s);
      }
      if (db) {
        double s = 0;
        for (std::int64_t c = 0; c < chunks; ++c) s += pb[static_cast<std::size_t>(c * dim + j)];
        db[j] = static_cast<T>(static_cast<double>(db[j]) + s);
      }
    }
  });
}

}  // namespace

template <class T>
void rmsnorm_fwd(const T* x, const T* w, std::int64_t n_rows, std::int64_t dim, double eps, T* y,
                 T* rstd) {
  parallel_for(n_rows, forward_grain(dim), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * dim;
      T* yr = y + r * dim;
      const double ss = row_sum(dim, [&](std::int64_t j) {
        const double v = static_cast<double>(xr[j]);
        return v * v;
      });
      const double rs = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
      rstd[r] = static_cast<T>(rs);
      for (std::int64_t j = 0; j < dim; ++j)
        yr[j] = static_cast<T>(static_cast<double>(xr[j]) * rs * static_cast<double>(w[j]));
    }
  });
}

// y = x · r · w with r = (mean(x²) + eps)^(−1/2), so ∂r/∂x_k = −r³ x_k / D and
//   dx = r · (dy · w − x · r² · mean(dy · w · x))
//   dw += Σ_rows dy · x · r
template <class T>
void rmsnorm_bwd(const T* dy, const T* x, const T* w, const T* rstd, std::int64_t n_rows,
                 std::int64_t dim, T* dx, T* dw) {
  if (!dx && !dw) return;
  for_rows_reducing<T>(n_rows, dim, dw, nullptr, [&](std::int64_t r, double* pw, double*) {
    const T* xr = x + r * dim;
    const T* dyr = dy + r * dim;
    const double rs = static_cast<double>(rstd[r]);
    double c = 0;
    if (dx) {
      const double s = row_sum(dim, [&](std::int64_t j) {
        return static_cast<double>(dyr[j]) * static_cast<double>(w[j]) * static_cast<double>(xr[j]);
      });
      c = rs * rs * s / static_cast<double>(dim);
    }
    T* dxr = dx ? dx + r * dim : nullptr;
    for (std::int64_t j = 0; j < dim; ++j) {
      // Read before writing: dx may alias dy or x.
      const double g = static_cast<double>(dyr[j]);
      const double xj = static_cast<double>(xr[j]);
      if (pw) pw[j] += g * xj * rs;
      if (dxr) dxr[j] = static_cast<T>(rs * (g * static_cast<double>(w[j]) - xj * c));
    }
  });
}

template <class T>
void layernorm_fwd(const T* x, const T* w, const T* b, std::int64_t n_rows, std::int64_t dim,
                   double eps, T* y, T* mean, T* rstd) {
  parallel_for(n_rows, forward_grain(dim), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * dim;
      T* yr = y + r * dim;
      const double mu = row_sum(dim, [&](std::int64_t j) { return static_cast<double>(xr[j]); }) /
                        static_cast<double>(dim);
      // Two passes: no cancellation when |mean| ≫ std.
      const double ss = row_sum(dim, [&](std::int64_t j) {
        const double d = static_cast<double>(xr[j]) - mu;
        return d * d;
      });
      const double rs = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
      mean[r] = static_cast<T>(mu);
      rstd[r] = static_cast<T>(rs);
      for (std::int64_t j = 0; j < dim; ++j)
        yr[j] = static_cast<T>((static_cast<double>(xr[j]) - mu) * rs * static_cast<double>(w[j]) +
                               static_cast<double>(b[j]));
    }
  });
}

// xhat = (x − mean) · r, y = xhat · w + b. With g = dy · w:
//   dx = r · (g − mean(g) − xhat · mean(g · xhat))
//   dw += Σ_rows dy · xhat
//   db += Σ_rows dy
template <class T>
void layernorm_bwd(const T* dy, const T* x, const T* w, const T* mean, const T* rstd,
                   std::int64_t n_rows, std::int64_t dim, T* dx, T* dw, T* db) {
  if (!dx && !dw && !db) return;
  for_rows_reducing<T>(n_rows, dim, dw, db, [&](std::int64_t r, double* pw, double* pb) {
    const T* xr = x + r * dim;
    const T* dyr = dy + r * dim;
    const double mu = static_cast<double>(mean[r]);
    const double rs = static_cast<double>(rstd[r]);
    double mg = 0, mgx = 0;
    if (dx) {
      const double sg = row_sum(dim, [&](std::int64_t j) {
        return static_cast<double>(dyr[j]) * static_cast<double>(w[j]);
      });
      const double sgx = row_sum(dim, [&](std::int64_t j) {
        return static_cast<double>(dyr[j]) * static_cast<double>(w[j]) * ((static_cast<double>(xr[j]) - mu) * rs);
      });
      mg = sg / static_cast<double>(dim);
      mgx = sgx / static_cast<double>(dim);
    }
    T* dxr = dx ? dx + r * dim : nullptr;
    for (std::int64_t j = 0; j < dim; ++j) {
      // Read before writing: dx may alias dy or x.
      const double d = static_cast<double>(dyr[j]);
      const double xhat = (static_cast<double>(xr[j]) - mu) * rs;
      if (pw) pw[j] += d * xhat;
      if (pb) pb[j] += d;
      if (dxr) dxr[j] = static_cast<T>(rs * (d * static_cast<double>(w[j]) - mg - xhat * mgx));
    }
  });
}

#define HONE_NORM_INSTANTIATE(T)                                                               \
  template void rmsnorm_fwd<T>(const T*, const T*, std::int64_t, std::int64_t, double, T*, T*); \
  template void rmsnorm_bwd<T>(const T*, const T*, const T*, const T*, std::int64_t,           \
                               std::int64_t, T*, T*);                                          \
  template void layernorm_fwd<T>(const T*, const T*, const T*, std::int64_t, std::int64_t,     \
                                 double, T*, T*, T*);                                          \
  template void layernorm_bwd<T>(const T*, const T*, const T*, const T*, const T*,             \
                                 std::int64_t, std::int64_t, T*, T*, T*);
HONE_NORM_INSTANTIATE(float)
HONE_NORM_INSTANTIATE(double)
#undef HONE_NORM_INSTANTIATE

}  // namespace hone::cpu

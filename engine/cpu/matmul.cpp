// CPU reference GEMM. f32 products go through the packed kernel of gemm_kernel.cpp where the
// build has one (AVX-512 or AVX2+FMA); f64 products (finite-difference checks) and builds
// without one use fixed output tiles, each a single-threaded Eigen product, spread over the
// OpenMP threads. Either way results depend only on the shapes, never on the thread count.
#include "cpu/matmul.h"
// First: it turns off a false GCC warning before anything includes the intrinsics.
#include "cpu/eigen.h"

#include <omp.h>

#include <type_traits>

#include "cpu/gemm_kernel.h"

namespace hone::cpu {

namespace {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MutMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// C = beta · C + alpha · A · B for Eigen expressions A, B; beta = 0 overwrites C.
template <class T, class A, class B>
void accumulate(MutMap<T>& c, const A& a, const B& b, T alpha, T beta) {
  if (beta == T(0)) {
    c.noalias() = alpha * a * b;  // assignment: C's prior contents (NaN) are never read
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * a * b;
  }
}

// Rows [r0, r1) × columns [c0, c1) of C = beta · C + alpha · op(A) · op(B), one product.
template <class T>
void tile_product(const T* a, const T* b, T* c, const StridedGemm& g, std::int64_t r0,
                  std::int64_t r1, std::int64_t c0, std::int64_t c1, T alpha, T beta) {
  using Eigen::Index;
  using Stride = Eigen::OuterStride<>;
  const Index rows = r1 - r0, cols = c1 - c0, k = g.k;
  MutMap<T> ct(c + r0 * g.n + c0, rows, cols, Stride(g.n));
  auto with_b = [&](const auto& opa) {
    if (!g.trans_b) {  // B: k×n, columns [c0, c1)
      ConstMap<T> bt(b + c0, k, cols, Stride(g.n));
      accumulate<T>(ct, opa, bt, alpha, beta);
    } else {  // B: n×k, rows [c0, c1), transposed
      ConstMap<T> bt(b + c0 * k, cols, k, Stride(k));
      accumulate<T>(ct, opa, bt.transpose(), alpha, beta);
    }
  };
  if (!g.trans_a) {  // A: m×k, rows [r0, r1)
    ConstMap<T> at(a + r0 * k, rows, k, Stride(k));
    with_b(at);
  } else {  // A: k×m, columns [r0, r1), transposed
    ConstMap<T> at(a + r0, k, rows, Stride(g.m));
    with_b(at.transpose());
  }
}

// C tile = beta · C tile (zero when beta = 0).
template <class T>
void scale_tile(T* c, const StridedGemm& g, std::int64_t r0, std::int64_t r1, std::int64_t c0,
                std::int64_t c1, T beta) {
  for (std::int64_t i = r0; i < r1; ++i) {
    T* row = c + i * g.n;
    for (std::int64_t j = c0; j < c1; ++j) row[j] = beta == T(0) ? T(0) : beta * row[j];
  }
}

// Rewrites a family of products as fewer, larger ones where the memory layout allows:
// - a batch of products sharing B, with A not transposed, is one product with m·count rows;
// - a sum of products A_rᵀ · B_r (A transposed, B not) is one product with k·reduce depth,
//   the batches stacked along k (a single GEMM sums them in its own fixed order).
StridedGemm flattened(StridedGemm g) {
  if (g.reduce == 1 && g.count > 1 && g.b_step == 0 && !g.trans_a && g.a_step == g.m * g.k &&
      g.c_step == g.m * g.n) {
    g.m *= g.count;
    g.count = 1;
  }
  if (g.count == 1 && g.reduce > 1 && g.trans_a && !g.trans_b && g.a_step == g.k * g.m &&
      g.b_step == g.k * g.n) {
    g.k *= g.reduce;
    g.reduce = 1;
  }
  return g;
}

}  // namespace

template <class T>
void gemm_eigen(const T* a, const T* b, T* c, const StridedGemm& g0, T alpha, T beta) {
  const StridedGemm g = flattened(g0);
  if (g.m <= 0 || g.n <= 0 || g.count <= 0) return;
  const std::int64_t row_tiles = (g.m + kGemmTileRows - 1) / kGemmTileRows;
  const std::int64_t tile_cols = g.m <= kGemmThinRows ? kGemmThinTileCols : kGemmTileCols;
  const std::int64_t col_tiles = (g.n + tile_cols - 1) / tile_cols;
  const std::int64_t per_matrix = row_tiles * col_tiles;
  const std::int64_t tasks = g.count * per_matrix;
  // Every task is one output tile with fixed bounds; which thread runs it does not change its
  // value. Dynamic scheduling balances ragged edge tiles.
  const double work = static_cast<double>(g.count) * static_cast<double>(g.reduce) *
                      static_cast<double>(g.m) * static_cast<double>(g.n) *
                      static_cast<double>(g.k);
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && work >= kGemmMinParallelWork)
  for (std::int64_t t = 0; t < tasks; ++t) {
    // Keeps Eigen single-threaded inside the task (its threaded GEMM changes the k-blocking with
    // the thread count). The setting belongs to this region's implicit task and ends with it.
    omp_set_num_threads(1);
    const std::int64_t i = t / per_matrix;
    const std::int64_t tile = t % per_matrix;
    const std::int64_t r0 = (tile / col_tiles) * kGemmTileRows;
    const std::int64_t c0 = (tile % col_tiles) * tile_cols;
    const std::int64_t r1 = r0 + kGemmTileRows < g.m ? r0 + kGemmTileRows : g.m;
    const std::int64_t c1 = c0 + tile_cols < g.n ? c0 + tile_cols : g.n;
    T* ci = c + i * g.c_step;
    if (g.reduce <= 0) {
      scale_tile(ci, g, r0, r1, c0, c1, beta);
      continue;
    }
    for (std::int64_t r = 0; r < g.reduce; ++r) {
      const std::int64_t p = i * g.reduce + r;
      tile_product(a + p * g.a_step, b + p * g.b_step, ci, g, r0, r1, c0, c1, alpha,
                   r == 0 ? beta : T(1));
    }
  }
}

template <class T>
void gemm_strided(const T* a, const T* b, T* c, const StridedGemm& g0, T alpha, T beta) {
  if constexpr (std::is_same_v<T, float>) {
    const StridedGemm g = flattened(g0);
    // Matrix-vector-like products (few rows) stay on Eigen, which streams B once; packing B
    // would double their memory traffic.
    if (gemm_kernel_info().isa[0] != '\0' && g.m > kGemmThinRows) {
      gemm_packed(a, b, c, g, alpha, beta);
      return;
    }
  }
  gemm_eigen(a, b, c, g0, alpha, beta);
}

template <class T>
void matmul(const T* a, const T* b, T* c, const MatmulDims& d, T alpha, T beta) {
  StridedGemm g;
  g.m = d.m;
  g.n = d.n;
  g.k = d.k;
  g.trans_a = d.trans_a;
  g.trans_b = d.trans_b;
  g.count = (d.a_batched || d.b_batched) ? d.batch : 1;
  g.reduce = 1;
  g.a_step = d.a_batched ? d.m * d.k : 0;
  g.b_step = d.b_batched ? d.k * d.n : 0;
  g.c_step = d.m * d.n;
  gemm_strided(a, b, c, g, alpha, beta);
}

// With G = dc (m×n per batch entry), c = alpha · op(a) · op(b):
//   d op(a) = alpha · G · op(b)ᵀ,  d op(b) = alpha · op(a)ᵀ · G.
// Each gradient is itself a strided product accumulated with beta = 1, in the gradient's own
// layout:
//   da (m×k)  = alpha · G · op(b)ᵀ      (op(b)ᵀ is b when trans_b, else bᵀ)
//   da (k×m)  = alpha · op(b) · Gᵀ      when trans_a
//   db (k×n)  = alpha · op(a)ᵀ · G      (op(a)ᵀ is a when trans_a, else aᵀ)
//   db (n×k)  = alpha · Gᵀ · op(a)      when trans_b
// A gradient of a batched operand gets one product per batch entry (count = batch); that of a
// shared operand of a batched product gets their sum, in batch order (reduce = batch).
template <class T>
void matmul_bwd(const T* a, const T* b, const T* dc, T* da, T* db, const MatmulDims& d, T alpha,
                T beta_da, T beta_db) {
  const bool batched = d.a_batched || d.b_batched;
  const std::int64_t nb = batched ? d.batch : 1;
  const std::int64_t mn = d.m * d.n, mk = d.m * d.k, kn = d.k * d.n;
  if (da != nullptr) {
    StridedGemm g;
    const T* lhs;
    const T* rhs;
    if (!d.trans_a) {  // da (m×k) += alpha · G · op(b)ᵀ
      g.m = d.m, g.n = d.k, g.k = d.n;
      g.trans_a = false, g.trans_b = !d.trans_b;
      lhs = dc, rhs = b;
      g.a_step = mn, g.b_step = d.b_batched ? kn : 0;
    } else {  // da (k×m) += alpha · op(b) · Gᵀ
      g.m = d.k, g.n = d.m, g.k = d.n;
      g.trans_a = d.trans_b, g.trans_b = true;
      lhs = b, rhs = dc;
      g.a_step = d.b_batched ? kn : 0, g.b_step = mn;
    }
    g.count = d.a_batched ? nb : 1;
    g.reduce = d.a_batched ? 1 : nb;
    g.c_step = mk;
    gemm_strided(lhs, rhs, da, g, alpha, beta_da);
  }
  if (db != nullptr) {
    StridedGemm g;
    const T* lhs;
    const T* rhs;
    if (!d.trans_b) {  // db (k×n) += alpha · op(a)ᵀ · G
      g.m = d.k, g.n = d.n, g.k = d.m;
      g.trans_a = !d.trans_a, g.trans_b = false;
      lhs = a, rhs = dc;
      g.a_step = d.a_batched ? mk : 0, g.b_step = mn;
    } else {  // db (n×k) += alpha · Gᵀ · op(a)
      g.m = d.n, g.n = d.k, g.k = d.m;
      g.trans_a = true, g.trans_b = d.trans_a;
      lhs = dc, rhs = a;
      g.a_step = mn, g.b_step = d.a_batched ? mk : 0;
    }
    g.count = d.b_batched ? nb : 1;
    g.reduce = d.b_batched ? 1 : nb;
    g.c_step = kn;
    gemm_strided(lhs, rhs, db, g, alpha, beta_db);
  }
}

template void gemm_eigen<float>(const float*, const float*, float*, const StridedGemm&, float,
                                float);
template void gemm_eigen<double>(const double*, const double*, double*, const StridedGemm&,
                                 double, double);
template void gemm_strided<float>(const float*, const float*, float*, const StridedGemm&, float,
                                  float);
template void gemm_strided<double>(const double*, const double*, double*, const StridedGemm&,
                                   double, double);
template void matmul<float>(const float*, const float*, float*, const MatmulDims&, float, float);
template void matmul<double>(const double*, const double*, double*, const MatmulDims&, double,
                             double);
template void matmul_bwd<float>(const float*, const float*, const float*, float*, float*,
                                const MatmulDims&, float, float, float);
template void matmul_bwd<double>(const double*, const double*, const double*, double*, double*,
                                 const MatmulDims&, double, double, double);

}  // namespace hone::cpu

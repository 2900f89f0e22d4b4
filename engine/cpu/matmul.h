// CPU reference for matrix products: raw-pointer GEMM templates (float, double) over contiguous
// row-major operands, tiled so that the result does not depend on the number of threads. f32
// runs on the packed AVX-512/AVX2 kernel of gemm_kernel.h where the build has one, f64 (and f32
// without one) on Eigen. Validation lives in engine/ops/matmul.cpp.
#pragma once
#include <cstdint>

namespace hone::cpu {

// Output tile of one task on the Eigen path (the packed kernel has its own, gemm_kernel.h). Each
// tile is computed by a single-threaded Eigen product; the tiles are spread over the OpenMP
// threads. Eigen's own multi-threaded GEMM is never used: it changes its k-blocking (and so the
// rounding) with the thread count.
inline constexpr std::int64_t kGemmTileRows = 128;
inline constexpr std::int64_t kGemmTileCols = 256;
// Products with at most kGemmThinRows rows (matrix-vector like) stay on Eigen, with wider
// column tiles, so each task streams long contiguous runs of B's rows.
inline constexpr std::int64_t kGemmThinRows = 16;
inline constexpr std::int64_t kGemmThinTileCols = 8192;
// Products with fewer multiply-adds than this run on the calling thread: waking the team costs
// more than it saves (a lot more when the cores are oversubscribed). Same tiles either way.
inline constexpr std::int64_t kGemmMinParallelWork = 1 << 17;

// A family of products over dense row-major matrices. op(x) = xᵀ when trans_x; op(A) is m×k
// (A stored k×m when trans_a), op(B) is k×n (B stored n×k when trans_b), C is m×n.
// There are `count` output matrices C_i = c + i·c_step, each
//   C_i = beta · C_i + alpha · Σ_{r < reduce} op(A_p) · op(B_p),   p = i · reduce + r,
// with A_p = a + p·a_step and B_p = b + p·b_step (a step of 0 shares the operand). The sum over
// r runs in order (or, where the layout allows, as one product of depth k·reduce, whose fixed
// blocking also goes through k in order); reduce = 0 only scales C. beta = 0 ignores C's prior
// contents (NaN-safe). Outputs must not overlap the inputs. Any thread count gives the same bits,
// also when called from inside a parallel region.
struct StridedGemm {
  std::int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  std::int64_t count = 1;
  std::int64_t reduce = 1;
  std::int64_t a_step = 0, b_step = 0, c_step = 0;  // in elements
};

template <class T>
void gemm_strided(const T* a, const T* b, T* c, const StridedGemm& g, T alpha, T beta);

// The shape of ops::matmul: c = alpha · op(a) · op(b) + beta · c with op(a) m×k, op(b) k×n.
// An operand with *_batched set holds `batch` matrices back to back; an unbatched operand is
// shared by every product. c holds `batch` matrices when either operand is batched, else one
// (and batch must then be 1).
struct MatmulDims {
  std::int64_t batch = 1;
  std::int64_t m = 0, n = 0, k = 0;
  bool a_batched = false, b_batched = false;
  bool trans_a = false, trans_b = false;
};

// c = alpha · op(a) · op(b) + beta · c (per batch entry).
template <class T>
void matmul(const T* a, const T* b, T* c, const MatmulDims& d, T alpha, T beta);

// Gradients of c = alpha · op(a) · op(b), dc like c; da like a, db like b; either may be null
// (skipped). da = beta_da · da + (its gradient), db likewise: 1 accumulates (+=), 0 overwrites
// without reading the old values (NaN-safe). With G = dc:
//   d op(a) = alpha · G · op(b)ᵀ   → da = that (m×k), or its transpose alpha · op(b) · Gᵀ (k×m)
//                                     when trans_a;
//   d op(b) = alpha · op(a)ᵀ · G   → db = that (k×n), or its transpose alpha · Gᵀ · op(a) (n×k)
//                                     when trans_b.
// An unbatched operand of a batched product receives the sum over the batch, in batch order.
template <class T>
void matmul_bwd(const T* a, const T* b, const T* dc, T* da, T* db, const MatmulDims& d, T alpha,
                T beta_da = T(1), T beta_db = T(1));

}  // namespace hone::cpu

// The GEMMs of ops::matmul / matmul_bwd on CUDA (see matmul_plan.h).
#include "cuda/matmul_plan.h"

namespace hone::cuda {

namespace {

using kernels::GemmParams;
using kernels::GemmType;

// Operand fields of a GemmParams for a stored row-major matrix.
struct Operand {
  const void* ptr;
  bool trans;
  std::int64_t ld;
  std::int64_t stride;  // elements between batch entries; 0 when shared
};

GemmParams gemm(std::int64_t m, std::int64_t n, std::int64_t k, const Operand& a, const Operand& b,
                void* c, GemmType c_type, std::int64_t ldc, std::int64_t stride_c,
                std::int64_t batch, double alpha, double beta) {
  GemmParams p;
  p.m = m, p.n = n, p.k = k;
  p.a = a.ptr, p.a_trans = a.trans, p.lda = a.ld, p.stride_a = a.stride;
  p.b = b.ptr, p.b_trans = b.trans, p.ldb = b.ld, p.stride_b = b.stride;
  p.c = c, p.c_type = c_type, p.ldc = ldc, p.stride_c = stride_c;
  p.alpha = static_cast<float>(alpha), p.beta = static_cast<float>(beta);
  p.batch = batch;
  return p;
}

}  // namespace

GemmParams matmul_plan(const cpu::MatmulDims& d, const void* a, const void* b, void* c,
                       GemmType c_type, double alpha, double beta) {
  const std::int64_t m = d.m, n = d.n, k = d.k;
  std::int64_t batch = d.batch, rows = m;
  const Operand oa{a, d.trans_a, d.trans_a ? m : k, d.a_batched ? m * k : 0};
  const Operand ob{b, d.trans_b, d.trans_b ? k : n, d.b_batched ? k * n : 0};
  // A batch sharing b, with a not transposed, is one product with batch·m rows.
  if (batch > 1 && d.a_batched && !d.b_batched && !d.trans_a) rows = m * batch, batch = 1;
  return gemm(rows, n, k, oa, ob, c, c_type, n, m * n, batch, alpha, beta);
}

// With G = dc (m×n per entry), onto beta_da·da and beta_db·db:
//   da = alpha·G·op(b)ᵀ (m×k)      or, with trans_a,  alpha·op(b)·Gᵀ (k×m)
//   db = alpha·op(a)ᵀ·G (k×n)      or, with trans_b,  alpha·Gᵀ·op(a) (n×k)
// A 2-D operand of a batched product gets the sum over the batch: one product of depth
// batch·m where the layout allows (db with a untransposed: the entries stack along m), else a
// shared-output entry (stride_c = 0).
std::vector<GemmParams> matmul_bwd_plan(const cpu::MatmulDims& d, const void* a, const void* b,
                                        const void* dc, void* da, GemmType da_type, void* db,
                                        GemmType db_type, double alpha, double beta_da,
                                        double beta_db) {
  std::vector<GemmParams> plan;
  const std::int64_t m = d.m, n = d.n, k = d.k, batch = d.batch;
  const std::int64_t sa = d.a_batched ? m * k : 0, sb = d.b_batched ? k * n : 0, sg = m * n;
  const Operand g_plain{dc, false, n, sg};  // G, stored m×n
  const Operand g_trans{dc, true, n, sg};   // Gᵀ
  if (da != nullptr) {
    if (!d.trans_a) {  // op(b)ᵀ: b stored k×n read transposed, or n×k as it is
      const Operand bt{b, !d.trans_b, d.trans_b ? k : n, sb};
      plan.push_back(gemm(m, k, n, g_plain, bt, da, da_type, k, sa, batch, alpha, beta_da));
    } else {
      const Operand opb{b, d.trans_b, d.trans_b ? k : n, sb};
      plan.push_back(gemm(k, m, n, opb, g_trans, da, da_type, m, sa, batch, alpha, beta_da));
    }
  }
  if (db != nullptr) {
    const bool stack = batch > 1 && !d.b_batched && !d.trans_a;
    const std::int64_t depth = stack ? batch * m : m, entries = stack ? 1 : batch;
    if (!d.trans_b) {  // op(a)ᵀ: a stored m×k read transposed, or k×m as it is
      const Operand at{a, !d.trans_a, d.trans_a ? m : k, sa};
      plan.push_back(gemm(k, n, depth, at, g_plain, db, db_type, n, sb, entries, alpha, beta_db));
    } else {
      const Operand opa{a, d.trans_a, d.trans_a ? m : k, sa};
      plan.push_back(gemm(n, k, depth, g_trans, opa, db, db_type, k, sb, entries, alpha, beta_db));
    }
  }
  return plan;
}

}  // namespace hone::cuda

// ops::matmul / matmul_bwd: argument validation (shapes, dtypes, devices, aliasing) and device
// dispatch: the CPU reference in engine/cpu/matmul, or on CUDA one GEMM per product through
// hone's kernel (kernels/gemm) or cuBLASLt (cuda/blas.h), as cuda/gemm_backend.h selects.
#include "cpu/matmul.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "ops/check.h"
#include "ops/ops.h"

#ifdef HONE_WITH_CUDA
#include "cuda/blas.h"
#include "cuda/context.h"
#include "cuda/gemm_backend.h"
#include "cuda/matmul_plan.h"
#include "kernels/gemm/gemm.h"
#endif

namespace hone::ops {

namespace {

std::string flags(const MatmulArgs& args) {
  return cat("trans_a = ", args.trans_a ? "true" : "false",
             ", trans_b = ", args.trans_b ? "true" : "false");
}

// Checks a and b against each other and returns the product's dimensions.
cpu::MatmulDims matmul_dims(std::string_view op, const Tensor& a, const Tensor& b,
                            const MatmulArgs& args) {
  HONE_CHECK(a.ndim() == 2 || a.ndim() == 3, op, "argument 'a' has shape ", shape_str(a.shape()),
             "; expected 2 or 3 dimensions: ",
             args.trans_a ? "(K, M) or (B, K, M)" : "(M, K) or (B, M, K)");
  HONE_CHECK(b.ndim() == 2 || b.ndim() == 3, op, "argument 'b' has shape ", shape_str(b.shape()),
             "; expected 2 or 3 dimensions: ",
             args.trans_b ? "(N, K) or (B, N, K)" : "(K, N) or (B, K, N)");
  cpu::MatmulDims d;
  d.trans_a = args.trans_a;
  d.trans_b = args.trans_b;
  d.a_batched = a.ndim() == 3;
  d.b_batched = b.ndim() == 3;
  d.m = args.trans_a ? a.size(-1) : a.size(-2);
  d.k = args.trans_a ? a.size(-2) : a.size(-1);
  const std::int64_t kb = args.trans_b ? b.size(-1) : b.size(-2);
  d.n = args.trans_b ? b.size(-2) : b.size(-1);
  HONE_CHECK(kb == d.k, op, "argument 'b' has shape ", shape_str(b.shape()),
             " with inner dimension K' = ", kb, "; expected K = ", d.k, " from ", described("a", a),
             " (", flags(args), ")");
  if (d.a_batched && d.b_batched)
    HONE_CHECK(a.size(0) == b.size(0), op, "argument 'b' has shape ", shape_str(b.shape()),
               " with batch ", b.size(0), "; expected batch ", a.size(0), " from ",
               described("a", a));
  d.batch = d.a_batched ? a.size(0) : d.b_batched ? b.size(0) : 1;
  return d;
}

Shape c_shape(const cpu::MatmulDims& d) {
  if (d.a_batched || d.b_batched) return {d.batch, d.m, d.n};
  return {d.m, d.n};
}

// `t` is defined, has ref's dtype and device.
void expect_like(std::string_view op, std::string_view name, const Tensor& t,
                 std::string_view ref_name, const Tensor& ref) {
  expect_dtype(op, name, t, ref_name, ref);
  expect_device(op, name, t, ref_name, ref);
}

// An output must not share memory with another argument (the products read their inputs while
// writing the output).
void expect_disjoint(std::string_view op, std::string_view name, const Tensor& out,
                     std::string_view other_name, const Tensor& other) {
  if (!out.defined() || !other.defined() || out.numel() == 0 || other.numel() == 0) return;
  const auto* o0 = static_cast<const char*>(out.raw());
  const auto* p0 = static_cast<const char*>(other.raw());
  const bool overlap = o0 < p0 + other.nbytes() && p0 < o0 + out.nbytes();
  HONE_CHECK(!overlap, op, "argument '", name, "' ", shape_str(out.shape()),
             " shares memory with '", other_name, "' ", shape_str(other.shape()),
             "; outputs must not alias inputs");
}

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// ---------------------------------------------------------------- CUDA
// On CUDA, a and b are bf16 (outputs bf16 or f32; fp32 accumulation) or f32 (outputs f32,
// computed in fp32 by cuBLASLt).

void expect_cuda_input(std::string_view op, std::string_view name, const Tensor& t) {
  expect_defined(op, name, t);
  HONE_CHECK(t.dtype() == DType::bf16 || t.dtype() == DType::f32, op, "argument '", name,
             "' has dtype ", dtype_name(t.dtype()), "; expected bf16 or f32 on ", t.device().str());
}

// An output on a's device: bf16 or f32 for bf16 inputs, f32 for f32 inputs.
void expect_cuda_output(std::string_view op, std::string_view name, const Tensor& t,
                        const Tensor& a) {
  expect_device(op, name, t, "a", a);
  const bool ok = t.dtype() == DType::f32 || (t.dtype() == DType::bf16 && a.dtype() == DType::bf16);
  HONE_CHECK(ok, op, "argument '", name, "' has dtype ", dtype_name(t.dtype()), "; expected ",
             a.dtype() == DType::bf16 ? "bf16 or f32" : "f32", " for ", dtype_name(a.dtype()),
             " inputs on ", a.device().str());
}

#ifdef HONE_WITH_CUDA
using kernels::GemmParams;
using kernels::GemmType;

GemmType gemm_type(const Tensor& t) { return t.dtype() == DType::f32 ? GemmType::f32 : GemmType::bf16; }

// Runs one GemmParams on `stream` with the selected backend. A shared output (stride_c = 0,
// batch > 1: C = beta·C + Σ_i alpha·op(A_i)·op(B_i), the gradient of a 2-D operand of a batched
// product) runs entry by entry, in order, so the sum is deterministic on either backend.
void run_gemm(GemmParams p, GemmType ab_type, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0 && p.beta == 1.0f && p.bias == nullptr && p.residual == nullptr) return;
  if (p.batch > 1 && p.stride_c == 0) {
    const std::int64_t bytes = ab_type == GemmType::f32 ? 4 : 2;
    for (std::int64_t i = 0; i < p.batch; ++i) {
      GemmParams e = p;
      e.batch = 1;
      e.a = static_cast<const char*>(p.a) + i * p.stride_a * bytes;
      e.b = static_cast<const char*>(p.b) + i * p.stride_b * bytes;
      if (i > 0) e.beta = 1.0f;
      run_gemm(e, ab_type, stream);
    }
    return;
  }
#ifdef HONE_HAVE_GEMM_KERNEL
  if (ab_type == GemmType::bf16 && p.k > 0 && ops::gemm_backend() == ops::GemmBackend::hone) {
    // Split-K scratch: the stream's cuBLASLt workspace (work on one stream never overlaps).
    const cuda::BlasHandle h = cuda::blas_handle(cuda::current_device(), stream);
    if (kernels::gemm_workspace_bytes(p) <= h.workspace_bytes) {
      p.workspace = h.workspace;
      p.workspace_bytes = h.workspace_bytes;
    }
    kernels::gemm(p, stream);
    return;
  }
#endif
  (void)ops::gemm_backend();  // reads HONE_GEMM, so a bad value is reported on any build
  cuda::blas_gemm(p, stream, ab_type);
}

void cuda_matmul(const Tensor& a, const Tensor& b, const Tensor& c, const cpu::MatmulDims& d,
                 const MatmulArgs& args) {
  cuda::DeviceGuard device(a.device().index);
  run_gemm(cuda::matmul_plan(d, a.raw(), b.raw(), c.raw(), gemm_type(c), args.alpha, args.beta),
           gemm_type(a), cuda::current_stream());
}

void cuda_matmul_bwd(const Tensor& a, const Tensor& b, const Tensor& dc, const Tensor& da,
                     const Tensor& db, const cpu::MatmulDims& d, const MatmulArgs& args,
                     MatmulGradAccumulate grads) {
  cuda::DeviceGuard device(a.device().index);
  const cudaStream_t stream = cuda::current_stream();
  void* da_ptr = da.defined() ? da.raw() : nullptr;
  void* db_ptr = db.defined() ? db.raw() : nullptr;
  for (const GemmParams& p :
       cuda::matmul_bwd_plan(d, a.raw(), b.raw(), dc.raw(), da_ptr,
                             da.defined() ? gemm_type(da) : GemmType::f32, db_ptr,
                             db.defined() ? gemm_type(db) : GemmType::f32, args.alpha,
                             grads.da ? 1.0 : 0.0, grads.db ? 1.0 : 0.0))
    run_gemm(p, gemm_type(a), stream);
}
#endif  // HONE_WITH_CUDA

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& c, const MatmulArgs& args) {
  constexpr std::string_view op = "matmul";
  if (a.defined() && a.device().is_cuda()) {
    expect_cuda_input(op, "a", a);
    expect_like(op, "b", b, "a", a);
    expect_cuda_output(op, "c", c, a);
    const cpu::MatmulDims d = matmul_dims(op, a, b, args);
    expect_shape(op, "c", c, c_shape(d), cat(described("a", a), " and ", described("b", b)));
    expect_disjoint(op, "c", c, "a", a);
    expect_disjoint(op, "c", c, "b", b);
#ifdef HONE_WITH_CUDA
    cuda_matmul(a, b, c, d, args);
    return;
#else
    no_cuda_kernel(op);
#endif
  }
  expect_float(op, "a", a);
  expect_like(op, "b", b, "a", a);
  expect_like(op, "c", c, "a", a);
  const cpu::MatmulDims d = matmul_dims(op, a, b, args);
  expect_shape(op, "c", c, c_shape(d), cat(described("a", a), " and ", described("b", b)));
  expect_disjoint(op, "c", c, "a", a);
  expect_disjoint(op, "c", c, "b", b);
  if (a.device().is_cuda()) no_cuda_kernel(op);
  dispatch_float(op, a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::matmul<T>(a.data<T>(), b.data<T>(), c.data<T>(), d, static_cast<T>(args.alpha),
                   static_cast<T>(args.beta));
  });
}

void matmul_bwd(const Tensor& a, const Tensor& b, const Tensor& dc, const Tensor& da,
                const Tensor& db, const MatmulArgs& args, MatmulGradAccumulate grads) {
  constexpr std::string_view op = "matmul_bwd";
  if (a.defined() && a.device().is_cuda()) {
    expect_cuda_input(op, "a", a);
    expect_like(op, "b", b, "a", a);
    expect_like(op, "dc", dc, "a", a);
    const cpu::MatmulDims d = matmul_dims(op, a, b, args);
    expect_shape(op, "dc", dc, c_shape(d), cat(described("a", a), " and ", described("b", b)));
    if (da.defined()) {
      expect_cuda_output(op, "da", da, a);
      expect_shape(op, "da", da, a.shape(), described("a", a));
    }
    if (db.defined()) {
      expect_cuda_output(op, "db", db, a);
      expect_shape(op, "db", db, b.shape(), described("b", b));
    }
    for (const auto& [name, out] : {std::pair<const char*, const Tensor*>{"da", &da}, {"db", &db}}) {
      expect_disjoint(op, name, *out, "a", a);
      expect_disjoint(op, name, *out, "b", b);
      expect_disjoint(op, name, *out, "dc", dc);
    }
    expect_disjoint(op, "db", db, "da", da);
#ifdef HONE_WITH_CUDA
    cuda_matmul_bwd(a, b, dc, da, db, d, args, grads);
    return;
#else
    no_cuda_kernel(op);
#endif
  }
  expect_float(op, "a", a);
  expect_like(op, "b", b, "a", a);
  expect_like(op, "dc", dc, "a", a);
  const cpu::MatmulDims d = matmul_dims(op, a, b, args);
  expect_shape(op, "dc", dc, c_shape(d), cat(described("a", a), " and ", described("b", b)));
  if (da.defined()) {
    expect_like(op, "da", da, "a", a);
    expect_shape(op, "da", da, a.shape(), described("a", a));
  }
  if (db.defined()) {
    expect_like(op, "db", db, "a", a);
    expect_shape(op, "db", db, b.shape(), described("b", b));
  }
  auto expect_disjoint_inputs = [&](std::string_view name, const Tensor& out) {
    expect_disjoint(op, name, out, "a", a);
    expect_disjoint(op, name, out, "b", b);
    expect_disjoint(op, name, out, "dc", dc);
  };
  expect_disjoint_inputs("da", da);
  expect_disjoint_inputs("db", db);
  expect_disjoint(op, "db", db, "da", da);
  if (a.device().is_cuda()) no_cuda_kernel(op);
  if (!da.defined() && !db.defined()) return;
  dispatch_float(op, a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::matmul_bwd<T>(a.data<T>(), b.data<T>(), dc.data<T>(), ptr<T>(da), ptr<T>(db), d,
                       static_cast<T>(args.alpha), T(grads.da ? 1 : 0), T(grads.db ? 1 : 0));
  });
}

}  // namespace hone::ops

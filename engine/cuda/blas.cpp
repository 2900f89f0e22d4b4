// The cuBLASLt GEMM baseline (see blas.h).
//
// cuBLASLt is column-major; our matrices are row-major. A row-major m×n matrix with leading
// dimension ld is the column-major n×m matrix with the same ld, so C = op(A)·op(B) is computed
// as the column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's first operand is our B, its
// second our A, and each keeps its own transpose flag.
#include "cuda/blas.h"

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>

#include "cuda/blas_epilogue.h"
#include "cuda/check.h"
#include "cuda/context.h"

namespace hone::cuda {

namespace {

using kernels::GemmParams;
using kernels::GemmType;

std::size_t type_size(GemmType t) { return t == GemmType::f32 ? 4 : 2; }
cudaDataType_t cuda_type(GemmType t) { return t == GemmType::f32 ? CUDA_R_32F : CUDA_R_16BF; }
const char* type_name(GemmType t) { return t == GemmType::f32 ? "f32" : "bf16"; }

// The largest power of two ≤ 256 dividing the address: cuBLASLt's heuristics assume 256-byte
// aligned buffers unless told otherwise, and views of a tensor are not.
std::uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

const char* offset(const void* p, std::int64_t elements, GemmType t) {
  return static_cast<const char*>(p) + elements * static_cast<std::int64_t>(type_size(t));
}

// Owners of the cuBLASLt descriptors of one call.
struct MatmulDesc {
  cublasLtMatmulDesc_t get = nullptr;
  ~MatmulDesc() {
    if (get != nullptr) (void)cublasLtMatmulDescDestroy(get);
  }
  template <class T>
  void set(cublasLtMatmulDescAttributes_t attr, const T& value) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(get, attr, &value, sizeof(value)));
  }
};

struct Layout {
  cublasLtMatrixLayout_t get = nullptr;
  Layout(GemmType t, std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t batch,
         std::int64_t stride) {
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&get, cuda_type(t), static_cast<std::uint64_t>(rows),
                                            static_cast<std::uint64_t>(cols), ld));
    if (batch > 1) {
      const auto count = static_cast<std::int32_t>(batch);
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(get, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                    sizeof(count)));
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
          get, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    }
  }
  ~Layout() {
    if (get != nullptr) (void)cublasLtMatrixLayoutDestroy(get);
  }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};

struct Preference {
  cublasLtMatmulPreference_t get = nullptr;
  Preference() { CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&get)); }
  ~Preference() {
    if (get != nullptr) (void)cublasLtMatmulPreferenceDestroy(get);
  }
  template <class T>
  void set(cublasLtMatmulPreferenceAttributes_t attr, const T& value) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(get, attr, &value, sizeof(value)));
  }
};

// One cuBLASLt call: D = alpha·op(A)·op(B) + beta·C (+ bias), C = D unless a residual is fused.
struct LtCall {
  const GemmParams* p;
  GemmType ab_type;
  const void* a;
  const void* b;
  const void* c_in;  // cuBLASLt's C: our C, or the fused residual
  void* d;
  float beta;
  const void* bias;  // fused, of D's type, or null
  std::int64_t batch;
};

// The heuristic's pick for a problem, cached: the query costs more host time than a small GEMM.
using AlgoKey = std::array<std::int64_t, 22>;
std::mutex g_algo_mutex;
std::map<AlgoKey, cublasLtMatmulAlgo_t> g_algos;

void run(const LtCall& call, cudaStream_t stream) {
  const GemmParams& p = *call.p;
  const int device = current_device();
  const BlasHandle h = blas_handle(device, stream);

  MatmulDesc desc;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.get, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_first = p.b_trans ? CUBLAS_OP_T : CUBLAS_OP_N;   // our B
  const cublasOperation_t op_second = p.a_trans ? CUBLAS_OP_T : CUBLAS_OP_N;  // our A
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, op_first);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, op_second);
  if (call.bias != nullptr) {
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS);
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, call.bias);
  }

  // Stored shapes, column-major: our B (k×n row-major) is n×k, or k×n when b_trans; our A
  // (m×k) is k×m, or m×k when a_trans; C and D are n×m.
  const Layout first(call.ab_type, p.b_trans ? p.k : p.n, p.b_trans ? p.n : p.k, p.ldb,
                     call.batch, p.stride_b);
  const Layout second(call.ab_type, p.a_trans ? p.m : p.k, p.a_trans ? p.k : p.m, p.lda,
                      call.batch, p.stride_a);
  const bool residual_as_c = call.c_in != p.c;
  const Layout c_layout(p.c_type, p.n, p.m, p.ldc, call.batch,
                        residual_as_c ? p.stride_r : p.stride_c);
  const Layout d_layout(p.c_type, p.n, p.m, p.ldc, call.batch, p.stride_c);

  const AlgoKey key = {device,
                       p.m,
                       p.n,
                       p.k,
                       p.lda,
                       p.ldb,
                       p.ldc,
                       p.a_trans,
                       p.b_trans,
                       static_cast<std::int64_t>(call.ab_type),
                       static_cast<std::int64_t>(p.c_type),
                       call.bias != nullptr,
                       residual_as_c,
                       call.batch,
                       p.stride_a,
                       p.stride_b,
                       residual_as_c ? p.stride_r : p.stride_c,
                       alignment(call.a),
                       alignment(call.b),
                       alignment(call.c_in),
                       alignment(call.d),
                       call.bias != nullptr ? alignment(call.bias) : 0};
  cublasLtMatmulAlgo_t algo{};
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(g_algo_mutex);
    auto it = g_algos.find(key);
    if (it != g_algos.end()) algo = it->second, cached = true;
  }
  if (!cached) {
    Preference pref;
    pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, static_cast<std::uint64_t>(h.workspace_bytes));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment(call.b));  // cuBLASLt's A = our B
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment(call.a));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment(call.c_in));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment(call.d));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(h.handle, desc.get, first.get, second.get,
                                                c_layout.get, d_layout.get, pref.get, 1, &result,
                                                &found));
    HONE_CHECK(found > 0 && result.state == CUBLAS_STATUS_SUCCESS, "cublas",
               "no cuBLASLt algorithm for m = ", p.m, ", n = ", p.n, ", k = ", p.k,
               ", a_trans = ", p.a_trans, ", b_trans = ", p.b_trans, ", A/B ",
               type_name(call.ab_type), ", C ", type_name(p.c_type), ", batch ", call.batch);
    algo = result.algo;
    std::lock_guard<std::mutex> lock(g_algo_mutex);
    g_algos.emplace(key, algo);
  }
  const float alpha = p.alpha;
  CUBLAS_CHECK(cublasLtMatmul(h.handle, desc.get, &alpha, call.b, first.get, call.a, second.get,
                              &call.beta, call.c_in, c_layout.get, call.d, d_layout.get, &algo,
                              h.workspace, h.workspace_bytes, stream));
}

}  // namespace

void blas_gemm(const GemmParams& p, cudaStream_t stream, GemmType ab_type) {
  check_gemm_params(p, ab_type);
  if (p.m == 0 || p.n == 0) return;

  // Entry by entry when an operand or the output is shared across the batch (see blas.h).
  const bool shared = p.stride_a == 0 || p.stride_b == 0 || p.stride_c == 0 ||
                      (p.residual != nullptr && p.stride_r == 0);
  if (p.batch > 1 && shared) {
    for (std::int64_t i = 0; i < p.batch; ++i) {
      GemmParams e = p;
      e.batch = 1;
      e.a = offset(p.a, i * p.stride_a, ab_type);
      e.b = offset(p.b, i * p.stride_b, ab_type);
      e.c = const_cast<char*>(offset(p.c, i * p.stride_c, p.c_type));
      if (p.residual != nullptr) e.residual = offset(p.residual, i * p.stride_r, p.residual_type);
      if (p.stride_c == 0 && i > 0) e.beta = 1.0f;  // a shared C sums the entries
      blas_gemm(e, stream, ab_type);
    }
    return;
  }

  const bool fuse_bias = p.bias == nullptr || (p.bias_type == p.c_type && alignment(p.bias) >= 16);
  const bool fuse_residual = p.residual == nullptr ||
                             (p.beta == 0.0f && p.residual_type == p.c_type && p.ldr == p.ldc);
  if (p.k > 0) {
    LtCall call{&p, ab_type, p.a, p.b, p.c, p.c, p.beta, nullptr, p.batch};
    if (fuse_bias && fuse_residual) {
      call.bias = p.bias;
      if (p.residual != nullptr) call.c_in = p.residual, call.beta = 1.0f;
    }
    run(call, stream);
    if (fuse_bias && fuse_residual) return;
  }
  // What cuBLASLt did not do: k = 0 (C = beta·C), a bias or residual it could not fuse.
  EpilogueParams e;
  e.m = p.m;
  e.n = p.n;
  e.c = p.c;
  e.ldc = p.ldc;
  e.c_type = p.c_type;
  e.scale_c = p.k > 0 ? 1.0f : p.beta;
  e.bias = p.bias;
  e.bias_type = p.bias_type;
  e.residual = p.residual;
  e.ldr = p.ldr;
  e.residual_type = p.residual_type;
  e.batch = p.batch;
  e.stride_c = p.stride_c;
  e.stride_r = p.stride_r;
  gemm_epilogue(e, stream);
}

}  // namespace hone::cuda

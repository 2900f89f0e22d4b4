// RMSNorm / LayerNorm forward, optionally fused with the residual add: one row per row group of
// threads (a warp, or up to a whole block), the row in registers between its statistics and its
// output, fp32 statistics written for the backward.
#include <cmath>

#include "kernels/norm/norm_common.cuh"

HONE_KERNELS_BEGIN

namespace {

using namespace norm_detail;

struct FwdArgs {
  const unsigned short* x;
  const unsigned short* residual;  // or null
  unsigned short* residual_out;    // set with residual
  const unsigned short* w;
  const unsigned short* b;  // or null
  unsigned short* y;
  float* mean;  // or null
  float* rstd;  // or null
  std::int64_t rows, dim;
  float eps;
};

// r = x (+ residual, rounded to bf16 as stored: the backward sees the same r)
// rms:   y = r · rstd · w,                 rstd = 1 / sqrt(Σr² / D + eps)
// layer: y = (r − μ) · rstd · w + b,       μ = Σr / D, rstd = 1 / sqrt(Σ(r − μ)² / D + eps)
// The variance is a second pass over the registers: no cancellation when |μ| ≫ std.
template <bool kLayer, int kVec, int kPer>
__global__ void __launch_bounds__(kMaxThreadsPerRow) norm_fwd_kernel(FwdArgs a) {
  HONE_DYNAMIC_SMEM(RowSumShared, sh);
  const int tx = threadIdx.x;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = row < a.rows;  // dead rows still take part in the row sums' barriers
  const std::int64_t vectors = a.dim / kVec;
  const std::int64_t base = row * a.dim;

  float v[kPer][kVec];
  bool has[kPer];
  float sum[1] = {0.0f};
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const std::int64_t vi = tx + static_cast<std::int64_t>(k) * blockDim.x;
    has[k] = live && vi < vectors;
    if (has[k]) {
      const std::int64_t e = base + vi * kVec;
      load_bf16<kVec>(a.x + e, v[k]);
      if (a.residual) {
        float r[kVec];
        load_bf16<kVec>(a.residual + e, r);
#pragma unroll
        for (int j = 0; j < kVec; ++j) v[k][j] = round_bf16(v[k][j] + r[j]);
        store_bf16<kVec>(a.residual_out + e, v[k]);
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) sum[0] += kLayer ? v[k][j] : v[k][j] * v[k][j];
    }
  }
  row_sum(sum, sh, 0);
  const float inv_dim = 1.0f / static_cast<float>(a.dim);
  float mu = 0.0f, var = sum[0] * inv_dim;
  if constexpr (kLayer) {
    mu = sum[0] * inv_dim;
    float ss[1] = {0.0f};
#pragma unroll
    for (int k = 0; k < kPer; ++k)
      if (has[k])
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          const float d = v[k][j] - mu;
          ss[0] += d * d;
        }
    row_sum(ss, sh, 1);
    var = ss[0] * inv_dim;
  }
  // sqrtf and the division are correctly rounded on both builds (rsqrtf is not).
  const float rs = 1.0f / sqrtf(var + a.eps);
  if (live && tx == 0) {
    if (a.rstd) a.rstd[row] = rs;
    if (kLayer && a.mean) a.mean[row] = mu;
  }
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    if (!has[k]) continue;
    const std::int64_t vi = tx + static_cast<std::int64_t>(k) * blockDim.x;
    float w[kVec], bias[kVec], out[kVec];
    load_bf16<kVec>(a.w + vi * kVec, w);
    if (kLayer && a.b)
      load_bf16<kVec>(a.b + vi * kVec, bias);
    else
#pragma unroll
      for (int j = 0; j < kVec; ++j) bias[j] = 0.0f;
#pragma unroll
    for (int j = 0; j < kVec; ++j) out[j] = (v[k][j] - mu) * rs * w[j] + bias[j];
    store_bf16<kVec>(a.y + base + vi * kVec, out);
  }
}

void check(const NormFwdParams& p) {
  const char* op = "norm_fwd";
  HONE_CHECK(p.kind == NormKind::rms || p.kind == NormKind::layer, op, "kind ",
             static_cast<int>(p.kind), " is not rms or layer");
  HONE_CHECK(p.rows >= 0, op, "rows = ", p.rows, " is negative");
  HONE_CHECK(p.dim >= 1 && p.dim <= kNormMaxDim, op, "dim = ", p.dim, "; expected 1 to ",
             kNormMaxDim);
  HONE_CHECK(std::isfinite(p.eps) && p.eps >= 0.0f, op, "eps = ", p.eps,
             "; expected a finite value ≥ 0");
  if (p.rows == 0) return;
  HONE_CHECK(p.x != nullptr, op, "'x' is null");
  HONE_CHECK(p.w != nullptr, op, "'w' is null");
  HONE_CHECK(p.y != nullptr, op, "'y' is null");
  HONE_CHECK((p.residual == nullptr) == (p.residual_out == nullptr), op,
             p.residual ? "'residual' is set but 'residual_out' is null"
                        : "'residual_out' is set but 'residual' is null");
  if (p.kind == NormKind::rms) {
    HONE_CHECK(p.b == nullptr, op, "'b' is set for kind rms (a bias belongs to layer)");
    HONE_CHECK(p.mean == nullptr, op, "'mean' is set for kind rms (only layer has a mean)");
  }
}

}  // namespace

void norm_fwd(const NormFwdParams& p, cudaStream_t stream) {
  check(p);
  if (p.rows == 0) return;
  const bool vec8 = p.dim % 8 == 0 && aligned16(p.x) && aligned16(p.residual) &&
                    aligned16(p.residual_out) && aligned16(p.w) && aligned16(p.b) &&
                    aligned16(p.y);
  RowConfig c;
  HONE_CHECK(row_config(p.dim, vec8, &c), "norm_fwd", "dim = ", p.dim,
             " does not fit the row kernels (at most 8192 unless dim % 8 == 0 and the row "
             "pointers are 16-byte aligned)");
  const FwdArgs a{static_cast<const unsigned short*>(p.x),
                  static_cast<const unsigned short*>(p.residual),
                  static_cast<unsigned short*>(p.residual_out),
                  static_cast<const unsigned short*>(p.w),
                  static_cast<const unsigned short*>(p.b),
                  static_cast<unsigned short*>(p.y),
                  p.mean,
                  p.rstd,
                  p.rows,
                  p.dim,
                  p.eps};
  const std::int64_t blocks = (p.rows + c.rpb - 1) / c.rpb;
  HONE_CHECK(blocks <= 0x7fffffff, "norm_fwd", "rows = ", p.rows, " needs more than 2³¹ blocks");
  dispatch(p.kind == NormKind::layer, c, [&](auto tag) {
    using T = decltype(tag);
    launch(norm_fwd_kernel<T::kLayer, T::kVec, T::kPer>, dim3(static_cast<unsigned>(blocks)),
           dim3(c.tpr, c.rpb), sizeof(RowSumShared), stream, a);
  });
  check_launch("norm_fwd");
}

HONE_KERNELS_END

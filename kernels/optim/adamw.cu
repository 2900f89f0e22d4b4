// Fused multi-tensor AdamW: one pass reads grad, param, m, v and writes param, m, v and the
// bf16 weight copy; 4-element groups (16-byte fp32 accesses) where a tensor's pointers allow,
// single elements in the ragged tail of a chunk.
#include <cmath>
#include <cstdint>

#include "hone/error.h"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"
#include "kernels/optim/optim.h"
#include "kernels/optim/table.cuh"

HONE_KERNELS_BEGIN

namespace {

using namespace optim_detail;

// The step's constants, folded on the host in f64 and rounded to f32 once, as the CPU reference
// does. The update is the reference's f32 operations in its order, each fused multiply-add
// written out (nvcc would otherwise contract where it likes), so the two agree bit for bit.
struct AdamWHyper {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
  float decay;         // 1 − lr·wd
  float step_size;     // lr / (1 − β1ᵗ)
  float inv_bc2_sqrt;  // 1 / sqrt(1 − β2ᵗ)
};

__device__ __forceinline__ void adamw_update(const AdamWHyper& h, float g, float& p, float& m,
                                             float& v) {
  m = fmaf(h.beta1, m, h.one_minus_beta1 * g);
  v = fmaf(h.beta2, v, (h.one_minus_beta2 * g) * g);
  const float u = h.step_size * (m / fmaf(sqrtf(v), h.inv_bc2_sqrt, h.eps));
  p = fmaf(p, h.decay, -u);
}

template <class G>
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(Table t, AdamWHyper h, const float* grad_scale) {
  const float s = grad_scale ? *grad_scale : 1.0f;
  const std::int64_t total = t.chunk_begin[t.count];
  const std::int64_t tid = threadIdx.x, step = blockDim.x;
  for (std::int64_t c = blockIdx.x; c < total; c += gridDim.x) {
    const int i = find_tensor(t, c);
    const std::int64_t start = (c - t.chunk_begin[i]) * kChunk;
    const std::int64_t end = start + kChunk < t.n[i] ? start + kChunk : t.n[i];
    float* param = t.param[i];
    float* m = t.m[i];
    float* v = t.v[i];
    const G* grad = static_cast<const G*>(t.grad[i]);
    bf16_t* pb = static_cast<bf16_t*>(t.param_bf16[i]);
    std::int64_t scalar_from = start;
    if (t.vec >> i & 1u) {
      scalar_from = start + (end - start) / 4 * 4;
      for (std::int64_t e = start + tid * 4; e < scalar_from; e += step * 4) {
        float g[4];
        grad4(grad + e, g);
        float4 p4 = *reinterpret_cast<const float4*>(param + e);
        float4 m4 = *reinterpret_cast<const float4*>(m + e);
        float4 v4 = *reinterpret_cast<const float4*>(v + e);
        adamw_update(h, g[0] * s, p4.x, m4.x, v4.x);
        adamw_update(h, g[1] * s, p4.y, m4.y, v4.y);
        adamw_update(h, g[2] * s, p4.z, m4.z, v4.z);
        adamw_update(h, g[3] * s, p4.w, m4.w, v4.w);
        *reinterpret_cast<float4*>(param + e) = p4;
        *reinterpret_cast<float4*>(m + e) = m4;
        *reinterpret_cast<float4*>(v + e) = v4;
        if (pb) {
          uint2 u;
          u.x = static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(p4.x))) |
                static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(p4.y))) << 16;
          u.y = static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(p4.z))) |
                static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(p4.w))) << 16;
          *reinterpret_cast<uint2*>(pb + e) = u;
        }
      }
    }
    for (std::int64_t e = scalar_from + tid; e < end; e += step) {
      float p = param[e], mm = m[e], vv = v[e];
      adamw_update(h, grad_at(grad, e) * s, p, mm, vv);
      param[e] = p;
      m[e] = mm;
      v[e] = vv;
      if (pb) pb[e] = __float2bfloat16_rn(p);
    }
  }
}

}  // namespace

void adamw_step(const AdamWParams& p, cudaStream_t stream) {
  constexpr const char* op = "adamw_step";
  HONE_CHECK(p.count >= 0, op, "count = ", p.count, " is negative");
  HONE_CHECK(p.count == 0 || p.tensors != nullptr, op, "tensors is null");
  HONE_CHECK(p.step >= 1, op, "step = ", p.step, "; expected >= 1");
  HONE_CHECK(p.lr >= 0.0, op, "lr = ", p.lr, "; expected >= 0");
  HONE_CHECK(p.beta1 >= 0.0 && p.beta1 < 1.0, op, "beta1 = ", p.beta1, "; expected in [0, 1)");
  HONE_CHECK(p.beta2 >= 0.0 && p.beta2 < 1.0, op, "beta2 = ", p.beta2, "; expected in [0, 1)");
  HONE_CHECK(p.eps > 0.0, op, "eps = ", p.eps, "; expected > 0");
  HONE_CHECK(p.weight_decay >= 0.0, op, "weight_decay = ", p.weight_decay, "; expected >= 0");
  for (int i = 0; i < p.count; ++i) {
    const AdamWTensor& t = p.tensors[i];
    HONE_CHECK(t.n >= 0, op, "tensors[", i, "].n = ", t.n, " is negative");
    if (t.n == 0) continue;
    HONE_CHECK(t.param && t.m && t.v && t.grad, op, "tensors[", i,
               "] has a null param, m, v or grad (n = ", t.n, ")");
  }
  const double t = static_cast<double>(p.step);
  AdamWHyper h;
  h.beta1 = static_cast<float>(p.beta1);
  h.one_minus_beta1 = static_cast<float>(1.0 - p.beta1);
  h.beta2 = static_cast<float>(p.beta2);
  h.one_minus_beta2 = static_cast<float>(1.0 - p.beta2);
  h.eps = static_cast<float>(p.eps);
  h.decay = static_cast<float>(1.0 - p.lr * p.weight_decay);
  h.step_size = static_cast<float>(p.lr / (1.0 - std::pow(p.beta1, t)));
  h.inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(p.beta2, t)));
  const bool bf16_grad = p.grad_type == OptimGradType::bf16;
  constexpr std::int64_t kMaxBlocks = 1024;
  for (int first = 0; first < p.count; first += kTable) {
    const int count = p.count - first < kTable ? p.count - first : kTable;
    const Table tab = make_table(p.tensors, first, count, bf16_grad);
    const std::int64_t chunks = tab.chunk_begin[count];
    if (chunks == 0) continue;
    const dim3 grid(static_cast<unsigned>(chunks < kMaxBlocks ? chunks : kMaxBlocks));
    if (bf16_grad)
      launch(adamw_kernel<bf16_t>, grid, dim3(kThreads), 0, stream, tab, h, p.grad_scale);
    else
      launch(adamw_kernel<float>, grid, dim3(kThreads), 0, stream, tab, h, p.grad_scale);
    check_launch(op);
  }
}

HONE_KERNELS_END

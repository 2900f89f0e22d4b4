// SwiGLU and GELU (tanh approximation) forward and backward: one element-wise map kernel over
// bf16 streams, 16-byte vectors where every pointer allows, a scalar path for the rest.
#include "kernels/activation/activation.h"

#include <cstring>

#include "hone/error.h"
#include "kernels/common/bf16.cuh"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"

HONE_KERNELS_BEGIN

namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;              // bf16 elements per 16-byte vector
constexpr std::int64_t kMaxBlocks = 4096;  // grid-stride beyond this; results do not depend on it
constexpr float kGeluK = 0.7978845608028654f;  // √(2/π)
constexpr float kGeluC = 0.044715f;

using namespace bf16v;

// The bf16 streams of one map: NI inputs, NO outputs (a null output is skipped).
template <int NI, int NO>
struct Streams {
  const unsigned short* in[NI];
  unsigned short* out[NO];
};

// σ(g) = 1 / (1 + e^(−g)); e^(−g) overflows to inf for very negative g, which gives 0, not NaN.
__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

struct SwigluFwdOp {
  __device__ void operator()(const float (&in)[2], float (&out)[1]) const {
    const float g = in[0];
    out[0] = g * sigmoid(g) * in[1];
  }
};

// out = silu(g) · u, silu' = σ (1 + g (1 − σ)):
//   dgate = dout · u · σ(g) · (1 + g (1 − σ(g))),  dup = dout · g · σ(g)
struct SwigluBwdOp {
  __device__ void operator()(const float (&in)[3], float (&out)[2]) const {
    const float d = in[0], g = in[1], u = in[2];
    const float s = sigmoid(g);
    out[0] = d * u * s * (1.0f + g * (1.0f - s));
    out[1] = d * g * s;
  }
};

// 0.5 (1 + tanh u) = σ(2u), so y = x · σ(2u): unlike 1 + tanh u, which cancels to nothing in
// fp32 for u ≲ −9, this keeps full relative accuracy on the negative side.
struct GeluFwdOp {
  __device__ void operator()(const float (&in)[1], float (&out)[1]) const {
    const float x = in[0];
    const float u = kGeluK * (x + kGeluC * x * x * x);
    out[0] = x / (1.0f + expf(-2.0f * u));  // x³ → ±inf gives x or −0, never NaN
  }
};

// y = 0.5 x (1 + t), t = tanh u, u = k (x + c x³). With σ = σ(2u) = 0.5 (1 + t) and
// 1 − t² = 4 σ (1 − σ):
//   dx = dy · σ · (1 + 2 x (1 − σ) k (1 + 3 c x²))
// 1 − σ is computed as σ(−2u), accurate where σ → 1. Either factor at 0 ends the product, so
// x² = inf never meets a zero (no 0 · inf); the reference drops the same term once tanh saturates.
struct GeluBwdOp {
  __device__ void operator()(const float (&in)[2], float (&out)[1]) const {
    const float dy = in[0], x = in[1];
    const float u = kGeluK * (x + kGeluC * x * x * x);
    const float s = 1.0f / (1.0f + expf(-2.0f * u));
    const float om = 1.0f / (1.0f + expf(2.0f * u));
    float dydx = 0.0f;
    if (s != 0.0f) {
      const float tail = om == 0.0f ? 0.0f : 2.0f * x * om * kGeluK * (1.0f + 3.0f * kGeluC * x * x);
      dydx = s * (1.0f + tail);
    }
    out[0] = dy * dydx;
  }
};

// Work item k < n_vec is the vector at 8k; the others are single elements from 8·n_vec on.
template <int NI, int NO, class Op>
__global__ void __launch_bounds__(kThreads)
    map_kernel(Streams<NI, NO> s, std::int64_t n, std::int64_t n_vec, Op op) {
  const std::int64_t items = n_vec + (n - n_vec * kVec);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       k < items; k += stride) {
    if (k < n_vec) {
      float in[NI][kVec];
#pragma unroll
      for (int a = 0; a < NI; ++a) load_bf16<kVec>(s.in[a] + k * kVec, in[a]);
      float out[NO][kVec];
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        float xi[NI], yo[NO];
#pragma unroll
        for (int a = 0; a < NI; ++a) xi[a] = in[a][e];
        op(xi, yo);
#pragma unroll
        for (int b = 0; b < NO; ++b) out[b][e] = yo[b];
      }
#pragma unroll
      for (int b = 0; b < NO; ++b)
        if (s.out[b]) store_bf16<kVec>(s.out[b] + k * kVec, out[b]);
    } else {
      const std::int64_t i = n_vec * kVec + (k - n_vec);
      float xi[NI], yo[NO];
#pragma unroll
      for (int a = 0; a < NI; ++a) xi[a] = bf16_to_float(s.in[a][i]);
      op(xi, yo);
#pragma unroll
      for (int b = 0; b < NO; ++b)
        if (s.out[b]) s.out[b][i] = float_to_bf16(yo[b]);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <int NI, int NO, class Op>
void run_map(const char* op_name, const void* const (&in)[NI], void* const (&out)[NO],
             std::int64_t n, cudaStream_t stream) {
  Streams<NI, NO> s;
  bool vec = true;
  for (int a = 0; a < NI; ++a) {
    s.in[a] = static_cast<const unsigned short*>(in[a]);
    vec = vec && aligned16(in[a]);
  }
  for (int b = 0; b < NO; ++b) {
    s.out[b] = static_cast<unsigned short*>(out[b]);
    vec = vec && (out[b] == nullptr || aligned16(out[b]));
  }
  const std::int64_t n_vec = vec ? n / kVec : 0;
  const std::int64_t items = n_vec + (n - n_vec * kVec);
  std::int64_t blocks = (items + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  launch(map_kernel<NI, NO, Op>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, s,
         n, n_vec, Op{});
  check_launch(op_name);
}

void check_n(const char* op, std::int64_t n) {
  HONE_CHECK(n >= 0, op, "n = ", n, " is negative");
}
void check_ptr(const char* op, const char* field, const void* p) {
  HONE_CHECK(p != nullptr, op, "'", field, "' is null");
}

}  // namespace

void swiglu_fwd(const SwigluParams& p, cudaStream_t stream) {
  const char* op = "swiglu_fwd";
  check_n(op, p.n);
  if (p.n == 0) return;
  check_ptr(op, "gate", p.gate);
  check_ptr(op, "up", p.up);
  check_ptr(op, "out", p.out);
  run_map<2, 1, SwigluFwdOp>(op, {p.gate, p.up}, {p.out}, p.n, stream);
}

void swiglu_bwd(const SwigluBwdParams& p, cudaStream_t stream) {
  const char* op = "swiglu_bwd";
  check_n(op, p.n);
  if (p.n == 0 || (!p.dgate && !p.dup)) return;
  check_ptr(op, "dout", p.dout);
  check_ptr(op, "gate", p.gate);
  check_ptr(op, "up", p.up);
  run_map<3, 2, SwigluBwdOp>(op, {p.dout, p.gate, p.up}, {p.dgate, p.dup}, p.n, stream);
}

void gelu_fwd(const GeluParams& p, cudaStream_t stream) {
  const char* op = "gelu_fwd";
  check_n(op, p.n);
  if (p.n == 0) return;
  check_ptr(op, "x", p.x);
  check_ptr(op, "y", p.y);
  run_map<1, 1, GeluFwdOp>(op, {p.x}, {p.y}, p.n, stream);
}

void gelu_bwd(const GeluBwdParams& p, cudaStream_t stream) {
  const char* op = "gelu_bwd";
  check_n(op, p.n);
  if (p.n == 0) return;
  check_ptr(op, "dy", p.dy);
  check_ptr(op, "x", p.x);
  check_ptr(op, "dx", p.dx);
  run_map<2, 1, GeluBwdOp>(op, {p.dy, p.x}, {p.dx}, p.n, stream);
}

HONE_KERNELS_END

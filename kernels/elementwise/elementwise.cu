// add, scale, bias_add: one grid-stride map kernel over f32 or bf16 streams (16-byte vectors
// where the pointers allow, a scalar path for the rest); mul (two streams of possibly different
// types) and dropout_mask: one grid-stride map of 8 elements a step with an op functor;
// bias_bwd: a two-pass column reduction through row slots in a workspace, deterministic
// without atomics.
#include "kernels/elementwise/elementwise.h"

#include <cstring>

#include "hone/error.h"
#include "kernels/common/bf16.cuh"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"

HONE_KERNELS_BEGIN

namespace {

constexpr int kThreads = 256;
constexpr std::int64_t kMaxBlocks = 4096;  // grid-stride beyond this; results do not depend on it
constexpr std::int64_t kRowsPerSlot = 16;  // bias_bwd: fewest rows a slot sums
constexpr std::int64_t kMaxSlots = 128;    // bias_bwd: most partial rows

using bf16_bits = unsigned short;  // bf16 storage: the upper half of an fp32

__device__ __forceinline__ float to_float(bf16_bits b) {
  return __uint_as_float(static_cast<unsigned>(b) << 16);  // exact
}
__device__ __forceinline__ float to_float(float f) { return f; }
__device__ __forceinline__ void store(bf16_bits* p, float f) {
  *p = __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
__device__ __forceinline__ void store(float* p, float f) { *p = f; }

// Elements of S in one 16-byte vector.
template <class S>
constexpr int kVec = 16 / static_cast<int>(sizeof(S));

// One 16-byte vector at p (16-byte aligned), widened to fp32 / narrowed from fp32 (round once).
template <class S>
__device__ __forceinline__ void load_vec(const S* p, float (&f)[kVec<S>]) {
  alignas(16) S v[kVec<S>];
#if defined(__CUDACC__)
  *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(p);
#else
  std::memcpy(v, p, 16);  // no type punning under g++
#endif
#pragma unroll
  for (int e = 0; e < kVec<S>; ++e) f[e] = to_float(v[e]);
}
template <class S>
__device__ __forceinline__ void store_vec(S* p, const float (&f)[kVec<S>]) {
  alignas(16) S v[kVec<S>];
#pragma unroll
  for (int e = 0; e < kVec<S>; ++e) store(&v[e], f[e]);
#if defined(__CUDACC__)
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(v);
#else
  std::memcpy(p, v, 16);
#endif
}

enum class Map : std::uint8_t { add, scale, bias };

// x[i] = f(x[i], y[j]) with j = i (add), i mod period (bias), unused (scale).
template <Map M>
__device__ __forceinline__ float apply(float x, float y, float alpha) {
  if (M == Map::add) return x + alpha * y;
  if (M == Map::scale) return x * alpha;
  return x + y;
}

// Work item k < n_vec is the vector at kVec·k; the others are single elements from kVec·n_vec
// on. For Map::bias, period is a multiple of kVec when n_vec > 0, so a vector never crosses a row.
template <class S, Map M>
__global__ void __launch_bounds__(kThreads)
    map_kernel(S* x, const S* y, float alpha, std::int64_t n, std::int64_t n_vec,
               std::int64_t period) {
  constexpr int V = kVec<S>;
  const std::int64_t items = n_vec + (n - n_vec * V);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       k < items; k += stride) {
    if (k < n_vec) {
      const std::int64_t i = k * V;
      float xv[V], yv[V] = {};
      load_vec(x + i, xv);
      if (M == Map::add) load_vec(y + i, yv);
      if (M == Map::bias) load_vec(y + i % period, yv);
#pragma unroll
      for (int e = 0; e < V; ++e) xv[e] = apply<M>(xv[e], M == Map::scale ? 0.0f : yv[e], alpha);
      store_vec(x + i, xv);
    } else {
      const std::int64_t i = n_vec * V + (k - n_vec);
      float yi = 0.0f;
      if (M == Map::add) yi = to_float(y[i]);
      if (M == Map::bias) yi = to_float(y[i % period]);
      store(x + i, apply<M>(to_float(x[i]), yi, alpha));
    }
  }
}

// Eight elements at p (16-byte aligned) widened to fp32, and narrowed back (bf16 rounded once):
// one 16-byte access for bf16, two for f32.
constexpr int kStep = 8;
__device__ __forceinline__ void load8(const bf16_bits* p, float (&f)[kStep]) {
  bf16v::load_bf16<kStep>(p, f);
}
__device__ __forceinline__ void store8(bf16_bits* p, const float (&f)[kStep]) {
  bf16v::store_bf16<kStep>(p, f);
}
__device__ __forceinline__ void load8(const float* p, float (&f)[kStep]) {
#if defined(__CUDACC__)
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
#else
  std::memcpy(f, p, sizeof f);
#endif
}
__device__ __forceinline__ void store8(float* p, const float (&f)[kStep]) {
#if defined(__CUDACC__)
  reinterpret_cast<float4*>(p)[0] = make_float4(f[0], f[1], f[2], f[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(f[4], f[5], f[6], f[7]);
#else
  std::memcpy(p, f, sizeof f);
#endif
}

// x[i] = op(x[i], y[i]) in fp32 (op(x[i], 0) when y is null). Work item k < n_vec is the 8
// elements from 8k; the others are single elements from 8·n_vec on. Each element is read and
// written by one thread, so y may be x.
template <class X, class Y, class Op>
__global__ void __launch_bounds__(kThreads)
    step8_kernel(X* x, const Y* y, Op op, std::int64_t n, std::int64_t n_vec) {
  const std::int64_t items = n_vec + (n - n_vec * kStep);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       k < items; k += stride) {
    if (k < n_vec) {
      const std::int64_t i = k * kStep;
      float xv[kStep], yv[kStep] = {};
      load8(x + i, xv);
      if (y != nullptr) load8(y + i, yv);
#pragma unroll
      for (int e = 0; e < kStep; ++e) xv[e] = op(xv[e], yv[e]);
      store8(x + i, xv);
    } else {
      const std::int64_t i = n_vec * kStep + (k - n_vec);
      store(x + i, op(to_float(x[i]), y != nullptr ? to_float(y[i]) : 0.0f));
    }
  }
}

// mul: x · m.
struct MulOp {
  __device__ __forceinline__ float operator()(float x, float m) const { return x * m; }
};
// dropout_mask: u ≥ threshold ? keep : 0.
struct DropoutMaskOp {
  float threshold, keep;
  __device__ __forceinline__ float operator()(float u, float) const { return u >= threshold ? keep : 0.0f; }
};

// Pass 1 of bias_bwd: slot blockIdx.y sums rows [slot·per_slot, (slot + 1)·per_slot) of column
// `col` in row order into ws[slot, col]. Threads of a warp take adjacent columns (coalesced).
template <class S>
__global__ void __launch_bounds__(kThreads)
    bias_partial_kernel(const S* dy, float* ws, std::int64_t rows, std::int64_t features,
                        std::int64_t per_slot) {
  const std::int64_t col = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= features) return;
  const std::int64_t slot = blockIdx.y;
  const std::int64_t r0 = slot * per_slot;
  const std::int64_t r1 = r0 + per_slot < rows ? r0 + per_slot : rows;
  float s = 0.0f;
  for (std::int64_t r = r0; r < r1; ++r) s += to_float(dy[r * features + col]);
  ws[slot * features + col] = s;
}

// Pass 2: db[col] += Σ_slot ws[slot, col], slots in order.
template <class G>
__global__ void __launch_bounds__(kThreads)
    bias_finish_kernel(const float* ws, G* db, std::int64_t slots, std::int64_t features) {
  const std::int64_t col = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= features) return;
  float s = 0.0f;
  for (std::int64_t k = 0; k < slots; ++k) s += ws[k * features + col];
  store(db + col, to_float(db[col]) + s);
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

void check_ptr(const char* op, const char* field, const void* p) {
  HONE_CHECK(p != nullptr, op, "'", field, "' is null");
}

void check_type(const char* op, const char* field, ElementwiseType t) {
  HONE_CHECK(t == ElementwiseType::f32 || t == ElementwiseType::bf16, op, "'", field,
             "' is not a known element type (", static_cast<int>(t), ")");
}

unsigned blocks_for(std::int64_t items) {
  std::int64_t blocks = (items + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return static_cast<unsigned>(blocks);
}

// One step8_kernel launch over n elements (8-element items where both pointers allow).
template <class X, class Y, class Op>
void run_step8(X* x, const Y* y, Op op, std::int64_t n, cudaStream_t stream) {
  const std::int64_t n_vec = aligned16(x) && (y == nullptr || aligned16(y)) ? n / kStep : 0;
  const std::int64_t items = n_vec + (n - n_vec * kStep);
  launch(step8_kernel<X, Y, Op>, dim3(blocks_for(items)), dim3(kThreads), 0, stream, x, y, op, n, n_vec);
}

template <class S, Map M>
void run_map(const char* op, void* x, const void* y, float alpha, std::int64_t n,
             std::int64_t period, cudaStream_t stream) {
  constexpr int V = kVec<S>;
  bool vec = aligned16(x) && (M == Map::scale || aligned16(y));
  if (M == Map::bias) vec = vec && period % V == 0;
  const std::int64_t n_vec = vec ? n / V : 0;
  const std::int64_t items = n_vec + (n - n_vec * V);
  launch(map_kernel<S, M>, dim3(blocks_for(items)), dim3(kThreads), 0, stream, static_cast<S*>(x),
         static_cast<const S*>(y), alpha, n, n_vec, period);
  check_launch(op);
}

template <Map M>
void map_by_type(const char* op, ElementwiseType t, void* x, const void* y, float alpha,
                 std::int64_t n, std::int64_t period, cudaStream_t stream) {
  if (t == ElementwiseType::f32)
    run_map<float, M>(op, x, y, alpha, n, period, stream);
  else
    run_map<bf16_bits, M>(op, x, y, alpha, n, period, stream);
}

template <class X>
void mul_by_m_type(const MulParams& p, cudaStream_t stream) {
  if (p.m_type == ElementwiseType::f32)
    run_step8(static_cast<X*>(p.x), static_cast<const float*>(p.m), MulOp{}, p.n, stream);
  else
    run_step8(static_cast<X*>(p.x), static_cast<const bf16_bits*>(p.m), MulOp{}, p.n, stream);
}

}  // namespace

void add(const AddParams& p, cudaStream_t stream) {
  const char* op = "elementwise_add";
  HONE_CHECK(p.n >= 0, op, "n = ", p.n, " is negative");
  check_type(op, "type", p.type);
  if (p.n == 0) return;
  check_ptr(op, "dst", p.dst);
  check_ptr(op, "src", p.src);
  map_by_type<Map::add>(op, p.type, p.dst, p.src, p.alpha, p.n, 1, stream);
}

void scale(const ScaleParams& p, cudaStream_t stream) {
  const char* op = "elementwise_scale";
  HONE_CHECK(p.n >= 0, op, "n = ", p.n, " is negative");
  check_type(op, "type", p.type);
  if (p.n == 0) return;
  check_ptr(op, "x", p.x);
  map_by_type<Map::scale>(op, p.type, p.x, nullptr, p.alpha, p.n, 1, stream);
}

void mul(const MulParams& p, cudaStream_t stream) {
  const char* op = "elementwise_mul";
  HONE_CHECK(p.n >= 0, op, "n = ", p.n, " is negative");
  check_type(op, "x_type", p.x_type);
  check_type(op, "m_type", p.m_type);
  if (p.n == 0) return;
  check_ptr(op, "x", p.x);
  check_ptr(op, "m", p.m);
  if (p.x_type == ElementwiseType::f32)
    mul_by_m_type<float>(p, stream);
  else
    mul_by_m_type<bf16_bits>(p, stream);
  check_launch(op);
}

void dropout_mask(const DropoutMaskParams& p, cudaStream_t stream) {
  const char* op = "elementwise_dropout_mask";
  HONE_CHECK(p.n >= 0, op, "n = ", p.n, " is negative");
  if (p.n == 0) return;
  check_ptr(op, "u", p.u);
  run_step8(p.u, static_cast<const float*>(nullptr), DropoutMaskOp{p.threshold, p.keep}, p.n, stream);
  check_launch(op);
}

void bias_add(const BiasAddParams& p, cudaStream_t stream) {
  const char* op = "elementwise_bias_add";
  HONE_CHECK(p.rows >= 0, op, "rows = ", p.rows, " is negative");
  HONE_CHECK(p.features >= 1 || p.rows == 0, op, "features = ", p.features,
             "; expected at least 1");
  check_type(op, "type", p.type);
  if (p.rows == 0) return;
  check_ptr(op, "x", p.x);
  check_ptr(op, "b", p.b);
  map_by_type<Map::bias>(op, p.type, p.x, p.b, 1.0f, p.rows * p.features, p.features, stream);
}

std::int64_t bias_bwd_slots(std::int64_t rows) {
  HONE_CHECK(rows >= 0, "bias_bwd_slots", "rows = ", rows, " is negative");
  const std::int64_t slots = (rows + kRowsPerSlot - 1) / kRowsPerSlot;
  return slots < kMaxSlots ? slots : kMaxSlots;
}

std::size_t bias_bwd_workspace_bytes(std::int64_t rows, std::int64_t features) {
  HONE_CHECK(features >= 0, "bias_bwd_workspace_bytes", "features = ", features, " is negative");
  return static_cast<std::size_t>(bias_bwd_slots(rows) * features) * sizeof(float);
}

void bias_bwd(const BiasBwdParams& p, cudaStream_t stream) {
  const char* op = "elementwise_bias_bwd";
  HONE_CHECK(p.rows >= 0, op, "rows = ", p.rows, " is negative");
  HONE_CHECK(p.features >= 1, op, "features = ", p.features, "; expected at least 1");
  check_type(op, "type", p.type);
  check_type(op, "grad_type", p.grad_type);
  if (p.rows == 0) return;  // db += 0
  check_ptr(op, "dy", p.dy);
  check_ptr(op, "db", p.db);
  HONE_CHECK(p.workspace != nullptr, op, "'workspace' is null (bias_bwd_workspace_bytes = ",
             bias_bwd_workspace_bytes(p.rows, p.features), " bytes)");
  const std::int64_t slots = bias_bwd_slots(p.rows);
  const std::int64_t per_slot = (p.rows + slots - 1) / slots;
  const std::int64_t col_blocks = (p.features + kThreads - 1) / kThreads;
  HONE_CHECK(col_blocks <= 0x7fffffff, op, "features = ", p.features, " exceeds the grid limit");
  float* ws = static_cast<float*>(p.workspace);
  const dim3 grid1(static_cast<unsigned>(col_blocks), static_cast<unsigned>(slots));
  if (p.type == ElementwiseType::f32)
    launch(bias_partial_kernel<float>, grid1, dim3(kThreads), 0, stream,
           static_cast<const float*>(p.dy), ws, p.rows, p.features, per_slot);
  else
    launch(bias_partial_kernel<bf16_bits>, grid1, dim3(kThreads), 0, stream,
           static_cast<const bf16_bits*>(p.dy), ws, p.rows, p.features, per_slot);
  check_launch(op);
  const dim3 grid2(static_cast<unsigned>(col_blocks));
  if (p.grad_type == ElementwiseType::f32)
    launch(bias_finish_kernel<float>, grid2, dim3(kThreads), 0, stream,
           static_cast<const float*>(ws), static_cast<float*>(p.db), slots, p.features);
  else
    launch(bias_finish_kernel<bf16_bits>, grid2, dim3(kThreads), 0, stream,
           static_cast<const float*>(ws), static_cast<bf16_bits*>(p.db), slots, p.features);
  check_launch(op);
}

HONE_KERNELS_END

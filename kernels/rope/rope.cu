// Rotary position embeddings, forward and backward. A block takes a few consecutive tokens:
// first the cos/sin of each (token, frequency) into shared memory (fp64 angle, as the CPU
// reference), then every head of those tokens rotates from that table, 8 pairs per 16-byte load
// where head_dim and alignment allow.
#include "kernels/rope/rope.h"

#include <cstring>

#include "hone/error.h"
#include "kernels/common/bf16.cuh"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"

HONE_KERNELS_BEGIN

namespace {

constexpr int kThreads = 256;
constexpr std::int64_t kTableEntries = 4096;  // (token, frequency) pairs per block: 32 KiB
constexpr std::int64_t kElementsPerBlock = 4096;
constexpr std::int64_t kMaxTokensPerBlock = 64;

struct RopeArgs {
  const unsigned short* x;
  unsigned short* y;
  const std::int32_t* pos32;  // one of the two is set
  const std::int64_t* pos64;
  const double* inv_freq;
  double sign;  // +1 forward, −1 backward
  std::int64_t tokens;
  int heads, head_dim, tokens_per_block;
};

using namespace bf16v;

// Forward, with (u, v) = (x[i], x[i + half]) and s = sign · sin a:  (u cos a − v s, v cos a + u s).
// The backward (sign −1) is the transpose: the Jacobian of a rotation is the rotation.
template <int kVec>
__global__ void __launch_bounds__(kThreads) rope_kernel(RopeArgs a) {
  HONE_DYNAMIC_SMEM(float2, table);  // [token in block][frequency]: (cos a, sign · sin a)
  const int half = a.head_dim / 2;
  const std::int64_t tok0 = static_cast<std::int64_t>(blockIdx.x) * a.tokens_per_block;
  const int nt = static_cast<int>(
      a.tokens - tok0 < a.tokens_per_block ? a.tokens - tok0 : a.tokens_per_block);

  for (int idx = threadIdx.x; idx < nt * half; idx += blockDim.x) {
    const int t = idx / half, i = idx - t * half;
    const double pos = a.pos64 ? static_cast<double>(a.pos64[tok0 + t])
                               : static_cast<double>(a.pos32[tok0 + t]);
    const double angle = pos * a.inv_freq[i];
    float2 cs;
    cs.x = static_cast<float>(cos(angle));
    cs.y = static_cast<float>(a.sign * sin(angle));
    table[idx] = cs;
  }
  HONE_SYNC("rope_table");

  // Item k: chunk of kVec pairs (fastest), then head, then token: a warp reads whole heads.
  const int chunks = half / kVec;
  const int items = nt * a.heads * chunks;
  for (int k = threadIdx.x; k < items; k += blockDim.x) {
    const int chunk = k % chunks, rest = k / chunks;
    const int h = rest % a.heads, t = rest / a.heads;
    const int i0 = chunk * kVec;
    const std::int64_t base = ((tok0 + t) * a.heads + h) * a.head_dim + i0;
    float u[kVec], v[kVec], ou[kVec], ov[kVec];
    load_bf16<kVec>(a.x + base, u);
    load_bf16<kVec>(a.x + base + half, v);
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      const float2 cs = table[t * half + i0 + j];
      ou[j] = u[j] * cs.x - v[j] * cs.y;
      ov[j] = v[j] * cs.x + u[j] * cs.y;
    }
    // Both halves were read above: y may be x.
    store_bf16<kVec>(a.y + base, ou);
    store_bf16<kVec>(a.y + base + half, ov);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

void rope_run(const char* op, const RopeParams& p, double sign, cudaStream_t stream) {
  HONE_CHECK(p.tokens >= 0, op, "tokens = ", p.tokens, " is negative");
  HONE_CHECK(p.heads >= 1, op, "heads = ", p.heads, "; expected ≥ 1");
  HONE_CHECK(p.head_dim >= 2 && p.head_dim % 2 == 0 && p.head_dim <= kRopeMaxHeadDim, op,
             "head_dim = ", p.head_dim, "; expected an even number from 2 to ", kRopeMaxHeadDim);
  HONE_CHECK(p.heads * p.head_dim <= (std::int64_t{1} << 30), op, "heads · head_dim = ",
             p.heads * p.head_dim, " exceeds 2³⁰");
  HONE_CHECK(p.positions_type == RopeIndexType::i32 || p.positions_type == RopeIndexType::i64, op,
             "positions_type ", static_cast<int>(p.positions_type), " is not i32 or i64");
  if (p.tokens == 0) return;
  HONE_CHECK(p.x != nullptr, op, "'x' is null");
  HONE_CHECK(p.y != nullptr, op, "'y' is null");
  HONE_CHECK(p.positions != nullptr, op, "'positions' is null");
  HONE_CHECK(p.inv_freq != nullptr, op, "'inv_freq' is null");

  const std::int64_t half = p.head_dim / 2;
  const std::int64_t per_token = p.heads * p.head_dim;
  std::int64_t tpb = kElementsPerBlock / per_token;
  if (tpb > kTableEntries / half) tpb = kTableEntries / half;
  if (tpb > kMaxTokensPerBlock) tpb = kMaxTokensPerBlock;
  if (tpb < 1) tpb = 1;
  const std::int64_t blocks = (p.tokens + tpb - 1) / tpb;
  HONE_CHECK(blocks <= 0x7fffffff, op, "tokens = ", p.tokens, " needs more than 2³¹ blocks");
  const bool i64 = p.positions_type == RopeIndexType::i64;
  const RopeArgs a{static_cast<const unsigned short*>(p.x),
                   static_cast<unsigned short*>(p.y),
                   i64 ? nullptr : static_cast<const std::int32_t*>(p.positions),
                   i64 ? static_cast<const std::int64_t*>(p.positions) : nullptr,
                   p.inv_freq,
                   sign,
                   p.tokens,
                   static_cast<int>(p.heads),
                   static_cast<int>(p.head_dim),
                   static_cast<int>(tpb)};
  const bool vec8 = half % 8 == 0 && aligned16(p.x) && aligned16(p.y);
  const std::size_t smem = static_cast<std::size_t>(tpb * half) * sizeof(float2);
  if (vec8)
    launch(rope_kernel<8>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), smem, stream, a);
  else
    launch(rope_kernel<1>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), smem, stream, a);
  check_launch(op);
}

}  // namespace

void rope_fwd(const RopeParams& p, cudaStream_t stream) { rope_run("rope_fwd", p, 1.0, stream); }

void rope_bwd(const RopeParams& p, cudaStream_t stream) { rope_run("rope_bwd", p, -1.0, stream); }

HONE_KERNELS_END

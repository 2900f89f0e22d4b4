// Flash-attention forward (FlashAttention-2 schedule on mma.sync): one block per (query tile,
// head, sequence); each warp owns 16 query rows and keeps its Q fragments, running max, running
// sum and O accumulator in registers while K/V tiles stream through a two-stage cp.async
// pipeline in shared memory. Per key tile, with s = scale·log2(e)·Q·Kᵀ (scores in base 2):
//   m' = max(m, rowmax s)          α = 2^(m − m')              P = 2^(s − m')
//   l' = α·l + rowsum P            O' = α·O + P·V              (P rounded to bf16 for the mma)
// and at the end O/l and lse = (m + log2 l)·ln 2. Key tiles no query of the block sees (past the
// causal diagonal, before the sliding window) are never loaded; only tiles that straddle a
// boundary are masked element by element.
#include <algorithm>

#include "kernels/attention/attention_common.cuh"

HONE_KERNELS_BEGIN
namespace attention_detail {
namespace {

constexpr const char* kFwdOp = "attention_fwd";

// 8 warps × 16 query rows, key tiles of 64.
template <int HD>
struct FwdConfig {
  static constexpr int kHd = HD;
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = 64;
  static constexpr int kPitch = HD + kPad;
};

template <class Cfg>
struct FwdShared {
  alignas(16) std::uint16_t q[Cfg::kBlockM][Cfg::kPitch];
  alignas(16) std::uint16_t k[2][Cfg::kBlockN][Cfg::kPitch];
  alignas(16) std::uint16_t v[2][Cfg::kBlockN][Cfg::kPitch];
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads)
    attention_fwd_kernel(AttentionParams p, float scale) {
  constexpr int kHd = Cfg::kHd, kBlockN = Cfg::kBlockN, kPitch = Cfg::kPitch;
  constexpr int kSteps = kHd / 16;      // k16 steps of Q·Kᵀ
  constexpr int kNTiles = kBlockN / 8;  // n8 tiles of a score row block
  constexpr int kOTiles = kHd / 8;      // n8 tiles of the output
  HONE_DYNAMIC_SMEM(FwdShared<Cfg>, smem);

  const int b = blockIdx.z, h = blockIdx.y;
  // Causal tiles late in the sequence cost the most: launch them first.
  const int m_block = p.causal ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : blockIdx.x;
  const bool packed = p.cu_seqlens != nullptr;
  const SeqRange seq = seq_range(p.cu_seqlens, b, p.seqlen);
  const int len = seq.len, m0 = m_block * Cfg::kBlockM;
  if (m0 >= len) return;  // the whole block: no barrier reached
  const int kv_head = h / (p.heads / p.kv_heads);
  const std::uint16_t* q = head_base(p.q, b, packed, seq.start, h);
  const std::uint16_t* k = head_base(p.k, b, packed, seq.start, kv_head);
  const std::uint16_t* v = head_base(p.v, b, packed, seq.start, kv_head);

  // Keys [n_lo, n_hi) are seen by some row of the block.
  const int last_row = imin(len, m0 + Cfg::kBlockM) - 1;
  const int n_lo = p.window > 0 ? imax(0, m0 - p.window + 1) : 0;
  const int n_hi = p.causal ? last_row + 1 : len;
  const int t_begin = n_lo / kBlockN, t_end = (n_hi + kBlockN - 1) / kBlockN;

  load_rows<Cfg::kBlockM, kHd, kPitch, Cfg::kThreads>(&smem->q[0][0], q, p.q.row_stride, m0, len,
                                                      p.head_dim);
  auto load_kv = [&](int tile, int stage) {
    const int n0 = tile * kBlockN;
    load_rows<kBlockN, kHd, kPitch, Cfg::kThreads>(&smem->k[stage][0][0], k, p.k.row_stride, n0,
                                                   len, p.head_dim);
    load_rows<kBlockN, kHd, kPitch, Cfg::kThreads>(&smem->v[stage][0][0], v, p.v.row_stride, n0,
                                                   len, p.head_dim);
  };
  load_kv(t_begin, 0);
  ptx::cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int w_row0 = m0 + 16 * warp;  // the warp's first query row
  const int row[2] = {w_row0 + g, w_row0 + g + 8};
  const float c = scale * kLog2e;

  std::uint32_t qf[kSteps][4];
  float o[kOTiles][4];
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
  for (int j = 0; j < kOTiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[j][e] = 0.0f;

  for (int tile = t_begin; tile < t_end; ++tile) {
    const int stage = (tile - t_begin) & 1;
    if (tile + 1 < t_end) load_kv(tile + 1, stage ^ 1);
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();                 // this thread's copies of `tile` are done ...
    HONE_SYNC("attention_fwd_tile_ready");  // ... and everyone's
    if (tile == t_begin) {
#pragma unroll
      for (int s = 0; s < kSteps; ++s) load_a<kPitch>(qf[s], &smem->q[0][0], 16 * warp, 16 * s, lane);
    }
    const int n0 = tile * kBlockN;
    // Warp-uniform: rows past the end, or every row of the warp before the tile (causal) or
    // past its window, skip the tile.
    const int w_last = imin(w_row0 + 15, len - 1);
    const bool idle = w_row0 >= len || (p.causal && w_last < n0) ||
                      (p.window > 0 && w_row0 - (n0 + kBlockN - 1) >= p.window);
    if (!idle) {
      float s[kNTiles][4];
#pragma unroll
      for (int j = 0; j < kNTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < kSteps; ++ks)
#pragma unroll
        for (int np = 0; np < kNTiles / 2; ++np) {
          std::uint32_t kb[4];
          load_b_nk<kPitch>(kb, &smem->k[stage][0][0], 16 * np, 16 * ks, lane);
          mma_pair(s[2 * np], s[2 * np + 1], qf[ks], kb);
        }
#pragma unroll
      for (int j = 0; j < kNTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] *= c;
      const bool masked = n0 + kBlockN > len || (p.causal && n0 + kBlockN - 1 > w_row0) ||
                          (p.window > 0 && w_last - n0 >= p.window);
      if (masked) {
#pragma unroll
        for (int j = 0; j < kNTiles; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (!visible(row[e >> 1], n0 + 8 * j + 2 * t + (e & 1), len, p.causal, p.window))
              s[j][e] = -INFINITY;
      }
      // Online softmax for the thread's two rows (r = 0: g, r = 1: g + 8).
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = m[r];
#pragma unroll
        for (int j = 0; j < kNTiles; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
        mx = quad_max(mx);
        // A row that has seen no key yet keeps m = −inf; subtract 0 then, not −inf.
        const float base = mx == -INFINITY ? 0.0f : mx;
        const float alpha = exp2f(m[r] - base);  // 0 while m[r] = −inf
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < kNTiles; ++j)
#pragma unroll
          for (int e = 2 * r; e < 2 * r + 2; ++e) {
            s[j][e] = exp2f(s[j][e] - base);
            sum += s[j][e];
          }
        l[r] = fmaf(l[r], alpha, sum);
        m[r] = mx;
#pragma unroll
        for (int j = 0; j < kOTiles; ++j) o[j][2 * r] *= alpha, o[j][2 * r + 1] *= alpha;
      }
      // O += P·V, P from the score accumulators (k16 step ks2 = keys 16·ks2 … 16·ks2 + 15).
#pragma unroll
      for (int ks2 = 0; ks2 < kBlockN / 16; ++ks2) {
        std::uint32_t pa[4];
        acc_to_a(pa, s[2 * ks2], s[2 * ks2 + 1]);
#pragma unroll
        for (int dp = 0; dp < kOTiles / 2; ++dp) {
          std::uint32_t vb[4];
          load_b_kn<kPitch>(vb, &smem->v[stage][0][0], 16 * dp, 16 * ks2, lane);
          mma_pair(o[2 * dp], o[2 * dp + 1], pa, vb);
        }
      }
    }
    HONE_SYNC("attention_fwd_tile_done");  // the stage may be overwritten next iteration
  }
  ptx::cp_async_wait<0>();

  // O / l and lse. The four lanes of a row hold parts of its sum.
  std::uint16_t* out = head_base(p.out, b, packed, seq.start, h);
  float* lse = p.lse + (packed ? h * p.lse_head_stride + seq.start
                               : b * p.lse_batch_stride + h * p.lse_head_stride);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = quad_sum(l[r]);
    if (row[r] >= len) continue;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    std::uint16_t* dst = out + row[r] * p.out.row_stride;
#pragma unroll
    for (int j = 0; j < kOTiles; ++j) {
      const int col = 8 * j + 2 * t;
      if (col < p.head_dim)
        *reinterpret_cast<std::uint32_t*>(dst + col) = pack_bf16(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
    }
    if (t == 0) lse[row[r]] = sum > 0.0f ? (m[r] + log2f(sum)) * kLn2 : -INFINITY;
  }
}

template <int HD>
void launch_fwd(const AttentionParams& p, float scale, cudaStream_t stream) {
  using Cfg = FwdConfig<HD>;
  const std::size_t smem = sizeof(FwdShared<Cfg>);
  void (*kernel)(AttentionParams, float) = attention_fwd_kernel<Cfg>;
  allow_smem(kFwdOp, kernel, smem);
  const dim3 grid(static_cast<unsigned>((p.seqlen + Cfg::kBlockM - 1) / Cfg::kBlockM),
                  static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
  launch(kernel, grid, dim3(Cfg::kThreads), smem, stream, p, scale);
  check_launch(kFwdOp);
}

}  // namespace
}  // namespace attention_detail

void attention_fwd(const AttentionParams& p, cudaStream_t stream) {
  using namespace attention_detail;
  check_problem(kFwdOp, p);
  if (p.batch == 0 || p.seqlen == 0) return;
  const float scale = resolved_scale(p.scale, p.head_dim);
  if (head_dim_bucket(p.head_dim) == 64)
    launch_fwd<64>(p, scale, stream);
  else
    launch_fwd<128>(p, scale, stream);
}

HONE_KERNELS_END

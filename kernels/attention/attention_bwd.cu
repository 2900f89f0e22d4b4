// Flash-attention backward (the FlashAttention-2 algorithm, deterministic). P is recomputed from
// Q, K and the forward's lse; with c = scale·log2(e) and masked entries 0:
//   P_ij  = 2^(c·q_i·k_j − lse_i·log2 e)
//   D_i   = Σ_d dO_id O_id                                  (attention_dot_kernel)
//   dV_j  = Σ_i P_ij dO_i
//   dP_ij = dO_i · v_j
//   dS_ij = P_ij (dP_ij − D_i)
//   dK_j  = scale Σ_i dS_ij q_i                              (attention_dkdv_kernel)
//   dQ_i  = scale Σ_j dS_ij k_j                              (attention_dq_kernel)
// dK/dV: one block per (key tile, kv head, sequence); each warp owns 16 keys and computes the
// transposed products (Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, keys as rows), so dV += Pᵀ·dO and dK += dSᵀ·Q
// accumulate in its registers over every query tile of every query head of the group, in a
// fixed order: the GQA sum needs no atomics. dQ: one block per (query tile, head), like the
// forward, summing over key tiles in order. The dQ pass recomputes S and dP (two more products
// than a single pass with atomic dQ updates) in exchange for bitwise-reproducible gradients.
#include <algorithm>

#include "kernels/attention/attention_common.cuh"

HONE_KERNELS_BEGIN
namespace attention_detail {
namespace {

constexpr const char* kBwdOp = "attention_bwd";

// D = rowsum(dO ∘ O) into the workspace at ((b·H + h)·seqlen + t): one warp per row.
__global__ void __launch_bounds__(256) attention_dot_kernel(AttentionBwdParams p, float* d_out) {
  const AttentionParams& f = p.fwd;
  const int b = blockIdx.z, h = blockIdx.y;
  const int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
  const bool packed = f.cu_seqlens != nullptr;
  const SeqRange seq = seq_range(f.cu_seqlens, b, f.seqlen);
  if (row >= seq.len) return;
  const std::uint16_t* o = head_base(f.out, b, packed, seq.start, h) + row * f.out.row_stride;
  const std::uint16_t* g = head_base(p.dout, b, packed, seq.start, h) + row * p.dout.row_stride;
  float acc = 0.0f;
  for (int d = lane; d < f.head_dim; d += 32) acc = fmaf(bf16_float(o[d]), bf16_float(g[d]), acc);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) d_out[(static_cast<std::int64_t>(b) * f.heads + h) * f.seqlen + row] = acc;
}

// dK/dV: 4 warps × 16 keys; query tiles of 64 (hd 64) or 32 (hd 128, to bound registers).
template <int HD>
struct DkdvConfig {
  static constexpr int kHd = HD;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockN = 16 * kWarps;
  static constexpr int kBlockM = HD <= 64 ? 64 : 32;
  static constexpr int kPitch = HD + kPad;
};

template <class Cfg>
struct DkdvShared {
  alignas(16) std::uint16_t k[Cfg::kBlockN][Cfg::kPitch];
  alignas(16) std::uint16_t v[Cfg::kBlockN][Cfg::kPitch];
  alignas(16) std::uint16_t q[2][Cfg::kBlockM][Cfg::kPitch];
  alignas(16) std::uint16_t dout[2][Cfg::kBlockM][Cfg::kPitch];
  float lse[2][Cfg::kBlockM];  // lse · log2(e), 0 past the end
  float d[2][Cfg::kBlockM];
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads)
    attention_dkdv_kernel(AttentionBwdParams p, float scale, const float* dsum) {
  constexpr int kHd = Cfg::kHd, kBlockM = Cfg::kBlockM, kPitch = Cfg::kPitch;
  constexpr int kSteps = kHd / 16;      // k16 steps over the head dim
  constexpr int kQTiles = kBlockM / 8;  // n8 tiles of Sᵀ (queries)
  constexpr int kOTiles = kHd / 8;      // n8 tiles of dK, dV
  HONE_DYNAMIC_SMEM(DkdvShared<Cfg>, smem);
  const AttentionParams& f = p.fwd;

  const int b = blockIdx.z, kv_head = blockIdx.y;
  const bool packed = f.cu_seqlens != nullptr;
  const SeqRange seq = seq_range(f.cu_seqlens, b, f.seqlen);
  const int len = seq.len, n0 = blockIdx.x * Cfg::kBlockN;
  if (n0 >= len) return;
  const int group = f.heads / f.kv_heads;

  // Queries [q_lo, q_hi) see some key of the block.
  const int n_last = imin(len, n0 + Cfg::kBlockN) - 1;
  const int q_lo = f.causal ? n0 : 0;
  const int q_hi = f.window > 0 ? imin(len, n_last + f.window) : len;
  const int qt_begin = q_lo / kBlockM, qt_count = (q_hi + kBlockM - 1) / kBlockM - qt_begin;
  const int steps = group * qt_count;  // (query head, query tile) pairs, head-major

  load_rows<Cfg::kBlockN, kHd, kPitch, Cfg::kThreads>(
      &smem->k[0][0], head_base(f.k, b, packed, seq.start, kv_head), f.k.row_stride, n0, len,
      f.head_dim);
  load_rows<Cfg::kBlockN, kHd, kPitch, Cfg::kThreads>(
      &smem->v[0][0], head_base(f.v, b, packed, seq.start, kv_head), f.v.row_stride, n0, len,
      f.head_dim);
  auto load_step = [&](int step, int stage) {
    const int h = kv_head * group + step / qt_count;
    const int i0 = (qt_begin + step % qt_count) * kBlockM;
    load_rows<kBlockM, kHd, kPitch, Cfg::kThreads>(&smem->q[stage][0][0],
                                                   head_base(f.q, b, packed, seq.start, h),
                                                   f.q.row_stride, i0, len, f.head_dim);
    load_rows<kBlockM, kHd, kPitch, Cfg::kThreads>(&smem->dout[stage][0][0],
                                                   head_base(p.dout, b, packed, seq.start, h),
                                                   p.dout.row_stride, i0, len, f.head_dim);
    // lse and D: plain loads, visible after the barrier that precedes their use.
    const float* lse = f.lse + (packed ? h * f.lse_head_stride + seq.start
                                       : b * f.lse_batch_stride + h * f.lse_head_stride);
    const float* dd = dsum + (static_cast<std::int64_t>(b) * f.heads + h) * f.seqlen;
    for (int i = threadIdx.x; i < kBlockM; i += Cfg::kThreads) {
      const bool in = i0 + i < len;
      smem->lse[stage][i] = in ? lse[i0 + i] * kLog2e : 0.0f;
      smem->d[stage][i] = in ? dd[i0 + i] : 0.0f;
    }
  };
  load_step(0, 0);
  ptx::cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int w_key0 = n0 + 16 * warp;
  const int key[2] = {w_key0 + g, w_key0 + g + 8};
  const int w_key_last = imin(w_key0 + 15, len - 1);
  const float c = scale * kLog2e;

  float dk[kOTiles][4], dv[kOTiles][4];
#pragma unroll
  for (int j = 0; j < kOTiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[j][e] = 0.0f, dv[j][e] = 0.0f;

  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1;
    if (step + 1 < steps) load_step(step + 1, stage ^ 1);
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();
    HONE_SYNC("attention_dkdv_tile_ready");
    const int i0 = (qt_begin + step % qt_count) * kBlockM;
    const int i_last = imin(i0 + kBlockM, len) - 1;
    // Warp-uniform: keys past the end, or no query of the tile sees any key of the warp.
    const bool idle = w_key0 >= len || (f.causal && i_last < w_key0) ||
                      (f.window > 0 && i0 - w_key_last >= f.window);
    if (!idle) {
      const std::uint16_t* ks = &smem->k[0][0];
      const std::uint16_t* vs = &smem->v[0][0];
      const std::uint16_t* qs = &smem->q[stage][0][0];
      const std::uint16_t* dos = &smem->dout[stage][0][0];
      // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (16 keys × kBlockM queries per warp).
      float s[kQTiles][4], dp[kQTiles][4];
#pragma unroll
      for (int j = 0; j < kQTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] = 0.0f, dp[j][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kSteps; ++kk) {
        std::uint32_t ka[4], va[4];
        load_a<kPitch>(ka, ks, 16 * warp, 16 * kk, lane);
        load_a<kPitch>(va, vs, 16 * warp, 16 * kk, lane);
#pragma unroll
        for (int np = 0; np < kQTiles / 2; ++np) {
          std::uint32_t qb[4], ob[4];
          load_b_nk<kPitch>(qb, qs, 16 * np, 16 * kk, lane);
          mma_pair(s[2 * np], s[2 * np + 1], ka, qb);
          load_b_nk<kPitch>(ob, dos, 16 * np, 16 * kk, lane);
          mma_pair(dp[2 * np], dp[2 * np + 1], va, ob);
        }
      }
      // Pᵀ and dSᵀ in place: element e of n8 tile j is key key[e >> 1], query i0 + 8j + 2t + (e & 1).
#pragma unroll
      for (int j = 0; j < kQTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = 8 * j + 2 * t + (e & 1);
          const float pv = visible(i0 + qi, key[e >> 1], len, f.causal, f.window) && i0 + qi < len
                               ? exp2f(fmaf(s[j][e], c, -smem->lse[stage][qi]))
                               : 0.0f;
          s[j][e] = pv;
          dp[j][e] = pv * (dp[j][e] - smem->d[stage][qi]);
        }
      // dV += Pᵀ·dO, dK += dSᵀ·Q (k16 step kq = queries 16·kq … 16·kq + 15).
#pragma unroll
      for (int kq = 0; kq < kBlockM / 16; ++kq) {
        std::uint32_t pa[4], dsa[4];
        acc_to_a(pa, s[2 * kq], s[2 * kq + 1]);
        acc_to_a(dsa, dp[2 * kq], dp[2 * kq + 1]);
#pragma unroll
        for (int dd = 0; dd < kOTiles / 2; ++dd) {
          std::uint32_t ob[4], qb[4];
          load_b_kn<kPitch>(ob, dos, 16 * dd, 16 * kq, lane);
          mma_pair(dv[2 * dd], dv[2 * dd + 1], pa, ob);
          load_b_kn<kPitch>(qb, qs, 16 * dd, 16 * kq, lane);
          mma_pair(dk[2 * dd], dk[2 * dd + 1], dsa, qb);
        }
      }
    }
    HONE_SYNC("attention_dkdv_tile_done");
  }
  ptx::cp_async_wait<0>();

  std::uint16_t* dk_out = head_base(p.dk, b, packed, seq.start, kv_head);
  std::uint16_t* dv_out = head_base(p.dv, b, packed, seq.start, kv_head);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (key[r] >= len) continue;
#pragma unroll
    for (int j = 0; j < kOTiles; ++j) {
      const int col = 8 * j + 2 * t;
      if (col >= f.head_dim) continue;
      *reinterpret_cast<std::uint32_t*>(dk_out + key[r] * p.dk.row_stride + col) =
          pack_bf16(dk[j][2 * r] * scale, dk[j][2 * r + 1] * scale);
      *reinterpret_cast<std::uint32_t*>(dv_out + key[r] * p.dv.row_stride + col) =
          pack_bf16(dv[j][2 * r], dv[j][2 * r + 1]);
    }
  }
}

// dQ: 4 warps × 16 queries; key tiles of 64 (hd 64) or 32 (hd 128).
template <int HD>
struct DqConfig {
  static constexpr int kHd = HD;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = HD <= 64 ? 64 : 32;
  static constexpr int kPitch = HD + kPad;
};

template <class Cfg>
struct DqShared {
  alignas(16) std::uint16_t q[Cfg::kBlockM][Cfg::kPitch];
  alignas(16) std::uint16_t dout[Cfg::kBlockM][Cfg::kPitch];
  alignas(16) std::uint16_t k[2][Cfg::kBlockN][Cfg::kPitch];
  alignas(16) std::uint16_t v[2][Cfg::kBlockN][Cfg::kPitch];
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads)
    attention_dq_kernel(AttentionBwdParams p, float scale, const float* dsum) {
  constexpr int kHd = Cfg::kHd, kBlockN = Cfg::kBlockN, kPitch = Cfg::kPitch;
  constexpr int kSteps = kHd / 16;
  constexpr int kNTiles = kBlockN / 8;
  constexpr int kOTiles = kHd / 8;
  HONE_DYNAMIC_SMEM(DqShared<Cfg>, smem);
  const AttentionParams& f = p.fwd;

  const int b = blockIdx.z, h = blockIdx.y;
  const int m_block = f.causal ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : blockIdx.x;
  const bool packed = f.cu_seqlens != nullptr;
  const SeqRange seq = seq_range(f.cu_seqlens, b, f.seqlen);
  const int len = seq.len, m0 = m_block * Cfg::kBlockM;
  if (m0 >= len) return;
  const int kv_head = h / (f.heads / f.kv_heads);
  const std::uint16_t* k = head_base(f.k, b, packed, seq.start, kv_head);
  const std::uint16_t* v = head_base(f.v, b, packed, seq.start, kv_head);

  const int last_row = imin(len, m0 + Cfg::kBlockM) - 1;
  const int n_lo = f.window > 0 ? imax(0, m0 - f.window + 1) : 0;
  const int n_hi = f.causal ? last_row + 1 : len;
  const int t_begin = n_lo / kBlockN, t_end = (n_hi + kBlockN - 1) / kBlockN;

  load_rows<Cfg::kBlockM, kHd, kPitch, Cfg::kThreads>(
      &smem->q[0][0], head_base(f.q, b, packed, seq.start, h), f.q.row_stride, m0, len, f.head_dim);
  load_rows<Cfg::kBlockM, kHd, kPitch, Cfg::kThreads>(
      &smem->dout[0][0], head_base(p.dout, b, packed, seq.start, h), p.dout.row_stride, m0, len,
      f.head_dim);
  auto load_kv = [&](int tile, int stage) {
    load_rows<kBlockN, kHd, kPitch, Cfg::kThreads>(&smem->k[stage][0][0], k, f.k.row_stride,
                                                   tile * kBlockN, len, f.head_dim);
    load_rows<kBlockN, kHd, kPitch, Cfg::kThreads>(&smem->v[stage][0][0], v, f.v.row_stride,
                                                   tile * kBlockN, len, f.head_dim);
  };
  load_kv(t_begin, 0);
  ptx::cp_async_commit();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int w_row0 = m0 + 16 * warp;
  const int row[2] = {w_row0 + g, w_row0 + g + 8};
  const float c = scale * kLog2e;
  const float* lse = f.lse + (packed ? h * f.lse_head_stride + seq.start
                                     : b * f.lse_batch_stride + h * f.lse_head_stride);
  const float* dd = dsum + (static_cast<std::int64_t>(b) * f.heads + h) * f.seqlen;
  float row_lse[2], row_d[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_lse[r] = row[r] < len ? lse[row[r]] * kLog2e : 0.0f;
    row_d[r] = row[r] < len ? dd[row[r]] : 0.0f;
  }

  std::uint32_t qf[kSteps][4], of[kSteps][4];
  float dq[kOTiles][4];
#pragma unroll
  for (int j = 0; j < kOTiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dq[j][e] = 0.0f;

  for (int tile = t_begin; tile < t_end; ++tile) {
    const int stage = (tile - t_begin) & 1;
    if (tile + 1 < t_end) load_kv(tile + 1, stage ^ 1);
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();
    HONE_SYNC("attention_dq_tile_ready");
    if (tile == t_begin) {
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        load_a<kPitch>(qf[s], &smem->q[0][0], 16 * warp, 16 * s, lane);
        load_a<kPitch>(of[s], &smem->dout[0][0], 16 * warp, 16 * s, lane);
      }
    }
    const int n0 = tile * kBlockN;
    const int w_last = imin(w_row0 + 15, len - 1);
    const bool idle = w_row0 >= len || (f.causal && w_last < n0) ||
                      (f.window > 0 && w_row0 - (n0 + kBlockN - 1) >= f.window);
    if (!idle) {
      const std::uint16_t* ks = &smem->k[stage][0][0];
      const std::uint16_t* vs = &smem->v[stage][0][0];
      float s[kNTiles][4], dp[kNTiles][4];
#pragma unroll
      for (int j = 0; j < kNTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] = 0.0f, dp[j][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kSteps; ++kk)
#pragma unroll
        for (int np = 0; np < kNTiles / 2; ++np) {
          std::uint32_t kb[4], vb[4];
          load_b_nk<kPitch>(kb, ks, 16 * np, 16 * kk, lane);
          mma_pair(s[2 * np], s[2 * np + 1], qf[kk], kb);
          load_b_nk<kPitch>(vb, vs, 16 * np, 16 * kk, lane);
          mma_pair(dp[2 * np], dp[2 * np + 1], of[kk], vb);
        }
      // dS in place of dP.
#pragma unroll
      for (int j = 0; j < kNTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e >> 1;
          const float pv = visible(row[r], n0 + 8 * j + 2 * t + (e & 1), len, f.causal, f.window)
                               ? exp2f(fmaf(s[j][e], c, -row_lse[r]))
                               : 0.0f;
          dp[j][e] = pv * (dp[j][e] - row_d[r]);
        }
      // dQ += dS·K.
#pragma unroll
      for (int kn = 0; kn < kBlockN / 16; ++kn) {
        std::uint32_t dsa[4];
        acc_to_a(dsa, dp[2 * kn], dp[2 * kn + 1]);
#pragma unroll
        for (int d2 = 0; d2 < kOTiles / 2; ++d2) {
          std::uint32_t kb[4];
          load_b_kn<kPitch>(kb, ks, 16 * d2, 16 * kn, lane);
          mma_pair(dq[2 * d2], dq[2 * d2 + 1], dsa, kb);
        }
      }
    }
    HONE_SYNC("attention_dq_tile_done");
  }
  ptx::cp_async_wait<0>();

  std::uint16_t* dq_out = head_base(p.dq, b, packed, seq.start, h);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= len) continue;
#pragma unroll
    for (int j = 0; j < kOTiles; ++j) {
      const int col = 8 * j + 2 * t;
      if (col < f.head_dim)
        *reinterpret_cast<std::uint32_t*>(dq_out + row[r] * p.dq.row_stride + col) =
            pack_bf16(dq[j][2 * r] * scale, dq[j][2 * r + 1] * scale);
    }
  }
}

template <int HD>
void launch_bwd(const AttentionBwdParams& p, float scale, float* dsum, cudaStream_t stream) {
  const AttentionParams& f = p.fwd;
  const unsigned heads = static_cast<unsigned>(f.heads), batch = static_cast<unsigned>(f.batch);
  launch(attention_dot_kernel, dim3(static_cast<unsigned>((f.seqlen + 7) / 8), heads, batch),
         dim3(256), 0, stream, p, dsum);
  check_launch(kBwdOp);

  using Kv = DkdvConfig<HD>;
  void (*dkdv)(AttentionBwdParams, float, const float*) = attention_dkdv_kernel<Kv>;
  allow_smem(kBwdOp, dkdv, sizeof(DkdvShared<Kv>));
  launch(dkdv,
         dim3(static_cast<unsigned>((f.seqlen + Kv::kBlockN - 1) / Kv::kBlockN),
              static_cast<unsigned>(f.kv_heads), batch),
         dim3(Kv::kThreads), sizeof(DkdvShared<Kv>), stream, p, scale,
         static_cast<const float*>(dsum));
  check_launch(kBwdOp);

  using Q = DqConfig<HD>;
  void (*dq)(AttentionBwdParams, float, const float*) = attention_dq_kernel<Q>;
  allow_smem(kBwdOp, dq, sizeof(DqShared<Q>));
  launch(dq, dim3(static_cast<unsigned>((f.seqlen + Q::kBlockM - 1) / Q::kBlockM), heads, batch),
         dim3(Q::kThreads), sizeof(DqShared<Q>), stream, p, scale, static_cast<const float*>(dsum));
  check_launch(kBwdOp);
}

}  // namespace
}  // namespace attention_detail

std::size_t attention_bwd_workspace_bytes(const AttentionParams& p) {
  if (p.batch <= 0 || p.seqlen <= 0 || p.heads <= 0) return 0;
  return static_cast<std::size_t>(p.batch) * p.heads * p.seqlen * sizeof(float);
}

void attention_bwd(const AttentionBwdParams& p, cudaStream_t stream) {
  using namespace attention_detail;
  const AttentionParams& f = p.fwd;
  check_problem(kBwdOp, f);
  if (f.batch == 0 || f.seqlen == 0) return;
  const bool packed = f.cu_seqlens != nullptr;
  check_tensor(kBwdOp, "dout", p.dout, packed);
  check_tensor(kBwdOp, "dq", p.dq, packed);
  check_tensor(kBwdOp, "dk", p.dk, packed);
  check_tensor(kBwdOp, "dv", p.dv, packed);
  const std::size_t need = attention_bwd_workspace_bytes(f);
  HONE_CHECK(p.workspace != nullptr && aligned16(p.workspace), kBwdOp, "workspace = ",
             p.workspace, " is null or not 16-byte aligned; ", need, " bytes are needed");
  HONE_CHECK(p.workspace_bytes >= need, kBwdOp, "workspace_bytes = ", p.workspace_bytes,
             " is less than the ", need, " bytes needed");
  const float scale = resolved_scale(f.scale, f.head_dim);
  float* dsum = static_cast<float*>(p.workspace);
  if (head_dim_bucket(f.head_dim) == 64)
    launch_bwd<64>(p, scale, dsum, stream);
  else
    launch_bwd<128>(p, scale, dsum, stream);
}

HONE_KERNELS_END

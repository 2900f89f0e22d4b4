// RMSNorm / LayerNorm backward: dx per row (plus the residual stream's gradient), and dw/db
// reduced deterministically: per-slot partial rows in a workspace, then fixed-order sums.
#include "kernels/norm/norm_common.cuh"

HONE_KERNELS_BEGIN

namespace {

using namespace norm_detail;

struct BwdArgs {
  const unsigned short* dy;
  const unsigned short* x;
  const unsigned short* w;          // null when dx is
  const float* mean;                // layer only
  const float* rstd;
  const unsigned short* dresidual;  // or null
  unsigned short* dx;               // or null
  float* ws_w;                      // (slots, dim) partial dw, or null
  float* ws_b;                      // (slots, dim) partial db, or null
  std::int64_t rows, dim, slots;
};

// x̂ = (x − μ) · rstd (μ = 0 for rms), g = dy · w. Then
//   rms:   dx = rstd · (g − x̂ · mean(g · x̂))               (+ dresidual)
//   layer: dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))     (+ dresidual)
//   dw += Σ_rows dy · x̂,  db += Σ_rows dy
// (for rms, x̂ · mean(g · x̂) = x · rstd² · mean(g · x): the form of engine/cpu/norm.cpp.)
// Row slot s = blockIdx.x · blockDim.y + threadIdx.y takes rows s, s + slots, s + 2·slots, ...
// in order, summing its dw/db contributions in registers, and writes them to workspace row s.
template <bool kLayer, int kVec, int kPer>
__global__ void __launch_bounds__(kMaxThreadsPerRow) norm_bwd_kernel(BwdArgs a) {
  HONE_DYNAMIC_SMEM(RowSumShared, sh);
  const int tx = threadIdx.x;
  const std::int64_t first_slot = static_cast<std::int64_t>(blockIdx.x) * blockDim.y;
  const std::int64_t slot = first_slot + threadIdx.y;
  const std::int64_t vectors = a.dim / kVec;
  const float inv_dim = 1.0f / static_cast<float>(a.dim);

  float acc_w[kPer][kVec], acc_b[kPer][kVec];
#pragma unroll
  for (int k = 0; k < kPer; ++k)
#pragma unroll
    for (int j = 0; j < kVec; ++j) acc_w[k][j] = acc_b[k][j] = 0.0f;

  // Every thread of the block runs the rows of the block's first slot (which has the most), so
  // all reach the same barriers; `live` marks the threads with a row of their own.
  int buf = 0;
  for (std::int64_t r0 = first_slot; r0 < a.rows; r0 += a.slots, buf ^= 1) {
    const std::int64_t row = r0 + threadIdx.y;
    const bool live = slot < a.slots && row < a.rows;
    const std::int64_t base = row * a.dim;
    Packed<kVec> dy_raw[kPer], x_raw[kPer];  // the row as loaded: half the registers of fp32
    bool has[kPer];
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const std::int64_t vi = tx + static_cast<std::int64_t>(k) * blockDim.x;
      has[k] = live && vi < vectors;
      if (has[k]) {
        dy_raw[k] = load_packed<kVec>(a.dy + base + vi * kVec);
        x_raw[k] = load_packed<kVec>(a.x + base + vi * kVec);
      }
    }
    const float mu = kLayer && live ? a.mean[row] : 0.0f;
    const float rs = live ? a.rstd[row] : 0.0f;

    if (a.dx) {  // the same for the whole grid
      constexpr int kSums = kLayer ? 2 : 1;
      float s[kSums];  // Σ g·x̂ (and Σ g)
#pragma unroll
      for (int i = 0; i < kSums; ++i) s[i] = 0.0f;
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        if (!has[k]) continue;
        const std::int64_t vi = tx + static_cast<std::int64_t>(k) * blockDim.x;
        float dy[kVec], x[kVec], w[kVec];
        unpack<kVec>(dy_raw[k], dy);
        unpack<kVec>(x_raw[k], x);
        load_bf16<kVec>(a.w + vi * kVec, w);
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          const float g = dy[j] * w[j];
          s[0] += g * ((x[j] - mu) * rs);
          if constexpr (kLayer) s[kSums - 1] += g;
        }
      }
      row_sum(s, sh, buf);
      const float mgx = s[0] * inv_dim;
      const float mg = kLayer ? s[kSums - 1] * inv_dim : 0.0f;
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        if (!has[k]) continue;
        const std::int64_t vi = tx + static_cast<std::int64_t>(k) * blockDim.x;
        float dy[kVec], x[kVec], w[kVec], extra[kVec], out[kVec];
        unpack<kVec>(dy_raw[k], dy);
        unpack<kVec>(x_raw[k], x);
        load_bf16<kVec>(a.w + vi * kVec, w);
        if (a.dresidual)
          load_bf16<kVec>(a.dresidual + base + vi * kVec, extra);
        else
#pragma unroll
          for (int j = 0; j < kVec; ++j) extra[j] = 0.0f;
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          const float xhat = (x[j] - mu) * rs;
          out[j] = rs * (dy[j] * w[j] - mg - xhat * mgx) + extra[j];
        }
        store_bf16<kVec>(a.dx + base + vi * kVec, out);
      }
    }
    if (a.ws_w || a.ws_b) {
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        if (!has[k]) continue;
        float dy[kVec], x[kVec];
        unpack<kVec>(dy_raw[k], dy);
        unpack<kVec>(x_raw[k], x);
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          acc_w[k][j] += dy[j] * ((x[j] - mu) * rs);
          if constexpr (kLayer) acc_b[k][j] += dy[j];  // rms keeps no db registers
        }
      }
    }
  }

  if (slot >= a.slots) return;  // after the last barrier
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const std::int64_t vi = tx + static_cast<std::int64_t>(k) * blockDim.x;
    if (vi >= vectors) continue;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      const std::int64_t e = slot * a.dim + vi * kVec + j;
      if (a.ws_w) a.ws_w[e] = acc_w[k][j];
      if constexpr (kLayer)
        if (a.ws_b) a.ws_b[e] = acc_b[k][j];
    }
  }
}

constexpr int kSumCols = 32;                // columns per block: one coalesced 128-byte read
constexpr int kSumParts = 8;                // contiguous row ranges per column, summed in order
constexpr std::int64_t kSumGroupRows = 64;  // rows per block in the first of two passes

struct SumShared {
  float part[kSumParts][kSumCols];
};

// One pass of the slot reduction, for dw (blockIdx.z = 0) and db (1), over an fp32 (rows, dim)
// array `in`. Block (x, g) takes rows [g·group, (g+1)·group) of columns 32x to 32x + 31: thread
// row ty sums a contiguous eighth of them in order, then thread row 0 adds the eight sums in
// order. The total goes to mid[g, j] (first pass, when there are many slots: many blocks read
// at once) or is added to the gradient (last pass, one group).
struct SumPass {
  const float* in[2];  // (rows, dim) each, or null: that gradient is not wanted
  float* mid[2];       // (groups, dim) each, or null on the last pass
  void* grad[2];       // dw, db (last pass)
  bool bf16;
  std::int64_t rows, group, dim;
};

__global__ void norm_grad_sum_kernel(SumPass a) {
  HONE_DYNAMIC_SMEM(SumShared, sh);
  const int z = blockIdx.z;
  const float* in = a.in[z];
  if (in == nullptr) return;  // the whole block: no barrier is left waiting
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * kSumCols + threadIdx.x;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * a.group;
  const std::int64_t r1 = r0 + a.group < a.rows ? r0 + a.group : a.rows;
  const std::int64_t chunk = (r1 - r0 + kSumParts - 1) / kSumParts;
  const std::int64_t s0 = r0 + threadIdx.y * chunk;
  const std::int64_t s1 = s0 + chunk < r1 ? s0 + chunk : r1;
  float s = 0.0f;
  if (j < a.dim)
    for (std::int64_t k = s0; k < s1; ++k) s += in[k * a.dim + j];
  sh->part[threadIdx.y][threadIdx.x] = s;
  HONE_SYNC("norm_grad_partials");
  if (threadIdx.y != 0 || j >= a.dim) return;
  float total = 0.0f;
#pragma unroll
  for (int i = 0; i < kSumParts; ++i) total += sh->part[i][threadIdx.x];
  if (a.mid[z]) {
    a.mid[z][blockIdx.y * a.dim + j] = total;
  } else if (a.bf16) {
    unsigned short* o = static_cast<unsigned short*>(a.grad[z]) + j;
    *o = float_to_bf16(bf16_to_float(*o) + total);
  } else {
    static_cast<float*>(a.grad[z])[j] += total;
  }
}

// Groups of the first pass: none when one pass reads few enough rows.
std::int64_t sum_groups(std::int64_t slots) {
  return slots > kSumGroupRows ? (slots + kSumGroupRows - 1) / kSumGroupRows : 0;
}

constexpr const char* kOp = "norm_bwd";

void check(const NormBwdParams& p) {
  HONE_CHECK(p.kind == NormKind::rms || p.kind == NormKind::layer, kOp, "kind ",
             static_cast<int>(p.kind), " is not rms or layer");
  HONE_CHECK(p.grad_type == NormGradType::f32 || p.grad_type == NormGradType::bf16, kOp,
             "grad_type ", static_cast<int>(p.grad_type), " is not f32 or bf16");
  HONE_CHECK(p.rows >= 0, kOp, "rows = ", p.rows, " is negative");
  HONE_CHECK(p.dim >= 1 && p.dim <= kNormMaxDim, kOp, "dim = ", p.dim, "; expected 1 to ",
             kNormMaxDim);
  HONE_CHECK(p.partials >= 0, kOp, "partials = ", p.partials, " is negative");
  HONE_CHECK(p.kind == NormKind::layer || p.db == nullptr, kOp,
             "'db' is set for kind rms (a bias belongs to layer)");
  HONE_CHECK(p.kind == NormKind::layer || p.mean == nullptr, kOp,
             "'mean' is set for kind rms (only layer has a mean)");
}

}  // namespace

std::int64_t norm_bwd_slots(const NormBwdParams& p) {
  check(p);
  std::int64_t want = p.partials;
  if (want == 0) {
    RowConfig c;  // the layout of aligned rows: the same count whatever the pointers
    if (!row_config(p.dim, p.dim % 8 == 0, &c)) c.tpr = kMaxThreadsPerRow;
    want = kNormSlotThreads / c.tpr;
  }
  return p.rows < want ? p.rows : want;
}

std::size_t norm_bwd_workspace_bytes(const NormBwdParams& p) {
  const std::int64_t slots = norm_bwd_slots(p);  // validates p
  const int grads = (p.dw ? 1 : 0) + (p.db ? 1 : 0);
  return static_cast<std::size_t>(grads) * static_cast<std::size_t>(slots + sum_groups(slots)) *
         static_cast<std::size_t>(p.dim) * sizeof(float);
}

void norm_bwd(const NormBwdParams& p, cudaStream_t stream) {
  check(p);
  if (p.rows == 0 || (!p.dx && !p.dw && !p.db)) return;
  const bool layer = p.kind == NormKind::layer;
  HONE_CHECK(p.dy != nullptr, kOp, "'dy' is null");
  HONE_CHECK(p.x != nullptr, kOp, "'x' is null");
  HONE_CHECK(p.rstd != nullptr, kOp, "'rstd' is null");
  HONE_CHECK(!layer || p.mean != nullptr, kOp, "'mean' is null (kind layer needs it)");
  HONE_CHECK(!p.dx || p.w != nullptr, kOp, "'w' is null (dx needs it)");
  HONE_CHECK(p.dx || !p.dresidual, kOp, "'dresidual' is set but 'dx' is null");
  const bool reduce = p.dw || p.db;
  HONE_CHECK(!reduce || p.workspace != nullptr, kOp,
             "'workspace' is null; dw/db need norm_bwd_workspace_bytes(p) = ",
             norm_bwd_workspace_bytes(p), " bytes");

  const bool vec8 = p.dim % 8 == 0 && aligned16(p.dy) && aligned16(p.x) && aligned16(p.w) &&
                    aligned16(p.dresidual) && aligned16(p.dx);
  RowConfig c;
  HONE_CHECK(row_config(p.dim, vec8, &c), kOp, "dim = ", p.dim,
             " does not fit the row kernels (at most 8192 unless dim % 8 == 0 and the row "
             "pointers are 16-byte aligned)");
  // Without dw/db every row is a slot of its own; with them, `slots` partial rows.
  const std::int64_t slots = reduce ? norm_bwd_slots(p) : p.rows;
  // Workspace per gradient: slots rows of partial sums, then the first pass's group sums.
  const std::int64_t groups = sum_groups(slots);
  float* ws = static_cast<float*>(p.workspace);
  float* ws_w = p.dw ? ws : nullptr;
  float* ws_b = p.db ? ws + (p.dw ? (slots + groups) * p.dim : 0) : nullptr;
  const BwdArgs a{static_cast<const unsigned short*>(p.dy),
                  static_cast<const unsigned short*>(p.x),
                  static_cast<const unsigned short*>(p.w),
                  p.mean,
                  p.rstd,
                  static_cast<const unsigned short*>(p.dresidual),
                  static_cast<unsigned short*>(p.dx),
                  ws_w,
                  ws_b,
                  p.rows,
                  p.dim,
                  slots};
  const std::int64_t blocks = (slots + c.rpb - 1) / c.rpb;
  HONE_CHECK(blocks <= 0x7fffffff, kOp, "rows = ", p.rows, " needs more than 2³¹ blocks");
  dispatch(layer, c, [&](auto tag) {
    using T = decltype(tag);
    launch(norm_bwd_kernel<T::kLayer, T::kVec, T::kPer>, dim3(static_cast<unsigned>(blocks)),
           dim3(c.tpr, c.rpb), sizeof(RowSumShared), stream, a);
  });
  check_launch(kOp);
  if (!reduce) return;
  const unsigned col_blocks = static_cast<unsigned>((p.dim + kSumCols - 1) / kSumCols);
  const unsigned grads = layer ? 2 : 1;
  SumPass s{{ws_w, ws_b}, {nullptr, nullptr}, {p.dw, p.db}, p.grad_type == NormGradType::bf16,
            slots, slots, p.dim};
  if (groups > 0) {
    s.mid[0] = ws_w ? ws_w + slots * p.dim : nullptr;
    s.mid[1] = ws_b ? ws_b + slots * p.dim : nullptr;
    s.group = kSumGroupRows;
    launch(norm_grad_sum_kernel, dim3(col_blocks, static_cast<unsigned>(groups), grads),
           dim3(kSumCols, kSumParts), sizeof(SumShared), stream, s);
    check_launch(kOp);
    s.in[0] = s.mid[0];
    s.in[1] = s.mid[1];
    s.mid[0] = s.mid[1] = nullptr;
    s.rows = s.group = groups;
  }
  launch(norm_grad_sum_kernel, dim3(col_blocks, 1, grads), dim3(kSumCols, kSumParts),
         sizeof(SumShared), stream, s);
  check_launch(kOp);
}

HONE_KERNELS_END

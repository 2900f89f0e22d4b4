// Decode attention: a few new query tokens per sequence against its KV cache, split over the
// cache length so that a batch of one still fills the device (split-KV), then combined.
//
// One block per (split, row chunk, kv head, sequence). Its rows are the query tokens × the
// query heads of one kv head (GQA: the group shares every K/V row it loads), up to 16 per
// chunk. Each of the 4 warps walks every 4th key of the split; a lane holds hd/32 consecutive
// elements of q, k, v and o, and a score is a warp-wide sum of the lanes' partial dots. Online
// softmax in base 2 per (warp, row); the warps' states merge through shared memory in warp
// order, and the splits' (O/l, lse) in split order (attention_decode_combine_kernel):
//   lse = log2 Σ_s 2^lse_s,   O = Σ_s 2^(lse_s − lse) O_s.
// Memory-bound: every K/V element of the cache is read once per kv head.
#include <algorithm>
#include <climits>

#include "kernels/attention/attention_common.cuh"

HONE_KERNELS_BEGIN
namespace attention_detail {
namespace {

constexpr const char* kDecodeOp = "attention_decode";
constexpr int kDecodeWarps = 4;
constexpr int kDecodeThreads = 32 * kDecodeWarps;
constexpr int kDecodeRows = 16;  // rows (query token × head of the group) per block
constexpr int kMaxSplits = 128;

template <int HD>
struct DecodeShared {
  float q[kDecodeRows][HD];  // q · scale · log2(e)
  float m[kDecodeWarps][kDecodeRows];
  float l[kDecodeWarps][kDecodeRows];
  float o[kDecodeWarps][kDecodeRows][HD];
};

struct DecodeArgs {
  AttentionDecodeParams p;
  int splits;
  int keys_per_split;
  int row_chunks;
  float c;          // scale · log2(e)
  float* partial;   // (splits, B, H, Tq, hd) O/l, then (splits, B, H, Tq) lse in base 2
};

template <int HD>
__global__ void __launch_bounds__(kDecodeThreads) attention_decode_kernel(DecodeArgs a) {
  constexpr int kE = HD / 32;  // elements per lane
  HONE_DYNAMIC_SMEM(DecodeShared<HD>, smem);
  const AttentionDecodeParams& p = a.p;
  const int split = blockIdx.x / a.row_chunks, chunk = blockIdx.x % a.row_chunks;
  const int kv_head = blockIdx.y, b = blockIdx.z;
  const int group = p.heads / p.kv_heads;
  const int rows_total = p.q_len * group;
  const int row0 = chunk * kDecodeRows;
  const int rows = imin(kDecodeRows, rows_total - row0);
  const int cache_len = p.cache_seqlens ? p.cache_seqlens[b] : p.kv_capacity;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Row r of the block: query token (row0 + r) / group of head kv_head·group + (row0 + r) % group.
  auto token_of = [&](int r) { return (row0 + r) / group; };
  auto head_of = [&](int r) { return kv_head * group + (row0 + r) % group; };

  for (int i = threadIdx.x; i < kDecodeRows * HD; i += kDecodeThreads) {
    const int r = i / HD, d = i % HD;
    float x = 0.0f;
    if (r < rows && d < p.head_dim) {
      const std::uint16_t* q = static_cast<const std::uint16_t*>(p.q.ptr) + b * p.q.batch_stride +
                               token_of(r) * p.q.row_stride + head_of(r) * p.q.head_stride;
      x = bf16_float(q[d]) * a.c;
    }
    smem->q[r][d] = x;
  }
  HONE_SYNC("attention_decode_q_ready");

  float m[kDecodeRows], l[kDecodeRows], o[kDecodeRows][kE];
#pragma unroll
  for (int r = 0; r < kDecodeRows; ++r) {
    m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
    for (int e = 0; e < kE; ++e) o[r][e] = 0.0f;
  }
  const int d0 = lane * kE;
  const int k_begin = split * a.keys_per_split;
  const int k_end = imin(cache_len, k_begin + a.keys_per_split);
  const std::uint16_t* kbase = static_cast<const std::uint16_t*>(p.k.ptr) + b * p.k.batch_stride +
                               kv_head * p.k.head_stride;
  const std::uint16_t* vbase = static_cast<const std::uint16_t*>(p.v.ptr) + b * p.v.batch_stride +
                               kv_head * p.v.head_stride;
  for (int j = k_begin + warp; j < k_end; j += kDecodeWarps) {
    float kx[kE], vx[kE];
#pragma unroll
    for (int e = 0; e < kE; ++e) {
      const bool in = d0 + e < p.head_dim;
      kx[e] = in ? bf16_float(kbase[j * p.k.row_stride + d0 + e]) : 0.0f;
      vx[e] = in ? bf16_float(vbase[j * p.v.row_stride + d0 + e]) : 0.0f;
    }
#pragma unroll
    for (int r = 0; r < kDecodeRows; ++r) {
      const int pos = cache_len - p.q_len + token_of(r);  // the query's position in the cache
      // Warp-uniform: rows past the chunk's end, and keys this row does not see.
      if (r >= rows || (p.causal && j > pos) || (p.window > 0 && pos - j >= p.window)) continue;
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < kE; ++e) s = fmaf(smem->q[r][d0 + e], kx[e], s);
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
      const float mx = fmaxf(m[r], s);
      const float alpha = exp2f(m[r] - mx), pv = exp2f(s - mx);
      l[r] = fmaf(l[r], alpha, pv);
#pragma unroll
      for (int e = 0; e < kE; ++e) o[r][e] = fmaf(o[r][e], alpha, pv * vx[e]);
      m[r] = mx;
    }
  }
#pragma unroll
  for (int r = 0; r < kDecodeRows; ++r) {
    if (lane == 0) smem->m[warp][r] = m[r], smem->l[warp][r] = l[r];
#pragma unroll
    for (int e = 0; e < kE; ++e) smem->o[warp][r][d0 + e] = o[r][e];
  }
  HONE_SYNC("attention_decode_warps_done");

  // Merge the warps (in warp order) per (row, element); write O/l and lse, final or partial.
  for (int i = threadIdx.x; i < rows * HD; i += kDecodeThreads) {
    const int r = i / HD, d = i % HD;
    float mx = -INFINITY;
    for (int w = 0; w < kDecodeWarps; ++w) mx = fmaxf(mx, smem->m[w][r]);
    float sum = 0.0f, acc = 0.0f;
    if (mx != -INFINITY)
      for (int w = 0; w < kDecodeWarps; ++w) {
        const float f = exp2f(smem->m[w][r] - mx);
        sum = fmaf(smem->l[w][r], f, sum);
        acc = fmaf(smem->o[w][r][d], f, acc);
      }
    const float out = sum > 0.0f ? acc / sum : 0.0f;
    const float lse2 = sum > 0.0f ? mx + log2f(sum) : -INFINITY;
    const int tok = token_of(r), h = head_of(r);
    if (a.splits == 1) {
      if (d < p.head_dim) {
        std::uint16_t* dst = static_cast<std::uint16_t*>(p.out.ptr) + b * p.out.batch_stride +
                             tok * p.out.row_stride + h * p.out.head_stride;
        dst[d] = bf16_bits(out);
      }
      if (d == 0 && p.lse)
        p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + tok] = lse2 * kLn2;
    } else {
      const std::int64_t slot =
          ((static_cast<std::int64_t>(split) * p.batch + b) * p.heads + h) * p.q_len + tok;
      a.partial[slot * HD + d] = out;
      if (d == 0) {
        const std::int64_t lse_base = static_cast<std::int64_t>(a.splits) * p.batch * p.heads * p.q_len * HD;
        a.partial[lse_base + slot] = lse2;
      }
    }
  }
}

// One thread per (sequence, head, token, element): the splits in order.
template <int HD>
__global__ void __launch_bounds__(256) attention_decode_combine_kernel(DecodeArgs a) {
  const AttentionDecodeParams& p = a.p;
  const std::int64_t rows = static_cast<std::int64_t>(p.batch) * p.heads * p.q_len;
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * HD) return;
  const std::int64_t slot = idx / HD;
  const int d = static_cast<int>(idx % HD);
  const int tok = static_cast<int>(slot % p.q_len);
  const int h = static_cast<int>(slot / p.q_len % p.heads);
  const int b = static_cast<int>(slot / p.q_len / p.heads);
  const float* lse = a.partial + static_cast<std::int64_t>(a.splits) * rows * HD;
  float mx = -INFINITY;
  for (int s = 0; s < a.splits; ++s) mx = fmaxf(mx, lse[s * rows + slot]);
  float sum = 0.0f, acc = 0.0f;
  if (mx != -INFINITY)
    for (int s = 0; s < a.splits; ++s) {
      const float f = exp2f(lse[s * rows + slot] - mx);
      sum += f;
      acc = fmaf(a.partial[(s * rows + slot) * HD + d], f, acc);
    }
  if (d < p.head_dim) {
    std::uint16_t* dst = static_cast<std::uint16_t*>(p.out.ptr) + b * p.out.batch_stride +
                         tok * p.out.row_stride + h * p.out.head_stride;
    dst[d] = bf16_bits(sum > 0.0f ? acc / sum : 0.0f);
  }
  if (d == 0 && p.lse)
    p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + tok] =
        sum > 0.0f ? (mx + log2f(sum)) * kLn2 : -INFINITY;
}

// The sizes and flags; with `tensors` also the pointers and strides.
void check_decode(const AttentionDecodeParams& p, bool tensors) {
  const char* op = kDecodeOp;
  check_head_dim(op, p.head_dim);
  check_heads(op, p.heads, p.kv_heads);
  HONE_CHECK(p.batch >= 0 && p.batch <= 65535, op, "batch = ", p.batch,
             " is out of range [0, 65535]");
  HONE_CHECK(p.kv_heads <= 65535, op, "kv_heads = ", p.kv_heads, " is out of range [1, 65535]");
  HONE_CHECK(p.q_len >= 1, op, "q_len = ", p.q_len, " is not positive");
  HONE_CHECK(p.kv_capacity >= p.q_len, op, "kv_capacity = ", p.kv_capacity,
             " is less than q_len = ", p.q_len, " (the cache holds the new tokens too)");
  HONE_CHECK(p.window >= 0, op, "window = ", p.window, " is negative (0 means no window)");
  HONE_CHECK(p.splits >= 0 && p.splits <= kMaxSplits, op, "splits = ", p.splits,
             " is out of range [0, ", kMaxSplits, "] (0 chooses)");
  HONE_CHECK(p.scale == p.scale && p.scale - p.scale == 0.0f, op, "scale = ", p.scale,
             " is not finite (0 means 1/sqrt(head_dim))");
  if (p.batch == 0 || !tensors) return;
  check_tensor(op, "q", p.q, false);
  check_tensor(op, "k", p.k, false);
  check_tensor(op, "v", p.v, false);
  check_tensor(op, "out", p.out, false);
}

int decode_row_chunks(const AttentionDecodeParams& p) {
  return (p.q_len * (p.heads / p.kv_heads) + kDecodeRows - 1) / kDecodeRows;
}

int sm_count(const AttentionDecodeParams& p) {
  if (p.sm_count > 0) return p.sm_count;
#if defined(__CUDACC__)
  int device = 0, count = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
  HONE_CHECK(err == cudaSuccess, kDecodeOp, "cannot query the SM count: ", cudaGetErrorString(err));
  return std::max(count, 1);
#else
  return 132;  // the emulator assumes an H100/H200's count
#endif
}

// The split actually used: forced, or about two waves of blocks with at least 64 keys each.
int choose_splits(const AttentionDecodeParams& p) {
  const int max_useful = std::max(1, (p.kv_capacity + 63) / 64);
  if (p.splits > 0) return std::min(p.splits, p.kv_capacity);
  const long long blocks = static_cast<long long>(p.batch) * p.kv_heads * decode_row_chunks(p);
  const long long target = 2LL * sm_count(p);
  const long long want = (target + blocks - 1) / std::max(blocks, 1LL);
  return static_cast<int>(std::max(1LL, std::min<long long>({want, max_useful, kMaxSplits})));
}

template <int HD>
void launch_decode(const DecodeArgs& a, cudaStream_t stream) {
  const AttentionDecodeParams& p = a.p;
  const std::size_t smem = sizeof(DecodeShared<HD>);
  void (*kernel)(DecodeArgs) = attention_decode_kernel<HD>;
  allow_smem(kDecodeOp, kernel, smem);
  launch(kernel,
         dim3(static_cast<unsigned>(a.splits * a.row_chunks), static_cast<unsigned>(p.kv_heads),
              static_cast<unsigned>(p.batch)),
         dim3(kDecodeThreads), smem, stream, a);
  check_launch(kDecodeOp);
  if (a.splits > 1) {
    const long long n = static_cast<long long>(p.batch) * p.heads * p.q_len * HD;
    launch(attention_decode_combine_kernel<HD>, dim3(static_cast<unsigned>((n + 255) / 256)),
           dim3(256), 0, stream, a);
    check_launch(kDecodeOp);
  }
}

}  // namespace
}  // namespace attention_detail

int attention_decode_splits(const AttentionDecodeParams& p) {
  using namespace attention_detail;
  check_decode(p, false);
  return p.batch == 0 ? 1 : choose_splits(p);
}

std::size_t attention_decode_workspace_bytes(const AttentionDecodeParams& p) {
  using namespace attention_detail;
  const int splits = attention_decode_splits(p);
  if (splits <= 1) return 0;
  const std::size_t slots = static_cast<std::size_t>(splits) * p.batch * p.heads * p.q_len;
  return slots * (head_dim_bucket(p.head_dim) + 1) * sizeof(float);
}

void attention_decode(const AttentionDecodeParams& p, cudaStream_t stream) {
  using namespace attention_detail;
  check_decode(p, true);
  if (p.batch == 0) return;
  DecodeArgs a{};
  a.p = p;
  a.splits = choose_splits(p);
  a.keys_per_split = (p.kv_capacity + a.splits - 1) / a.splits;
  a.row_chunks = decode_row_chunks(p);
  HONE_CHECK(static_cast<long long>(a.splits) * a.row_chunks <= INT_MAX, kDecodeOp,
             "too many blocks: splits = ", a.splits, " × row chunks = ", a.row_chunks);
  a.c = resolved_scale(p.scale, p.head_dim) * kLog2e;
  const std::size_t need = attention_decode_workspace_bytes(p);
  if (need > 0) {
    HONE_CHECK(p.workspace != nullptr && aligned16(p.workspace), kDecodeOp, "workspace = ",
               p.workspace, " is null or not 16-byte aligned; ", need, " bytes are needed for ",
               a.splits, " splits");
    HONE_CHECK(p.workspace_bytes >= need, kDecodeOp, "workspace_bytes = ", p.workspace_bytes,
               " is less than the ", need, " bytes needed for ", a.splits, " splits");
  }
  a.partial = static_cast<float*>(p.workspace);
  if (head_dim_bucket(p.head_dim) == 64)
    launch_decode<64>(a, stream);
  else
    launch_decode<128>(a, stream);
}

HONE_KERNELS_END

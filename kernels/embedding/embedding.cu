// Token embedding: the forward gathers rows (a warp per token, 16-byte copies when rows are
// aligned); the backward sorts the token positions by id with a stable LSD radix sort (8-bit
// digits; per-tile histograms counted with integer shared-memory atomics, one exclusive scan,
// then a scatter that ranks equal digits by position inside the tile), so each id's tokens end
// up contiguous and in token order, and one block per id adds them in that order.
#include <cstdint>
#include <type_traits>

#include "hone/error.h"
#include "kernels/common/check_launch.cuh"
#include "kernels/common/compat.cuh"
#include "kernels/embedding/embedding.h"

HONE_KERNELS_BEGIN

namespace {

using bf16_t = __nv_bfloat16;

constexpr int kFwdThreads = 256;    // 8 tokens per block, a warp each
constexpr int kTile = 256;          // tokens per sort tile = threads per sort block = digits
constexpr int kScanThreads = 1024;
constexpr int kAccumThreads = 128;

// ---- forward --------------------------------------------------------------------------

template <class I>
__global__ void __launch_bounds__(kFwdThreads)
    embedding_fwd_kernel(EmbeddingFwdParams p, std::int64_t row_bytes, bool vec) {
  const std::int64_t n = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (n >= p.tokens) return;
  const std::int64_t id = static_cast<std::int64_t>(static_cast<const I*>(p.ids)[n]);
  const bool valid = id >= 0 && id < p.vocab;
  const unsigned char* src = static_cast<const unsigned char*>(p.table) + (valid ? id : 0) * row_bytes;
  unsigned char* dst = static_cast<unsigned char*>(p.out) + n * row_bytes;
  if (vec) {
    const std::int64_t units = row_bytes / 16;
    for (std::int64_t u = lane; u < units; u += 32) {
      uint4 v{0u, 0u, 0u, 0u};
      if (valid) v = reinterpret_cast<const uint4*>(src)[u];
      reinterpret_cast<uint4*>(dst)[u] = v;
    }
  } else {
    const std::int64_t units = row_bytes / 2;  // both element types are whole 2-byte units
    for (std::int64_t u = lane; u < units; u += 32)
      reinterpret_cast<std::uint16_t*>(dst)[u] =
          valid ? reinterpret_cast<const std::uint16_t*>(src)[u] : std::uint16_t{0};
  }
}

// ---- backward: sort positions by id ------------------------------------------------------

// Sort keys are ids, with every id outside [0, vocab) mapped to vocab (a bucket the
// accumulation skips); values are token positions.
template <class I>
__global__ void sort_init_kernel(const I* ids, std::int64_t tokens, std::int64_t vocab,
                                 std::uint32_t* keys, std::uint32_t* pos) {
  const std::int64_t n = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= tokens) return;
  const std::int64_t id = static_cast<std::int64_t>(ids[n]);
  keys[n] = static_cast<std::uint32_t>(id >= 0 && id < vocab ? id : vocab);
  pos[n] = static_cast<std::uint32_t>(n);
}

struct HistShared {
  std::uint32_t count[kTile];
};

// hist[d · tiles + tile] = how many keys of the tile have digit d (digit-major, so that one
// exclusive scan gives every (digit, tile) its first output slot).
__global__ void __launch_bounds__(kTile)
    sort_hist_kernel(const std::uint32_t* keys, std::int64_t tokens, int shift,
                     std::uint32_t* hist) {
  HONE_DYNAMIC_SMEM(HistShared, sh);
  const std::int64_t tiles = gridDim.x;
  const std::int64_t n = static_cast<std::int64_t>(blockIdx.x) * kTile + threadIdx.x;
  sh->count[threadIdx.x] = 0;
  HONE_SYNC("embedding.hist_zero");
  if (n < tokens) atomicAdd(&sh->count[(keys[n] >> shift) & 0xffu], 1u);  // integer: exact
  HONE_SYNC("embedding.hist_count");
  hist[static_cast<std::int64_t>(threadIdx.x) * tiles + blockIdx.x] = sh->count[threadIdx.x];
}

struct ScanShared {
  std::uint32_t warp_total[kScanThreads / 32];
};

// Exclusive prefix sum of data[0, n) in place, one block, chunk by chunk with a carry.
__global__ void __launch_bounds__(kScanThreads)
    sort_scan_kernel(std::uint32_t* data, std::int64_t n) {
  HONE_DYNAMIC_SMEM(ScanShared, sh);
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int warps = static_cast<int>(blockDim.x / 32);
  std::uint32_t carry = 0;
  for (std::int64_t base = 0; base < n; base += blockDim.x) {
    const std::int64_t i = base + threadIdx.x;
    const std::uint32_t v = i < n ? data[i] : 0u;
    std::uint32_t x = v;  // inclusive scan within the warp
    for (int off = 1; off < 32; off *= 2) {
      const std::uint32_t y = __shfl_up_sync(0xffffffffu, x, off);
      if (lane >= off) x += y;
    }
    if (lane == 31) sh->warp_total[warp] = x;
    HONE_SYNC("embedding.scan_warps");
    if (warp == 0) {
      std::uint32_t t = lane < warps ? sh->warp_total[lane] : 0u;
      for (int off = 1; off < 32; off *= 2) {
        const std::uint32_t y = __shfl_up_sync(0xffffffffu, t, off);
        if (lane >= off) t += y;
      }
      if (lane < warps) sh->warp_total[lane] = t;  // inclusive over warps
    }
    HONE_SYNC("embedding.scan_totals");
    const std::uint32_t before = warp > 0 ? sh->warp_total[warp - 1] : 0u;
    if (i < n) data[i] = carry + before + x - v;
    carry += sh->warp_total[warps - 1];
    HONE_SYNC("embedding.scan_reuse");
  }
}

struct ScatterShared {
  std::uint32_t digit[kTile];
};

// Stable scatter: a key goes to its (digit, tile) slot plus the number of keys before it in the
// tile with the same digit.
__global__ void __launch_bounds__(kTile)
    sort_scatter_kernel(const std::uint32_t* keys, const std::uint32_t* pos, std::int64_t tokens,
                        int shift, const std::uint32_t* offsets, std::uint32_t* keys_out,
                        std::uint32_t* pos_out) {
  HONE_DYNAMIC_SMEM(ScatterShared, sh);
  const std::int64_t tiles = gridDim.x;
  const std::int64_t n = static_cast<std::int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const bool live = n < tokens;
  const std::uint32_t key = live ? keys[n] : 0u;
  const std::uint32_t d = live ? (key >> shift) & 0xffu : 0x100u;  // 0x100: matches no digit
  sh->digit[threadIdx.x] = d;
  HONE_SYNC("embedding.scatter_digits");
  if (!live) return;
  std::uint32_t rank = 0;
  for (unsigned j = 0; j < threadIdx.x; ++j) rank += sh->digit[j] == d;
  const std::uint32_t dst = offsets[static_cast<std::int64_t>(d) * tiles + blockIdx.x] + rank;
  keys_out[dst] = key;
  pos_out[dst] = pos[n];
}

// ---- backward: accumulate each id's rows in token order ------------------------------------

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16_t x) { return __bfloat162float(x); }
__device__ __forceinline__ void store_one(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_one(bf16_t* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ void bf16x8_to_float(uint4 u, float* out) {
  const std::uint32_t w[4] = {u.x, u.y, u.z, u.w};
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(w[i] << 16);
    out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ std::uint32_t bf16_pair(float lo, float hi) {
  return static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

// Eight consecutive gradient elements at a 16-byte aligned address.
__device__ __forceinline__ void load8(const float* p, float* v) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void load8(const bf16_t* p, float* v) {
  bf16x8_to_float(*reinterpret_cast<const uint4*>(p), v);
}
__device__ __forceinline__ void store8(float* p, const float* v) {
  float4 a, b;
  a.x = v[0], a.y = v[1], a.z = v[2], a.w = v[3], b.x = v[4], b.y = v[5], b.z = v[6], b.w = v[7];
  reinterpret_cast<float4*>(p)[0] = a;
  reinterpret_cast<float4*>(p)[1] = b;
}
__device__ __forceinline__ void store8(bf16_t* p, const float* v) {
  uint4 u;
  u.x = bf16_pair(v[0], v[1]), u.y = bf16_pair(v[2], v[3]);
  u.z = bf16_pair(v[4], v[5]), u.w = bf16_pair(v[6], v[7]);
  *reinterpret_cast<uint4*>(p) = u;
}

// Block k owns the run of equal sorted keys that starts at k (other blocks exit at once):
//   dtable[id, c] = (((dtable[id, c] + dout[n0, c]) + dout[n1, c]) + ...),  n0 < n1 < ...
// Columns are spread over the threads (eight per thread on the vector path).
template <class G, bool kVec>
__global__ void __launch_bounds__(kAccumThreads)
    accumulate_kernel(const std::uint32_t* keys, const std::uint32_t* pos, std::int64_t tokens,
                      std::int64_t vocab, std::int64_t dim, const bf16_t* dout, G* dtable) {
  const std::int64_t k = blockIdx.x;
  const std::uint32_t key = keys[k];
  if ((k > 0 && keys[k - 1] == key) || key >= vocab) return;
  std::int64_t end = k + 1;
  while (end < tokens && keys[end] == key) ++end;
  G* row = dtable + static_cast<std::int64_t>(key) * dim;
  if (kVec) {
    for (std::int64_t c = threadIdx.x * 8; c < dim; c += blockDim.x * 8) {
      float acc[8], v[8];
      load8(row + c, acc);
      for (std::int64_t j = k; j < end; ++j) {
        load8(dout + static_cast<std::int64_t>(pos[j]) * dim + c, v);
        for (int e = 0; e < 8; ++e) acc[e] += v[e];
      }
      store8(row + c, acc);
    }
  } else {
    for (std::int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
      float acc = to_float(row[c]);
      for (std::int64_t j = k; j < end; ++j)
        acc += to_float(dout[static_cast<std::int64_t>(pos[j]) * dim + c]);
      store_one(row + c, acc);
    }
  }
}

// ---- host side --------------------------------------------------------------------------------

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

std::int64_t round_up(std::int64_t x, std::int64_t m) { return (x + m - 1) / m * m; }

// Where the backward's scratch arrays live inside the workspace (256-byte aligned pieces).
struct Workspace {
  std::uint32_t* keys[2];
  std::uint32_t* pos[2];
  std::uint32_t* hist;
  std::int64_t tiles;
  std::size_t bytes;
};

Workspace layout(void* base, std::int64_t tokens) {
  Workspace w{};
  w.tiles = (tokens + kTile - 1) / kTile;
  const std::int64_t array = round_up(tokens * 4, 256);
  auto* b = static_cast<unsigned char*>(base);
  for (int i = 0; i < 2; ++i) {
    w.keys[i] = reinterpret_cast<std::uint32_t*>(b + (2 * i) * array);
    w.pos[i] = reinterpret_cast<std::uint32_t*>(b + (2 * i + 1) * array);
  }
  w.hist = reinterpret_cast<std::uint32_t*>(b + 4 * array);
  w.bytes = static_cast<std::size_t>(4 * array + round_up(kTile * w.tiles * 4, 256));
  return w;
}

void check_sizes(const char* op, std::int64_t tokens, std::int64_t vocab, std::int64_t dim) {
  HONE_CHECK(tokens >= 0, op, "tokens = ", tokens, " is negative");
  HONE_CHECK(tokens < (std::int64_t{1} << 31), op, "tokens = ", tokens, " exceeds 2^31 - 1");
  HONE_CHECK(vocab >= 1, op, "vocab = ", vocab, "; expected at least 1");
  HONE_CHECK(vocab < (std::int64_t{1} << 31), op, "vocab = ", vocab, " exceeds 2^31 - 1");
  HONE_CHECK(dim >= 1, op, "dim = ", dim, "; expected at least 1");
}

template <class F>
void with_index(EmbeddingIndexType t, F&& f) {
  if (t == EmbeddingIndexType::i32) f(std::int32_t{});
  else f(std::int64_t{});
}

}  // namespace

void embedding_fwd(const EmbeddingFwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "embedding_fwd";
  check_sizes(op, p.tokens, p.vocab, p.dim);
  if (p.tokens == 0) return;
  HONE_CHECK(p.ids != nullptr, op, "ids is null");
  HONE_CHECK(p.table != nullptr, op, "table is null");
  HONE_CHECK(p.out != nullptr, op, "out is null");
  const std::int64_t row_bytes = p.dim * (p.type == EmbeddingType::f32 ? 4 : 2);
  const bool vec = row_bytes % 16 == 0 && aligned16(p.table) && aligned16(p.out);
  constexpr int kTokensPerBlock = kFwdThreads / 32;
  const std::int64_t blocks = (p.tokens + kTokensPerBlock - 1) / kTokensPerBlock;
  with_index(p.index_type, [&](auto itag) {
    using I = decltype(itag);
    launch(embedding_fwd_kernel<I>, dim3(static_cast<unsigned>(blocks)), dim3(kFwdThreads), 0,
           stream, p, row_bytes, vec);
  });
  check_launch(op);
}

std::size_t embedding_bwd_workspace_bytes(std::int64_t tokens, std::int64_t vocab) {
  check_sizes("embedding_bwd_workspace_bytes", tokens, vocab, 1);
  return layout(nullptr, tokens).bytes;
}

void embedding_bwd(const EmbeddingBwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "embedding_bwd";
  check_sizes(op, p.tokens, p.vocab, p.dim);
  if (p.tokens == 0) return;
  HONE_CHECK(p.ids != nullptr, op, "ids is null");
  HONE_CHECK(p.dout != nullptr, op, "dout is null");
  HONE_CHECK(p.dtable != nullptr, op, "dtable is null");
  HONE_CHECK(p.workspace != nullptr, op, "workspace is null (embedding_bwd_workspace_bytes = ",
             embedding_bwd_workspace_bytes(p.tokens, p.vocab), " bytes)");
  const Workspace w = layout(p.workspace, p.tokens);
  const unsigned tiles = static_cast<unsigned>(w.tiles);
  with_index(p.index_type, [&](auto itag) {
    using I = decltype(itag);
    launch(sort_init_kernel<I>, dim3(tiles), dim3(kTile), 0, stream, static_cast<const I*>(p.ids),
           p.tokens, p.vocab, w.keys[0], w.pos[0]);
  });
  // Keys go up to vocab (the out-of-range bucket): sort on the bits that can be set.
  int key_bits = 0;
  while (key_bits < 32 && (std::int64_t{1} << key_bits) <= p.vocab) ++key_bits;
  int cur = 0;
  for (int shift = 0; shift < key_bits; shift += 8) {
    launch(sort_hist_kernel, dim3(tiles), dim3(kTile), sizeof(HistShared), stream,
           static_cast<const std::uint32_t*>(w.keys[cur]), p.tokens, shift, w.hist);
    launch(sort_scan_kernel, dim3(1), dim3(kScanThreads), sizeof(ScanShared), stream, w.hist,
           static_cast<std::int64_t>(kTile) * w.tiles);
    launch(sort_scatter_kernel, dim3(tiles), dim3(kTile), sizeof(ScatterShared), stream,
           static_cast<const std::uint32_t*>(w.keys[cur]),
           static_cast<const std::uint32_t*>(w.pos[cur]), p.tokens, shift,
           static_cast<const std::uint32_t*>(w.hist), w.keys[1 - cur], w.pos[1 - cur]);
    cur = 1 - cur;
  }
  const bool vec = p.dim % 8 == 0 && aligned16(p.dout) && aligned16(p.dtable);
  const auto* keys = static_cast<const std::uint32_t*>(w.keys[cur]);
  const auto* pos = static_cast<const std::uint32_t*>(w.pos[cur]);
  const auto* dout = static_cast<const bf16_t*>(p.dout);
  auto accumulate = [&](auto gtag) {
    using G = decltype(gtag);
    G* dtable = static_cast<G*>(p.dtable);
    const dim3 grid(static_cast<unsigned>(p.tokens)), block(kAccumThreads);
    if (vec)
      launch(accumulate_kernel<G, true>, grid, block, 0, stream, keys, pos, p.tokens, p.vocab,
             p.dim, dout, dtable);
    else
      launch(accumulate_kernel<G, false>, grid, block, 0, stream, keys, pos, p.tokens, p.vocab,
             p.dim, dout, dtable);
  };
  if (p.grad_type == EmbeddingType::f32) accumulate(float{});
  else accumulate(bf16_t{});
  check_launch(op);
}

HONE_KERNELS_END

// Launchers of the flash-attention kernels (attention_fwd.cu, attention_bwd.cu,
// attention_decode.cu). Host header without CUDA types.
//
// Layout. q, k, v, out and their gradients are bf16 with explicit strides in elements: element
// d of head h at position t of batch entry b is at
//   base + b·batch_stride + t·row_stride + h·head_stride + d          (padded layout)
//   base + (cu_seqlens[b] + t)·row_stride + h·head_stride + d         (packed: cu_seqlens set)
// so (B, T, H, hd) contiguous is batch_stride = T·H·hd, row_stride = H·hd, head_stride = hd.
// Query head h reads key/value head h / (heads / kv_heads) (grouped-query attention).
// lse (f32, natural log) of query head h at position t of entry b is at
//   lse[b·lse_batch_stride + h·lse_head_stride + t]                   (padded)
//   lse[h·lse_head_stride + cu_seqlens[b] + t]                        (packed)
// which is (B, H, T) or, packed, (H, N) when contiguous — the layouts of ops::attention_fwd.
//
// Masking. Query t sees key j (both positions in the same sequence) when
//   (!causal or j ≤ t) and (window = 0 or t − j < window),
// as in engine/cpu/attention.h; the forward skips key tiles no query of a block sees.
//
// Head dims: 32, 64, 96 and 128. They run in two compiled buckets, 64 and 128 (a smaller head
// dim is zero-padded up to its bucket in shared memory); any other head dim is rejected with an
// error naming the supported ones. Pointers must be 16-byte aligned and every stride a multiple
// of 8 elements (whole 16-byte rows for cp.async).
//
// Determinism: no kernel uses floating-point atomics. The backward computes dK/dV in one pass
// over query tiles per key tile (each block owns its key rows and sums the query heads of its
// group in a fixed order) and dQ in a separate pass over key tiles per query tile; the decode's
// split-KV partials are combined in split order. Results depend only on the inputs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

// One tensor's addressing: base pointer and strides in elements (see the top of this file).
struct AttentionTensor {
  void* ptr = nullptr;  // bf16
  std::int64_t batch_stride = 0, row_stride = 0, head_stride = 0;
};

struct AttentionParams {
  AttentionTensor q;    // (B, T, H, hd)
  AttentionTensor k;    // (B, T, Hkv, hd)
  AttentionTensor v;    // (B, T, Hkv, hd)
  AttentionTensor out;  // (B, T, H, hd), written by the forward
  float* lse = nullptr;  // written by the forward, read by the backward
  std::int64_t lse_batch_stride = 0, lse_head_stride = 0;
  int batch = 0;      // B, or the number of packed sequences
  int seqlen = 0;     // T, or (packed) at least the longest sequence: it sizes the grid
  int heads = 0;      // H
  int kv_heads = 0;   // Hkv, dividing H
  int head_dim = 0;   // hd: 32, 64, 96 or 128
  // Packed variable-length layout: device i32 (batch + 1) offsets, non-decreasing from 0;
  // sequence b holds rows [cu_seqlens[b], cu_seqlens[b + 1]). Null: the padded layout.
  const std::int32_t* cu_seqlens = nullptr;
  float scale = 0.0f;  // softmax scale; 0 → 1/sqrt(head_dim)
  bool causal = true;
  int window = 0;      // ≥ 0; 0 → no sliding window
};

// Forward: out and lse from q, k, v (validates first; errors name the field and value).
void attention_fwd(const AttentionParams& p, cudaStream_t stream);

// Backward (FlashAttention-2): from q, k, v, out, lse of the forward and dout, writes dq, dk,
// dv (=); dk/dv of a kv head sum over the query heads of its group. Needs
// attention_bwd_workspace_bytes(p) bytes of device workspace (16-byte aligned).
struct AttentionBwdParams {
  AttentionParams fwd;   // the forward's problem, with out and lse filled in
  AttentionTensor dout;  // like out
  AttentionTensor dq;    // like q
  AttentionTensor dk;    // like k
  AttentionTensor dv;    // like v
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
};
void attention_bwd(const AttentionBwdParams& p, cudaStream_t stream);
// Bytes of workspace attention_bwd needs: one f32 per (query head, row) for D = rowsum(dO ∘ O).
std::size_t attention_bwd_workspace_bytes(const AttentionParams& p);

// Decode: a few new query tokens per sequence against a KV cache, split over the cache length.
// q (B, Tq, H, hd) holds the newest Tq positions of each sequence; the cache k/v (B, Tk, Hkv, hd)
// holds cache_seqlens[b] valid positions (or Tk when cache_seqlens is null), the new tokens'
// keys included, so query t of sequence b is at position cache_len − Tq + t and the causal mask
// and window apply from there. out (B, Tq, H, hd); lse (B, H, Tq) f32, optional.
struct AttentionDecodeParams {
  AttentionTensor q, k, v, out;
  float* lse = nullptr;  // optional
  std::int64_t lse_batch_stride = 0, lse_head_stride = 0;
  int batch = 0;
  int q_len = 0;       // Tq ≥ 1
  int kv_capacity = 0;  // Tk: rows of the cache per sequence
  const std::int32_t* cache_seqlens = nullptr;  // device i32 (B), each in [Tq, Tk]; null: Tk
  int heads = 0, kv_heads = 0, head_dim = 0;
  float scale = 0.0f;  // 0 → 1/sqrt(head_dim)
  bool causal = true;
  int window = 0;
  int splits = 0;      // KV splits; 0 lets the launcher choose from the cache length
  int sm_count = 0;    // for the automatic split (0: ask the runtime)
  void* workspace = nullptr;  // attention_decode_workspace_bytes(p) bytes, 16-byte aligned
  std::size_t workspace_bytes = 0;
};
void attention_decode(const AttentionDecodeParams& p, cudaStream_t stream);
// Workspace for the split partials (0 when the chosen split is 1).
std::size_t attention_decode_workspace_bytes(const AttentionDecodeParams& p);
// The number of splits attention_decode uses for p.
int attention_decode_splits(const AttentionDecodeParams& p);

HONE_KERNELS_END

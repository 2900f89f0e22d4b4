// Launchers of rotary position embeddings, forward and backward (rope.cu). Host header without
// CUDA types.
//
// Hugging Face rotate-half pairing, as engine/cpu/rope.h: for token n at position p =
// positions[n], every head h and i < head_dim/2, with a = p · inv_freq[i],
//   y[n, h, i]              = x[n, h, i] cos a − x[n, h, i + head_dim/2] sin a
//   y[n, h, i + head_dim/2] = x[n, h, i + head_dim/2] cos a + x[n, h, i] sin a
// The backward is the transpose of that rotation, the rotation by −a (x = dy, y = dx).
// Positions are per token, so offsets and per-sequence restarts in packed batches need nothing
// more. x and y are bf16; the angle, cos and sin are computed in fp64 from the fp64 table (as the
// CPU reference does) and rounded to fp32; the rotation is fp32 and each output is rounded to
// bf16 once. Results are within one bf16 ulp (plus ~1e-6 where the two products cancel) of the
// reference. With head_dim a multiple of 16 and x, y 16-byte aligned, 8 pairs move per load.
#pragma once
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

enum class RopeIndexType : std::uint8_t { i32, i64 };

inline constexpr std::int64_t kRopeMaxHeadDim = 8192;

struct RopeParams {
  const void* x = nullptr;          // (tokens, heads, head_dim) bf16
  void* y = nullptr;                // (tokens, heads, head_dim) bf16, =; may be x
  const void* positions = nullptr;  // (tokens) positions_type
  RopeIndexType positions_type = RopeIndexType::i64;
  const double* inv_freq = nullptr;  // (head_dim / 2) fp64: ops::rope_inv_freq (any scaling in it)
  std::int64_t tokens = 0;
  std::int64_t heads = 0;     // ≥ 1
  std::int64_t head_dim = 0;  // even, 2 ≤ head_dim ≤ kRopeMaxHeadDim
};

// Each validates (errors name the field and value) and launches on `stream`; tokens = 0 is a
// no-op. rope_fwd rotates by +a, rope_bwd by −a.
void rope_fwd(const RopeParams& p, cudaStream_t stream);
void rope_bwd(const RopeParams& p, cudaStream_t stream);

HONE_KERNELS_END

// Launchers of the softmax cross-entropy kernels (cross_entropy.cu). Host header without CUDA
// types. The function is engine/cpu/loss's, per row n with target t = targets[n]:
//   lse[n]    = log Σ_v exp(x[n, v])                    (online over vocabulary chunks, fp32)
//   losses[n] = w[n] · (lse[n] − x[n, t]),  0 where t == ignore_index (lse still written)
//   dlogits[n, v] (=) = g[n] · w[n] · (softmax(x[n])_v − [v == t]),  a zero row where ignored
// with w[n] = weights[n] (1 without weights) and g[n] = dlosses[n], or the scalar dloss for
// every row when dlosses is null (e.g. 1 / the number of counted tokens for a mean loss).
// A target outside [0, vocab) that is not ignore_index yields a NaN loss and NaN dlogits row
// (the kernel cannot throw; engine/ops validates host targets).
#pragma once
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

enum class LossType : std::uint8_t { f32, bf16 };
enum class LossIndexType : std::uint8_t { i32, i64 };

struct CrossEntropyParams {
  std::int64_t rows = 0, vocab = 0;
  const void* logits = nullptr;  // (rows, vocab) of logits_type
  LossType logits_type = LossType::bf16;
  const void* targets = nullptr;  // (rows) of target_type
  LossIndexType target_type = LossIndexType::i64;
  std::int64_t ignore_index = -100;
  const float* weights = nullptr;  // (rows) or null
  float* losses = nullptr;         // (rows) forward output
  float* lse = nullptr;            // (rows) forward output, backward input
  const float* dlosses = nullptr;  // (rows) or null: then dloss for every row
  float dloss = 1.0f;
  // (rows, vocab) of dlogits_type. Backward output; in the forward, optional: when set, the
  // forward also writes the gradient (one launch). May be logits itself when the types agree.
  void* dlogits = nullptr;
  LossType dlogits_type = LossType::bf16;
};

// Writes losses and lse (and dlogits when set). Validates (errors name the field and value).
void cross_entropy_fwd(const CrossEntropyParams& p, cudaStream_t stream);
// Reads lse (from the forward) and writes dlogits.
void cross_entropy_bwd(const CrossEntropyParams& p, cudaStream_t stream);

HONE_KERNELS_END

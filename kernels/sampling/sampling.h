// Launcher of the sampling kernel (sampling.cu). Host header without CUDA types. The rule is
// engine/cpu/sampling.h's, draw for draw: greedy argmax (lowest index on ties) at temperature
// 0 or top_k 1; otherwise the 24-bit fixed-point softmax weights, top-k, then top-p, and a
// Philox draw per row (word r % 4 of block offset + r / 4 under seed). The same (seed, offset)
// gives the same tokens as ops::sample on the CPU for the same (f32-rounded) logits.
#pragma once
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

enum class SampleLogitsType : std::uint8_t { f32, bf16 };

struct SampleParams {
  std::int64_t rows = 0, vocab = 0;
  const void* logits = nullptr;  // (rows, vocab) of logits_type
  SampleLogitsType logits_type = SampleLogitsType::bf16;
  std::int64_t* out = nullptr;   // (rows) chosen token ids
  double temperature = 1.0;      // ≥ 0; 0 → greedy
  std::int64_t top_k = 0;        // ≥ 0; 0 → off
  double top_p = 1.0;            // in (0, 1]; 1 → off
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;      // first Philox block of this step
};

// One block per row. Validates (errors name the field and value).
void sample(const SampleParams& p, cudaStream_t stream);

HONE_KERNELS_END

// Choosing the next token of one sequence: transformers' repetition penalty, then ops::sample's
// exact rule (greedy, temperature, top-k, top-p) on a Philox stream per sequence.
#pragma once
#include <cstdint>
#include <vector>

#include "hone/generator.h"
#include "hone/tensor.h"

namespace hone::infer {

// Checks the options (errors name the option and its value).
void check_sampling(const SamplingOptions& o);

// logits (V) or (1, V), in place: for every distinct id in `seen`, x → x / penalty when x > 0,
// else x · penalty (RepetitionPenaltyLogitsProcessor). penalty = 1 leaves them as they are.
void apply_repetition_penalty(const Tensor& logits, const std::vector<std::int32_t>& seen, double penalty);

// The token chosen from logits (1, V) for sequence `sequence` at its generation step `step`:
// Philox block sequence · 2³² + step under o.seed (see SamplingOptions).
std::int32_t choose_token(const Tensor& logits, const SamplingOptions& o, std::uint64_t sequence, std::uint64_t step);

}  // namespace hone::infer

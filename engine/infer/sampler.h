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

// The token chosen from logits (1, V) (on any device) for sequence `sequence` at its generation
// step `step`: Philox block sequence · 2³² + step under o.seed (see SamplingOptions).
std::int32_t choose_token(const Tensor& logits, const SamplingOptions& o, std::uint64_t sequence, std::uint64_t step);

// One token per row r of logits (R, V), for sequence sequences[r] at its step steps[r] whose
// prompt and tokens so far are *seen[r] (for the repetition penalty), each as choose_token
// would choose it. Logits on a device stay there (argmax or ops::sample per row into one i64
// tensor: R ids come back, not R × V logits), except with a repetition penalty: that is
// applied to an f32 host copy (the f32 value of each bf16 logit, penalised as the CPU
// penalises f32 logits), whose draw equals the device's for the same values.
std::vector<std::int32_t> choose_tokens(const Tensor& logits, const SamplingOptions& o,
                                        const std::vector<std::uint64_t>& sequences,
                                        const std::vector<std::uint64_t>& steps,
                                        const std::vector<const std::vector<std::int32_t>*>& seen);

}  // namespace hone::infer

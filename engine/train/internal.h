// Pieces of the trainer (engine/train) shared by its source files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "hone/dataset.h"
#include "hone/trainer.h"
#include "model/transformer.h"

namespace hone::train {

// lr of step `step` (0-based) of `total`.
double learning_rate(const TrainConfig& c, std::int64_t step, std::int64_t total);

// Rows [row_begin, row_end) of a packed batch as the model's input, with the next-token target
// of every position (the label of the following token in its sequence, else ignored).
struct MicroBatch {
  model::Batch batch;
  Tensor targets;  // i64 (N)
  std::int64_t loss_tokens = 0;
};
MicroBatch micro_batch(const data::PackedBatch& b, std::int64_t row_begin, std::int64_t row_end);


// Checkpoint folder contents besides the weights.
struct SavedState {
  std::int64_t step = 0;
  data::DataPosition data;
  std::vector<data::TokenizedExample> pending;
  std::uint64_t seed = 0;
};
std::string state_to_json(const SavedState& s);
SavedState state_from_json(const std::string& text, const std::string& source);

// Peak resident set size of this process in bytes (0 where unknown).
std::int64_t peak_rss_bytes();

}  // namespace hone::train

// Micro-batches of a packed batch: the model's input rows and their next-token targets.
#include "hone/error.h"
#include "train/internal.h"

namespace hone::train {

MicroBatch micro_batch(const data::PackedBatch& b, std::int64_t row_begin, std::int64_t row_end) {
  const std::int64_t rows = b.ids.size(0), L = b.ids.size(1);
  HONE_CHECK(0 <= row_begin && row_begin < row_end && row_end <= rows, "train", "rows [", row_begin,
             ", ", row_end, ") of a batch of ", rows);
  const std::int64_t N = (row_end - row_begin) * L, first = row_begin * L, last = row_end * L;
  MicroBatch mb;
  mb.batch.ids = b.ids.view({-1}).slice(first, last).clone();
  mb.batch.positions = b.positions.view({-1}).slice(first, last).clone();
  // Sequences never cross rows: the boundaries inside [first, last], shifted to start at 0.
  std::vector<std::int32_t> cu;
  const std::int32_t* all = b.cu_seqlens.data<std::int32_t>();
  for (std::int64_t i = 0; i < b.cu_seqlens.numel(); ++i)
    if (all[i] >= first && all[i] <= last) cu.push_back(static_cast<std::int32_t>(all[i] - first));
  mb.batch.cu_seqlens = Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(cu.size())}, cu);
  // The target of position n is the label of token n + 1; an example's first token is never a
  // label, so crossing into the next sequence reads an ignored label.
  mb.targets = Tensor::full({N}, static_cast<double>(data::kIgnoreLabel), DType::i64);
  const std::int64_t* labels = b.labels.data<std::int64_t>() + first;
  std::int64_t* t = mb.targets.data<std::int64_t>();
  for (std::int64_t n = 0; n + 1 < N; ++n) {
    t[n] = labels[n + 1];
    mb.loss_tokens += t[n] != data::kIgnoreLabel;
  }
  return mb;
}

}  // namespace hone::train

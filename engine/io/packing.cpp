// Packer: whole examples into fixed-length rows, first fit, with positions and cu_seqlens.
#include "hone/dataset.h"
#include "hone/error.h"

namespace hone::data {

double PackedBatch::efficiency() const {
  const std::int64_t total = ids.defined() ? ids.numel() : 0;
  return total ? static_cast<double>(real_tokens) / static_cast<double>(total) : 0.0;
}

Packer::Packer(std::int64_t rows, std::int64_t row_length, std::int32_t pad_id, bool one_per_row)
    : rows_(rows), row_length_(row_length), pad_id_(pad_id), one_per_row_(one_per_row) {
  HONE_CHECK(rows >= 1 && row_length >= 2, "packer", "need at least 1 row of 2 tokens; got ", rows,
             " rows of ", row_length);
}

PackedBatch Packer::next(const std::function<TokenizedExample()>& source) {
  std::vector<std::vector<TokenizedExample>> rows(static_cast<std::size_t>(rows_));
  std::vector<std::int64_t> used(static_cast<std::size_t>(rows_), 0);
  std::vector<TokenizedExample> waiting = std::move(waiting_), deferred;
  waiting_.clear();
  std::size_t taken = 0;
  std::int64_t misses = 0, free_rows = rows_;
  // Stop once every row is full or `rows_` examples in a row found no room.
  while (free_rows > 0 && misses < rows_) {
    TokenizedExample ex = taken < waiting.size() ? std::move(waiting[taken++]) : source();
    const auto len = static_cast<std::int64_t>(ex.ids.size());
    if (len == 0) break;  // the source has no more examples
    HONE_CHECK(len <= row_length_, "packer", "example", ex.line ? cat(" from line ", ex.line) : "",
               " has ", len, " tokens, more than the row length ", row_length_,
               "; set max_length to at most the row length");
    std::size_t r = 0;
    while (r < rows.size() && (used[r] + len > row_length_ || (one_per_row_ && !rows[r].empty()))) ++r;
    if (r == rows.size()) {
      deferred.push_back(std::move(ex));
      ++misses;
      continue;
    }
    used[r] += len;
    if (used[r] == row_length_ || one_per_row_) --free_rows;
    rows[r].push_back(std::move(ex));
    misses = 0;
  }
  // Examples not placed wait, in arrival order, ahead of new ones.
  for (; taken < waiting.size(); ++taken) deferred.push_back(std::move(waiting[taken]));
  waiting_ = std::move(deferred);

  PackedBatch b;
  b.ids = Tensor::full({rows_, row_length_}, pad_id_, DType::i64);
  b.labels = Tensor::full({rows_, row_length_}, static_cast<double>(kIgnoreLabel), DType::i64);
  b.positions = Tensor::zeros({rows_, row_length_}, DType::i64);
  std::int64_t* ids = b.ids.data<std::int64_t>();
  std::int64_t* labels = b.labels.data<std::int64_t>();
  std::int64_t* pos = b.positions.data<std::int64_t>();
  std::vector<std::int32_t> cu = {0};
  for (std::int64_t r = 0; r < rows_; ++r) {
    std::int64_t at = r * row_length_;
    for (const TokenizedExample& ex : rows[r]) {
      for (std::size_t i = 0; i < ex.ids.size(); ++i, ++at) {
        ids[at] = ex.ids[i];
        // The first token of an example is never a target: nothing before it in its sequence.
        labels[at] = i == 0 ? kIgnoreLabel : ex.labels[i];
        pos[at] = static_cast<std::int64_t>(i);
        b.loss_tokens += labels[at] != kIgnoreLabel ? 1 : 0;
      }
      cu.push_back(static_cast<std::int32_t>(at));
      ++b.examples;
      b.real_tokens += static_cast<std::int64_t>(ex.ids.size());
    }
    const std::int64_t end = (r + 1) * row_length_;
    for (std::int64_t p = 0; at + p < end; ++p) pos[at + p] = p;  // padding: its own sequence
    if (at < end) cu.push_back(static_cast<std::int32_t>(end));
  }
  b.cu_seqlens = Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(cu.size())}, cu);
  return b;
}

}  // namespace hone::data

// JsonlDataset: a line index over a JSONL file, seeded per-epoch order, resumable position.
#include <numeric>

#include "hone/dataset.h"
#include "hone/error.h"
#include "hone/random.h"

namespace hone::data {

namespace {
constexpr const char* kOp = "data";

bool blank(const std::string& s) {
  return s.find_first_not_of(" \t\r") == std::string::npos;
}
}  // namespace

JsonlDataset::JsonlDataset(std::string path, const TextEncoder& encoder, DataOptions options)
    : path_(std::move(path)), encoder_(encoder), options_(options) {
  HONE_CHECK(options_.max_length >= 1, kOp, "max_length must be at least 1 (got ", options_.max_length, ")");
  file_.open(path_, std::ios::binary);
  HONE_CHECK(file_.good(), kOp, "cannot open ", path_);
  std::string line;
  std::uint64_t offset = 0;
  std::int64_t number = 0;
  while (std::getline(file_, line)) {
    ++number;
    if (!blank(line)) {
      offsets_.push_back(offset);
      lines_.push_back(number);
    }
    offset += line.size() + 1;
  }
  HONE_CHECK(!offsets_.empty(), kOp, path_, ": no examples (the file is empty or blank)");
  file_.clear();
}

void JsonlDataset::make_order() {
  order_.resize(offsets_.size());
  std::iota(order_.begin(), order_.end(), 0);
  if (options_.shuffle) {
    // Fisher–Yates driven by Philox keyed on (seed, epoch): the same permutation on every run.
    const std::uint64_t key = options_.seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(position_.epoch + 1));
    for (std::int64_t k = size() - 1; k > 0; --k) {
      const Philox4 r = philox_block(key, static_cast<std::uint64_t>(k));
      const std::uint64_t x = (static_cast<std::uint64_t>(r.x[0]) << 32) | r.x[1];
      std::swap(order_[k], order_[x % static_cast<std::uint64_t>(k + 1)]);
    }
  }
  order_epoch_ = position_.epoch;
}

std::string JsonlDataset::read_line(std::int64_t i) {
  file_.clear();
  file_.seekg(static_cast<std::streamoff>(offsets_[i]));
  std::string line;
  std::getline(file_, line);
  HONE_CHECK(!file_.bad(), kOp, path_, ":", lines_[i], ": read failed");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

void JsonlDataset::seek(DataPosition position) {
  HONE_CHECK(position.epoch >= 0 && position.index >= 0 && position.index <= size(), kOp,
             "position (epoch ", position.epoch, ", index ", position.index, ") is outside ", path_,
             " (", size(), " examples)");
  position_ = position;
}

TokenizedExample JsonlDataset::next() {
  for (std::int64_t attempts = 0;; ++attempts) {
    HONE_CHECK(attempts <= size(), kOp, path_, ": no usable example in a whole pass (",
               stats_.bad_lines, " bad lines, ", stats_.dropped, " dropped as too long)");
    if (position_.index >= size()) position_ = {position_.epoch + 1, 0};
    if (order_epoch_ != position_.epoch) make_order();
    const std::int64_t i = order_[position_.index++];
    const std::string where = cat(path_, ":", lines_[i]);
    std::optional<TokenizedExample> ex;
    try {
      ex = tokenize_example(parse_example(read_line(i), options_.format, encoder_, where), encoder_,
                            options_, where);
    } catch (const Error&) {
      if (!options_.skip_bad_lines) throw;
      ++stats_.bad_lines;
      continue;
    }
    if (!ex) {
      ++stats_.dropped;
      continue;
    }
    ex->line = lines_[i];
    ++stats_.examples;
    stats_.truncated += ex->truncated ? 1 : 0;
    stats_.tokens += static_cast<std::int64_t>(ex->ids.size());
    for (std::int64_t l : ex->labels) stats_.loss_tokens += l != kIgnoreLabel ? 1 : 0;
    return std::move(*ex);
  }
}

}  // namespace hone::data

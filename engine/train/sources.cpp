// Example sources of the trainer: a JSONL file, or examples already in memory.
#include <numeric>

#include "hone/error.h"
#include "hone/random.h"
#include "hone/trainer.h"

namespace hone {

JsonlSource::JsonlSource(std::string path, const data::TextEncoder& encoder, data::DataOptions options)
    : dataset_(std::move(path), encoder, options) {}

VectorSource::VectorSource(std::vector<data::TokenizedExample> examples, std::uint64_t seed, bool shuffle)
    : examples_(std::move(examples)), seed_(seed), shuffle_(shuffle) {
  HONE_CHECK(!examples_.empty(), "train", "the example source is empty");
}

void VectorSource::seek(data::DataPosition p) {
  HONE_CHECK(p.epoch >= 0 && p.index >= 0 && p.index <= size(), "train", "data position (epoch ",
             p.epoch, ", index ", p.index, ") is outside a source of ", size(), " examples");
  position_ = p;
}

data::TokenizedExample VectorSource::next() {
  if (position_.index >= size()) position_ = {position_.epoch + 1, 0};
  if (order_epoch_ != position_.epoch) {
    order_.resize(examples_.size());
    std::iota(order_.begin(), order_.end(), 0);
    if (shuffle_) {  // Fisher-Yates with Philox draws keyed by (seed, epoch)
      for (std::int64_t i = size() - 1; i > 0; --i) {
        const Philox4 r = philox_block(seed_ ^ 0x5ca1ab1eull, (static_cast<std::uint64_t>(position_.epoch) << 32) + static_cast<std::uint64_t>(i));
        const auto j = static_cast<std::int64_t>(((static_cast<std::uint64_t>(r.x[0]) << 32) | r.x[1]) % static_cast<std::uint64_t>(i + 1));
        std::swap(order_[static_cast<std::size_t>(i)], order_[static_cast<std::size_t>(j)]);
      }
    }
    order_epoch_ = position_.epoch;
  }
  return examples_[static_cast<std::size_t>(order_[static_cast<std::size_t>(position_.index++)])];
}

}  // namespace hone

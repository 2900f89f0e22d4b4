// TokenizerEncoder: the data pipeline's TextEncoder backed by a hone::Tokenizer.
#pragma once
#include "hone/dataset.h"
#include "hone/tokenizer.h"

namespace hone::data {

class TokenizerEncoder : public TextEncoder {
 public:
  // [not null] `tokenizer` outlives the encoder. BOS is prepended to non-chat examples exactly
  // when the tokenizer's post-processor adds it; EOS is the first of the config's eos ids.
  explicit TokenizerEncoder(const Tokenizer& tokenizer);
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::optional<std::int32_t> bos_id() const override { return bos_; }
  std::int32_t eos_id() const override { return eos_; }

 private:
  const Tokenizer& tokenizer_;
  std::optional<std::int32_t> bos_;
  std::int32_t eos_ = 0;
};

}  // namespace hone::data

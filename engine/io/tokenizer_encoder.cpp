// TokenizerEncoder: hone::Tokenizer as the data pipeline's TextEncoder.
#include "io/tokenizer_encoder.h"

#include "hone/error.h"

namespace hone::data {

TokenizerEncoder::TokenizerEncoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {
  const std::vector<std::int32_t> bare = tokenizer.encode("", true);
  if (!bare.empty() && tokenizer.bos_id() && bare.front() == *tokenizer.bos_id()) bos_ = bare.front();
  const std::vector<std::int32_t> eos = tokenizer.eos_ids();
  HONE_CHECK(!eos.empty(), "data", "the tokenizer names no EOS token (tokenizer_config.json eos_token); "
             "examples need one to end");
  eos_ = eos.front();
}

std::vector<std::int32_t> TokenizerEncoder::encode(std::string_view text) const {
  return tokenizer_.encode(text, false);
}

}  // namespace hone::data

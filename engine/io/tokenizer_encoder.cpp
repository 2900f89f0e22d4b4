// TokenizerEncoder: hone::Tokenizer as the data pipeline's TextEncoder.
#include "hone/tokenizer_encoder.h"

#include "hone/error.h"

namespace hone::data {

TokenizerEncoder::TokenizerEncoder(const Tokenizer& tokenizer, const std::string& chat_template)
    : tokenizer_(tokenizer) {
  const std::vector<std::int32_t> bare = tokenizer.encode("", true);
  if (!bare.empty() && tokenizer.bos_id() && bare.front() == *tokenizer.bos_id()) bos_ = bare.front();
  const std::vector<std::int32_t> eos = tokenizer.eos_ids();
  HONE_CHECK(!eos.empty(), "data", "the tokenizer names no EOS token (tokenizer_config.json eos_token); "
             "examples need one to end");
  eos_ = eos.front();
  // The templates see the special tokens as strings, like transformers passes them.
  std::string bos_token = tokenizer.bos_id() ? tokenizer.id_to_token(*tokenizer.bos_id()) : std::string();
  std::string eos_token = tokenizer.id_to_token(eos_);
  if (chat_template != "auto") {
    chat_ = ChatTemplate::by_name(chat_template, std::move(bos_token), std::move(eos_token));
    return;
  }
  try {
    chat_ = ChatTemplate::detect(tokenizer.chat_template(), std::move(bos_token), std::move(eos_token));
  } catch (const Error& e) {
    chat_error_ = e.what();
  }
}

std::vector<std::int32_t> TokenizerEncoder::encode(std::string_view text) const {
  return tokenizer_.encode(text, false);
}

std::vector<Segment> TokenizerEncoder::render_chat(const std::vector<Message>& messages) const {
  if (!chat_) fail("data", cat("messages data needs a chat template: ", chat_error_));
  return chat_->render(messages);
}

}  // namespace hone::data

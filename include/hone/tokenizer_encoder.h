// TokenizerEncoder: the data pipeline's TextEncoder backed by a hone::Tokenizer.
#pragma once
#include <optional>
#include <string>

#include "hone/chat_template.h"
#include "hone/dataset.h"
#include "hone/tokenizer.h"

namespace hone::data {

class TokenizerEncoder : public TextEncoder {
 public:
  // [not null] `tokenizer` outlives the encoder. BOS is prepended to non-chat examples exactly
  // when the tokenizer's post-processor adds it; EOS is the first of the config's eos ids.
  // chat_template "auto" recognises the family of the tokenizer's Jinja template; a family
  // name (chatml, qwen3, …) overrides it (an unknown name throws here). A template that is
  // missing or not recognised only fails when a conversation is rendered, so that non-chat
  // data still works with such a tokenizer.
  explicit TokenizerEncoder(const Tokenizer& tokenizer, const std::string& chat_template = "auto");
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::optional<std::int32_t> bos_id() const override { return bos_; }
  std::int32_t eos_id() const override { return eos_; }
  // Renders without a generation prompt (training data ends with the assistant's turn).
  std::vector<Segment> render_chat(const std::vector<Message>& messages) const override;
  // The template in use, or nullopt (with the reason in chat_error()).
  const std::optional<ChatTemplate>& chat() const { return chat_; }
  const std::string& chat_error() const { return chat_error_; }

 private:
  const Tokenizer& tokenizer_;
  std::optional<std::int32_t> bos_;
  std::int32_t eos_ = 0;
  std::optional<ChatTemplate> chat_;
  std::string chat_error_;  // why chat_ is empty
};

}  // namespace hone::data

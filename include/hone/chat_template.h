// Chat templates without Jinja: the common template families are recognised from the
// tokenizer's Jinja text and rendered in code, with the same output as the Jinja template
// rendered the way transformers does (messages, add_generation_prompt, bos_token, eos_token and
// Qwen3's enable_thinking). Templates outside these families are refused, never approximated;
// a family can then be chosen by name.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hone/dataset.h"

namespace hone {

enum class ChatFamily {
  chatml,   // <|im_start|>role\n…<|im_end|>\n, no default system prompt
  qwen3,    // ChatML with <think> blocks: earlier turns' reasoning dropped, enable_thinking
  llama3,   // <|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|> (Llama 3.0: contents trimmed)
  inst,     // Mistral-7B-Instruct v0.1: [INST] … [/INST]answer</s> , user/assistant only
  llama2,   // Llama 2 chat: BOS per turn, system in <<SYS>> inside the first user turn
  mistral,  // later Mistral: [INST] …[/INST] answer</s>, system text in a final user turn only
};

// The family's name as by_name() and the command line accept it ("chatml", "qwen3", …).
const char* chat_family_name(ChatFamily family);
// Every family name, comma separated, for help texts and error messages.
std::string chat_family_names();

struct ChatOptions {
  // Append the header that opens the assistant's reply (Llama 3.0's first template, when
  // detected, always does).
  bool add_generation_prompt = false;
  // Qwen3: false puts an empty <think></think> block after the generation prompt; unset and
  // true leave it to the model. Ignored by the other families.
  std::optional<bool> enable_thinking;
};

class ChatTemplate {
 public:
  // Recognises the family of a Jinja chat template. bos_token/eos_token are the tokenizer's
  // special token strings ("" when it has none). Throws hone::Error when the text matches no
  // family (or is empty), naming the families that can be chosen by name instead.
  static ChatTemplate detect(const std::string& jinja_text, std::string bos_token, std::string eos_token);
  // A family by name (see chat_family_name); an unknown name is an error listing the names.
  static ChatTemplate by_name(std::string_view name, std::string bos_token, std::string eos_token);
  ChatTemplate(ChatFamily family, std::string bos_token, std::string eos_token);

  ChatFamily family() const { return family_; }
  const char* name() const { return chat_family_name(family_); }

  // The conversation as text segments; the segments with loss are what the model writes after
  // the generation prompt in each assistant turn: its content (with Qwen3's think block) and
  // the end-of-turn token. Adjacent pieces with the same flag are merged. Role orders the
  // Jinja template rejects throw hone::Error with the template's message.
  std::vector<data::Segment> render(const std::vector<data::Message>& messages,
                                    const ChatOptions& options = {}) const;
  // The segments concatenated: the string the Jinja template renders.
  std::string render_text(const std::vector<data::Message>& messages, const ChatOptions& options = {}) const;

 private:
  ChatFamily family_;
  std::string bos_, eos_;
  bool prompt_always_ = false;  // llama3: the template adds the assistant header regardless
};

}  // namespace hone

// The text of one sequence as it is generated: which part is final (safe to stream), and where
// a stop string cuts it. Text is decoded from all ids so far each time (the tokenizer's decoder
// without clean-up, special tokens skipped), so a character split across tokens and a stop
// string split across tokens are both seen whole.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hone {
class Tokenizer;
}

namespace hone::infer {

class TextStream {
 public:
  // [not null] tokenizer outlives the stream.
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stops);
  // Adds a token; returns the text that became final with it. A trailing incomplete UTF-8
  // character (decoded as U+FFFD) and a tail that could begin a stop string are held back.
  std::string push(std::int32_t id);
  // True once a stop string has appeared; text() then ends just before it.
  bool stopped() const { return stopped_; }
  // The rest of the text at the end of generation (what was held back).
  std::string finish();
  // The whole text: cut before the first stop string, or everything decoded so far.
  const std::string& text() const { return text_; }

 private:
  const Tokenizer& tok_;
  std::vector<std::string> stops_;
  std::vector<std::int32_t> ids_;
  std::string text_;
  std::size_t emitted_ = 0;  // bytes of text_ already returned
  bool stopped_ = false;
};

}  // namespace hone::infer

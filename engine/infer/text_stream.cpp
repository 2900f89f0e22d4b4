// Streaming text with stop strings (see text_stream.h).
#include "infer/text_stream.h"

#include <algorithm>

#include "hone/error.h"
#include "hone/tokenizer.h"

namespace hone::infer {

namespace {
const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD: what an incomplete character decodes to
}

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stops)
    : tok_(tokenizer), stops_(std::move(stops)) {
  for (const std::string& s : stops_) HONE_CHECK(!s.empty(), "generate", "a stop string is empty");
}

std::string TextStream::push(std::int32_t id) {
  if (stopped_) return {};
  ids_.push_back(id);
  text_ = tok_.decode_raw(ids_, /*skip_special_tokens=*/true);
  // The earliest stop string wins; a new one can only start where the final text ends or later,
  // since the text before emitted_ was already checked.
  std::size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    const std::size_t from = emitted_ >= s.size() ? emitted_ - s.size() + 1 : 0;
    const std::size_t at = text_.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  std::size_t safe = text_.size();
  if (cut != std::string::npos) {
    stopped_ = true;
    text_.resize(cut);
    safe = cut;
  } else {
    while (safe >= kReplacement.size() && text_.compare(safe - kReplacement.size(), kReplacement.size(), kReplacement) == 0)
      safe -= kReplacement.size();
    // Hold back the longest tail that is a proper prefix of a stop string.
    std::size_t hold = 0;
    for (const std::string& s : stops_)
      for (std::size_t n = std::min(s.size() - 1, safe); n > hold; --n)
        if (text_.compare(safe - n, n, s, 0, n) == 0) {
          hold = n;
          break;
        }
    safe -= hold;
  }
  if (safe <= emitted_) return {};
  std::string out = text_.substr(emitted_, safe - emitted_);
  emitted_ = safe;
  return out;
}

std::string TextStream::finish() {
  if (emitted_ >= text_.size()) return {};
  std::string out = text_.substr(emitted_);
  emitted_ = text_.size();
  return out;
}

}  // namespace hone::infer

// Chat template families recognised from the Jinja text and rendered in code. Each renderer
// follows its Jinja template statement by statement (the Python string methods the templates
// call are reproduced below), so that render_text equals the Jinja output byte for byte.
#include "hone/chat_template.h"

#include <array>
#include <cstdint>

#include "hone/error.h"

namespace hone {

namespace {

constexpr const char* kOp = "chat";
using data::Message;
using data::Segment;

constexpr std::array<ChatFamily, 6> kFamilies = {ChatFamily::chatml, ChatFamily::qwen3, ChatFamily::llama3,
                                                 ChatFamily::inst,   ChatFamily::llama2, ChatFamily::mistral};

// ---- Python's str methods on UTF-8 -------------------------------------------------------

// Python's str.isspace(): Unicode White_Space plus the separators U+001C…U+001F.
bool py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Length of the UTF-8 sequence starting with byte b (1 for stray bytes, which are never space).
std::size_t utf8_length(unsigned char b) {
  if (b >= 0xF0 && b < 0xF8) return 4;
  if (b >= 0xE0) return b < 0xF0 ? 3 : 1;
  if (b >= 0xC0) return 2;
  return 1;
}

char32_t decode_at(std::string_view s, std::size_t i, std::size_t n) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (n == 1) return b0 < 0x80 ? b0 : 0xFFFD;
  char32_t c = b0 & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return c;
}

// str.strip() with no argument (Jinja's trim filter): Unicode whitespace on both ends.
std::string py_strip(std::string_view s) {
  std::size_t begin = 0;
  while (begin < s.size()) {
    const std::size_t n = utf8_length(static_cast<unsigned char>(s[begin]));
    if (begin + n > s.size() || !py_space(decode_at(s, begin, n))) break;
    begin += n;
  }
  std::size_t end = s.size();
  while (end > begin) {
    std::size_t start = end - 1;  // back up to the lead byte of the last character
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    const std::size_t n = utf8_length(static_cast<unsigned char>(s[start]));
    if (start + n != end || !py_space(decode_at(s, start, n))) break;
    end = start;
  }
  return std::string(s.substr(begin, end - begin));
}

// str.lstrip('\n') / str.rstrip('\n') / str.strip('\n').
std::string lstrip_nl(std::string_view s) {
  const std::size_t b = s.find_first_not_of('\n');
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b));
}
std::string rstrip_nl(std::string_view s) {
  const std::size_t e = s.find_last_not_of('\n');
  return e == std::string_view::npos ? std::string() : std::string(s.substr(0, e + 1));
}
std::string strip_nl(std::string_view s) { return lstrip_nl(rstrip_nl(s)); }

// s.split(sep)[0] and s.split(sep)[-1].
std::string_view before_first(std::string_view s, std::string_view sep) { return s.substr(0, s.find(sep)); }
std::string_view after_last(std::string_view s, std::string_view sep) {
  const std::size_t p = s.rfind(sep);
  return p == std::string_view::npos ? s : s.substr(p + sep.size());
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// ---- rendering ---------------------------------------------------------------------------

// Appends text, merging it into the previous segment when the loss flag is the same, so that
// segment boundaries (which are token boundaries) are only where the loss changes.
class Out {
 public:
  void add(std::string_view text, bool loss = false) {
    if (text.empty()) return;
    if (!segs_.empty() && segs_.back().loss == loss) segs_.back().text += text;
    else segs_.push_back({std::string(text), loss});
  }
  std::vector<Segment> take() { return std::move(segs_); }

 private:
  std::vector<Segment> segs_;
};

void render_chatml(const std::vector<Message>& ms, const ChatOptions& o, Out& out) {
  for (const Message& m : ms) {
    if (m.role == "assistant") {
      out.add("<|im_start|>assistant\n");
      out.add(m.content + "<|im_end|>", true);
      out.add("\n");
    } else {
      out.add("<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n");
    }
  }
  if (o.add_generation_prompt) out.add("<|im_start|>assistant\n");
}

// Qwen3: the reasoning of assistant turns after the last real user query is shown in a think
// block (always for the final turn, then empty when there is none); earlier turns show only
// their answer. Reasoning comes from reasoning_content or from a <think>…</think> prefix of the
// content. (hone's Message cannot tell an empty reasoning_content from an absent one: both
// count as absent.)
void render_qwen3(const std::vector<Message>& ms, const ChatOptions& o, Out& out) {
  const std::size_t n = ms.size();
  if (ms[0].role == "system") out.add("<|im_start|>system\n" + ms[0].content + "<|im_end|>\n");
  std::size_t last_query = n - 1;
  for (std::size_t k = n; k-- > 0;) {
    const std::string& c = ms[k].content;
    if (ms[k].role == "user" && !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
      last_query = k;
      break;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    const Message& m = ms[i];
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      out.add("<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n");
    } else if (m.role == "assistant") {
      std::string content = m.content, reasoning;
      if (!m.reasoning_content.empty()) {
        reasoning = m.reasoning_content;
      } else if (m.content.find("</think>") != std::string::npos) {
        content = lstrip_nl(after_last(m.content, "</think>"));
        reasoning = lstrip_nl(after_last(rstrip_nl(before_first(m.content, "</think>")), "<think>"));
      }
      out.add("<|im_start|>assistant\n");
      if (i > last_query && (i + 1 == n || !reasoning.empty()))
        out.add("<think>\n" + strip_nl(reasoning) + "\n</think>\n\n" + lstrip_nl(content), true);
      else
        out.add(content, true);
      out.add("<|im_end|>", true);
      out.add("\n");
    }
  }
  if (o.add_generation_prompt) {
    out.add("<|im_start|>assistant\n");
    if (o.enable_thinking == false) out.add("<think>\n\n</think>\n\n");
  }
}

void render_llama3(const std::vector<Message>& ms, const ChatOptions& o, bool prompt_always,
                   const std::string& bos, Out& out) {
  for (std::size_t i = 0; i < ms.size(); ++i) {
    out.add((i == 0 ? bos : std::string()) + "<|start_header_id|>" + ms[i].role + "<|end_header_id|>\n\n");
    const bool loss = ms[i].role == "assistant";
    out.add(py_strip(ms[i].content) + "<|eot_id|>", loss);
  }
  if (prompt_always || o.add_generation_prompt) out.add("<|start_header_id|>assistant<|end_header_id|>\n\n");
}

void render_inst(const std::vector<Message>& ms, const std::string& bos, const std::string& eos, Out& out) {
  out.add(bos);
  for (std::size_t i = 0; i < ms.size(); ++i) {
    const Message& m = ms[i];
    if ((m.role == "user") != (i % 2 == 0))
      fail(kOp, cat("Conversation roles must alternate user/assistant/user/assistant/... (messages[", i,
                    "] is ", m.role, ")"));
    if (m.role == "user") {
      out.add("[INST] " + m.content + " [/INST]");
    } else if (m.role == "assistant") {
      out.add(m.content + eos, true);
      out.add(" ");
    } else {
      fail(kOp, cat("Only user and assistant roles are supported! (messages[", i, "] is ", m.role, ")"));
    }
  }
}

// The optional leading system message and the turns after it, as the Llama 2 and later
// Mistral templates split them.
std::size_t system_prefix(const std::vector<Message>& ms) { return ms[0].role == "system" ? 1 : 0; }

void render_llama2(const std::vector<Message>& ms, const std::string& bos, const std::string& eos, Out& out) {
  const std::size_t first = system_prefix(ms);
  for (std::size_t i = first; i < ms.size(); ++i) {
    const Message& m = ms[i];
    if ((m.role == "user") != ((i - first) % 2 == 0))
      fail(kOp, cat("Roles must alternate user/assistant after an optional system message (messages[", i,
                    "] is ", m.role, ")"));
    if (m.role == "user") {
      std::string text = m.content;
      if (i == first && first == 1) text = "<<SYS>>\n" + ms[0].content + "\n<</SYS>>\n\n" + text;
      out.add(bos + "[INST] " + py_strip(text) + " [/INST]");
    } else if (m.role == "assistant") {
      out.add(" " + py_strip(m.content) + " " + eos, true);
    } else {
      fail(kOp, cat("Unsupported role ", m.role, " (messages[", i, "])"));
    }
  }
}

void render_mistral(const std::vector<Message>& ms, const std::string& bos, const std::string& eos, Out& out) {
  const std::size_t first = system_prefix(ms);
  out.add(bos);
  for (std::size_t i = first; i < ms.size(); ++i) {
    const Message& m = ms[i];
    if ((m.role == "user") != ((i - first) % 2 == 0))
      fail(kOp, cat("Roles must alternate user/assistant after an optional system message (messages[", i,
                    "] is ", m.role, ")"));
    if (m.role == "user") {
      // Only a final user message gets the system text: a conversation that ends with an
      // answer shows none, as the template renders it.
      const bool with_system = first == 1 && i + 1 == ms.size();
      out.add("[INST] " + (with_system ? ms[0].content + "\n\n" : std::string()) + m.content + "[/INST]");
    } else if (m.role == "assistant") {
      out.add(" " + m.content + eos, true);
    } else {
      fail(kOp, cat("Unsupported role ", m.role, " (messages[", i, "])"));
    }
  }
}

// ---- recognition -------------------------------------------------------------------------

bool has(const std::string& text, std::string_view what) { return text.find(what) != std::string::npos; }

// A literal system prompt right after "<|im_start|>system" ("\n" written as an escape or a
// newline, then text rather than the end of a string or an expression): a default system
// prompt the plain ChatML family does not add.
bool has_default_system(const std::string& t) {
  const std::string marker = "<|im_start|>system";
  for (std::size_t p = t.find(marker); p != std::string::npos; p = t.find(marker, p + 1)) {
    std::size_t q = p + marker.size();
    if (t.compare(q, 2, "\\n") == 0) q += 2;
    else if (q < t.size() && t[q] == '\n') q += 1;
    if (q < t.size() && t[q] != '\'' && t[q] != '"' && t[q] != '{') return true;
  }
  return false;
}

[[noreturn]] void not_recognised(const std::string& t, const std::string& why) {
  std::string head = t.substr(0, 80);
  for (char& c : head)
    if (c == '\n') c = ' ';
  fail(kOp, cat("chat template not recognised: ", why, " (template begins \"", head, t.size() > 80 ? "…" : "",
                "\"); choose a family by name instead: ", chat_family_names()));
}

}  // namespace

const char* chat_family_name(ChatFamily family) {
  switch (family) {
    case ChatFamily::chatml: return "chatml";
    case ChatFamily::qwen3: return "qwen3";
    case ChatFamily::llama3: return "llama3";
    case ChatFamily::inst: return "inst";
    case ChatFamily::llama2: return "llama2";
    case ChatFamily::mistral: return "mistral";
  }
  return "?";
}

std::string chat_family_names() {
  std::string s;
  for (ChatFamily f : kFamilies) s += (s.empty() ? "" : ", ") + std::string(chat_family_name(f));
  return s;
}

ChatTemplate::ChatTemplate(ChatFamily family, std::string bos_token, std::string eos_token)
    : family_(family), bos_(std::move(bos_token)), eos_(std::move(eos_token)) {}

ChatTemplate ChatTemplate::by_name(std::string_view name, std::string bos_token, std::string eos_token) {
  for (ChatFamily f : kFamilies)
    if (name == chat_family_name(f)) return ChatTemplate(f, std::move(bos_token), std::move(eos_token));
  fail(kOp, cat("unknown chat template family '", name, "'; expected one of ", chat_family_names()));
}

ChatTemplate ChatTemplate::detect(const std::string& t, std::string bos_token, std::string eos_token) {
  HONE_CHECK(!t.empty(), kOp, "the tokenizer has no chat template (tokenizer_config.json chat_template or "
             "chat_template.jinja); choose a family by name: ", chat_family_names());
  auto make = [&](ChatFamily f) { return ChatTemplate(f, std::move(bos_token), std::move(eos_token)); };
  if (has(t, "<|im_start|>")) {
    if (has(t, "enable_thinking") && has(t, "last_query_index") && has(t, "reasoning_content"))
      return make(ChatFamily::qwen3);
    if (has(t, "<think>")) not_recognised(t, "a ChatML template with <think> blocks that is not Qwen3's");
    if (has_default_system(t)) not_recognised(t, "a ChatML template with a default system prompt");
    return make(ChatFamily::chatml);
  }
  if (has(t, "<|start_header_id|>")) {
    if (has(t, "Cutting Knowledge Date") || has(t, "date_string"))
      not_recognised(t, "a Llama 3.1+ template with the dated system header");
    ChatTemplate c = make(ChatFamily::llama3);
    // Llama 3.0's first published template adds the assistant header unconditionally.
    c.prompt_always_ = !has(t, "add_generation_prompt");
    return c;
  }
  if (has(t, "[INST]")) {
    if (has(t, "<<SYS>>")) return make(ChatFamily::llama2);
    if (has(t, "system") && has(t, "loop.last")) return make(ChatFamily::mistral);
    if (!has(t, "system") && (has(t, "eos_token + ' '") || has(t, "eos_token + \" \"")))
      return make(ChatFamily::inst);
    not_recognised(t, "an [INST] template of no known variant");
  }
  not_recognised(t, "none of the markers <|im_start|> (ChatML), <|start_header_id|> (Llama 3), [INST] "
                    "(Mistral, Llama 2) found");
}

std::vector<Segment> ChatTemplate::render(const std::vector<Message>& messages, const ChatOptions& options) const {
  HONE_CHECK(!messages.empty(), kOp, "a conversation needs at least one message");
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    HONE_CHECK(r == "system" || r == "user" || r == "assistant", kOp, "messages[", i, "].role is \"", r,
               "\"; expected system, user or assistant");
  }
  Out out;
  switch (family_) {
    case ChatFamily::chatml: render_chatml(messages, options, out); break;
    case ChatFamily::qwen3: render_qwen3(messages, options, out); break;
    case ChatFamily::llama3: render_llama3(messages, options, prompt_always_, bos_, out); break;
    case ChatFamily::inst: render_inst(messages, bos_, eos_, out); break;
    case ChatFamily::llama2: render_llama2(messages, bos_, eos_, out); break;
    case ChatFamily::mistral: render_mistral(messages, bos_, eos_, out); break;
  }
  return out.take();
}

std::string ChatTemplate::render_text(const std::vector<Message>& messages, const ChatOptions& options) const {
  std::string text;
  for (const Segment& s : render(messages, options)) text += s.text;
  return text;
}

}  // namespace hone

// JSONL example forms → text segments with loss flags → token ids and labels.
#include <nlohmann/json.hpp>

#include <utility>
#include <vector>

#include "hone/dataset.h"
#include "hone/error.h"

namespace hone::data {

namespace {

constexpr const char* kOp = "data";

// The Stanford Alpaca prompt wrapper, with and without an input field.
std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  if (input.empty())
    return "Below is an instruction that describes a task. Write a response that appropriately "
           "completes the request.\n\n### Instruction:\n" + instruction + "\n\n### Response:\n";
  return "Below is an instruction that describes a task, paired with an input that provides further "
         "context. Write a response that appropriately completes the request.\n\n### Instruction:\n" +
         instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n";
}

const std::string& string_field(const nlohmann::json& obj, const char* key, const std::string& where,
                                const std::string& context = "") {
  const auto it = obj.find(key);
  HONE_CHECK(it != obj.end(), kOp, where, ": missing field \"", context, key, "\"");
  HONE_CHECK(it->is_string(), kOp, where, ": field \"", context, key, "\" must be a string, got ",
             it->type_name());
  return it->get_ref<const std::string&>();
}

Format detect(const nlohmann::json& obj, const std::string& where) {
  if (obj.contains("messages")) return Format::messages;
  if (obj.contains("prompt") && obj.contains("completion")) return Format::prompt_completion;
  if (obj.contains("instruction") && obj.contains("output")) return Format::alpaca;
  if (obj.contains("text")) return Format::text;
  std::string keys;
  for (auto it = obj.begin(); it != obj.end(); ++it) keys += (keys.empty() ? "" : ", ") + it.key();
  fail(kOp, cat(where, ": cannot tell the format from the fields {", keys,
                "}; expected text, prompt+completion, messages or instruction+output"));
}

std::vector<Message> parse_messages(const nlohmann::json& obj, const std::string& where) {
  const auto& arr = obj.at("messages");
  HONE_CHECK(arr.is_array() && !arr.empty(), kOp, where, ": field \"messages\" must be a non-empty array");
  std::vector<Message> out;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const std::string ctx = cat("messages[", i, "].");
    HONE_CHECK(arr[i].is_object(), kOp, where, ": ", ctx.substr(0, ctx.size() - 1), " must be an object");
    Message m;
    m.role = string_field(arr[i], "role", where, ctx);
    m.content = string_field(arr[i], "content", where, ctx);
    if (arr[i].contains("reasoning_content"))
      m.reasoning_content = string_field(arr[i], "reasoning_content", where, ctx);
    HONE_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant", kOp, where, ": ", ctx,
               "role is \"", m.role, "\"; expected system, user or assistant");
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

Format parse_format(std::string_view name) {
  if (name == "auto") return Format::auto_detect;
  if (name == "text") return Format::text;
  if (name == "prompt_completion") return Format::prompt_completion;
  if (name == "messages") return Format::messages;
  if (name == "alpaca") return Format::alpaca;
  fail(kOp, cat("unknown data format '", name, "' (auto, text, prompt_completion, messages, alpaca)"));
}

const char* format_name(Format f) {
  switch (f) {
    case Format::auto_detect: return "auto";
    case Format::text: return "text";
    case Format::prompt_completion: return "prompt_completion";
    case Format::messages: return "messages";
    case Format::alpaca: return "alpaca";
  }
  return "?";
}

std::vector<Segment> TextEncoder::render_chat(const std::vector<Message>&) const {
  fail(kOp, "this tokenizer has no chat template; messages data needs one");
}

Example parse_example(std::string_view line, Format format, const TextEncoder& encoder,
                      const std::string& where) {
  nlohmann::json obj;
  try {
    obj = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::parse_error& e) {
    fail(kOp, cat(where, ": invalid JSON (", e.what(), ")"));
  }
  HONE_CHECK(obj.is_object(), kOp, where, ": expected a JSON object, got ", obj.type_name());
  const Format f = format == Format::auto_detect ? detect(obj, where) : format;
  Example ex;
  switch (f) {
    case Format::text:
      ex.segments = {{string_field(obj, "text", where), true}};
      break;
    case Format::prompt_completion:
      ex.segments = {{string_field(obj, "prompt", where), false},
                     {string_field(obj, "completion", where), true}};
      break;
    case Format::alpaca: {
      const std::string input = obj.contains("input") ? string_field(obj, "input", where) : "";
      ex.segments = {{alpaca_prompt(string_field(obj, "instruction", where), input), false},
                     {string_field(obj, "output", where), true}};
      break;
    }
    case Format::messages:
      HONE_CHECK(obj.contains("messages"), kOp, where, ": missing field \"messages\"");
      ex.segments = encoder.render_chat(parse_messages(obj, where));
      ex.chat = true;
      break;
    case Format::auto_detect:
      break;
  }
  return ex;
}

namespace {

// The ids of the segments' concatenated text — what the model's tokenizer gives for the whole
// string, as the Hugging Face stack encodes a rendered conversation or prompt + completion —
// each with its segment's loss flag. Where encoding segment by segment gives the same ids, the
// boundaries are exact; otherwise a boundary falls after the longest run of ids shared by the
// whole and by the text before the boundary, so a token that spans it (e.g. " tac" of
// "cat: " + "tac") belongs to the later segment.
std::vector<std::pair<std::int32_t, bool>> encode_segments(const std::vector<Segment>& segments,
                                                          const TextEncoder& encoder) {
  std::vector<std::pair<std::int32_t, bool>> separate;
  std::string text;
  for (const Segment& s : segments) {
    for (std::int32_t id : encoder.encode(s.text)) separate.emplace_back(id, s.loss);
    text += s.text;
  }
  if (segments.size() < 2) return separate;
  const std::vector<std::int32_t> whole = encoder.encode(text);
  bool same = whole.size() == separate.size();
  for (std::size_t i = 0; same && i < whole.size(); ++i) same = whole[i] == separate[i].first;
  if (same) return separate;
  std::vector<std::pair<std::int32_t, bool>> out;
  std::string prefix;
  std::size_t at = 0;  // ids of `whole` assigned so far
  for (std::size_t s = 0; s < segments.size(); ++s) {
    prefix += segments[s].text;
    std::size_t end = whole.size();
    if (s + 1 < segments.size()) {
      const std::vector<std::int32_t> p = encoder.encode(prefix);
      end = 0;
      while (end < p.size() && end < whole.size() && p[end] == whole[end]) ++end;
      end = std::max(end, at);
    }
    for (; at < end; ++at) out.emplace_back(whole[at], segments[s].loss);
  }
  return out;
}

}  // namespace

std::optional<TokenizedExample> tokenize_example(const Example& example, const TextEncoder& encoder,
                                                 const DataOptions& options, const std::string& where) {
  TokenizedExample out;
  auto push = [&](std::int32_t id, bool loss) {
    out.ids.push_back(id);
    out.labels.push_back(loss || options.loss_on_prompt ? id : kIgnoreLabel);
  };
  if (!example.chat)
    if (const auto bos = encoder.bos_id()) push(*bos, false);
  const std::vector<std::pair<std::int32_t, bool>> tokens = encode_segments(example.segments, encoder);
  for (const auto& [id, loss] : tokens) push(id, loss);
  if (!example.chat) push(encoder.eos_id(), true);  // the model learns to stop
  const auto n = static_cast<std::int64_t>(out.ids.size());
  if (n > options.max_length) {
    switch (options.truncation) {
      case Truncation::drop: return std::nullopt;
      case Truncation::error:
        fail(kOp, cat(where, ": example has ", n, " tokens, more than max_length ", options.max_length));
      case Truncation::truncate:
        out.ids.resize(static_cast<std::size_t>(options.max_length));
        out.labels.resize(static_cast<std::size_t>(options.max_length));
        out.truncated = true;
        break;
    }
  }
  return out;
}

}  // namespace hone::data

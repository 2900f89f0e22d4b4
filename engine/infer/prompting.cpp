// Task files, prompt templates, few-shot demonstrations and chat rendering
// (include/hone/evaluate.h).
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hone/chat_template.h"
#include "hone/error.h"
#include "hone/evaluate.h"
#include "hone/random.h"
#include "hone/tokenizer.h"
#include "hone/tokenizer_encoder.h"

namespace hone {

namespace {
constexpr const char* kOp = "prompt";

std::string field_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();  // numbers and booleans as JSON writes them
}
}  // namespace

std::vector<TaskExample> read_task(const std::string& path, const std::string& target_field) {
  std::ifstream in(path);
  HONE_CHECK(in.good(), "eval", "task file ", path, " cannot be read");
  std::vector<TaskExample> out;
  std::string line;
  for (std::int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = cat(path, ":", n);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("eval", cat(where, ": not valid JSON: ", e.what()));
    }
    HONE_CHECK(j.is_object(), "eval", where, ": a line must be a JSON object");
    TaskExample ex;
    ex.line = n;
    for (const auto& [key, value] : j.items()) {
      if (key == "choices") {
        HONE_CHECK(value.is_array() && !value.empty(), "eval", where, ": 'choices' must be a non-empty list of strings");
        for (const auto& c : value) {
          HONE_CHECK(c.is_string(), "eval", where, ": 'choices' must be a list of strings");
          ex.choices.push_back(c.get<std::string>());
        }
      } else if (value.is_string() || value.is_number() || value.is_boolean()) {
        ex.fields[key] = field_text(value);
      }
    }
    HONE_CHECK(j.contains(target_field), "eval", where, ": no target field '", target_field, "'");
    const nlohmann::json& t = j[target_field];
    if (!ex.choices.empty()) {
      const auto n_choices = static_cast<std::int64_t>(ex.choices.size());
      if (t.is_number_integer()) {
        ex.answer = t.get<std::int64_t>();
      } else if (t.is_string()) {
        const auto it = std::find(ex.choices.begin(), ex.choices.end(), t.get<std::string>());
        HONE_CHECK(it != ex.choices.end(), "eval", where, ": target '", t.get<std::string>(), "' is not one of the choices");
        ex.answer = it - ex.choices.begin();
      }
      HONE_CHECK(ex.answer >= 0 && ex.answer < n_choices, "eval", where, ": target ", t.dump(),
                 " is not a choice index in [0, ", n_choices, ") or a choice's text");
      ex.target = ex.choices[static_cast<std::size_t>(ex.answer)];
    } else {
      HONE_CHECK(t.is_string() || t.is_number() || t.is_boolean(), "eval", where, ": target field '", target_field,
                 "' must be text");
      ex.target = field_text(t);
    }
    out.push_back(std::move(ex));
  }
  HONE_CHECK(!out.empty(), "eval", "task file ", path, " has no examples");
  return out;
}

std::string fill_template(const std::string& text, const std::map<std::string, std::string>& fields) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if ((ch == '{' || ch == '}') && i + 1 < text.size() && text[i + 1] == ch) {
      out += ch;
      ++i;
    } else if (ch == '{') {
      const std::size_t end = text.find('}', i);
      HONE_CHECK(end != std::string::npos, kOp, "template '", text, "': '{' at ", i, " is not closed");
      const std::string name = text.substr(i + 1, end - i - 1);
      const auto it = fields.find(name);
      if (it == fields.end()) {
        std::string have;
        for (const auto& [k, v] : fields) have += (have.empty() ? "" : ", ") + k;
        fail(kOp, cat("template '", text, "' uses field '", name, "', which the example lacks (it has: ", have, ")"));
      }
      out += it->second;
      i = end;
    } else {
      out += ch;
    }
  }
  return out;
}

Prompter::Prompter(PromptFormat format, std::vector<TaskExample> pool) : format_(std::move(format)), pool_(std::move(pool)) {
  HONE_CHECK(format_.shots >= 0, kOp, "shots ", format_.shots, " must be ≥ 0");
}

std::vector<std::size_t> Prompter::demonstrations(const TaskExample& query, std::uint64_t index) const {
  if (format_.shots == 0) return {};
  std::vector<std::size_t> candidates;
  for (std::size_t i = 0; i < pool_.size(); ++i)
    if (pool_[i].fields != query.fields) candidates.push_back(i);
  const auto k = static_cast<std::size_t>(format_.shots);
  HONE_CHECK(candidates.size() >= k, kOp, format_.shots, " shots need ", format_.shots,
             " pool examples other than the query; the pool offers ", candidates.size());
  // A partial Fisher–Yates shuffle on Philox words: stream `index`, word j for position j.
  for (std::size_t j = 0; j < k; ++j) {
    const Philox4 b = philox_block(format_.seed, (index << 32) + j / 4);
    const std::size_t pick = j + b.x[j % 4] % (candidates.size() - j);
    std::swap(candidates[j], candidates[pick]);
  }
  candidates.resize(k);
  return candidates;
}

std::string Prompter::render(const TaskExample& query, std::uint64_t index) const {
  std::string out;
  if (!format_.instruction.empty()) out += format_.instruction + format_.separator;
  for (std::size_t d : demonstrations(query, index))
    out += fill_template(format_.input, pool_[d].fields) + pool_[d].target + format_.separator;
  return out + fill_template(format_.input, query.fields);
}

std::vector<data::Message> Prompter::messages(const TaskExample& query, std::uint64_t index) const {
  std::vector<data::Message> m;
  if (!format_.instruction.empty()) m.push_back({"system", format_.instruction, ""});
  for (std::size_t d : demonstrations(query, index)) {
    m.push_back({"user", fill_template(format_.input, pool_[d].fields), ""});
    m.push_back({"assistant", pool_[d].target, ""});
  }
  m.push_back({"user", fill_template(format_.input, query.fields), ""});
  return m;
}

std::string Prompter::text(const TaskExample& query, std::uint64_t index, const Tokenizer& tokenizer) const {
  if (!format_.chat) return render(query, index);
  const data::TokenizerEncoder encoder(tokenizer, format_.chat_template);
  HONE_CHECK(encoder.chat().has_value(), kOp, "chat prompts need a chat template: ", encoder.chat_error());
  ChatOptions options;
  options.add_generation_prompt = true;
  return encoder.chat()->render_text(messages(query, index), options);
}

}  // namespace hone

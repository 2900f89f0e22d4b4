// hone::Generator (include/hone/generator.h): prefill every prompt at once, then one decode
// step per token for the sequences still running; finished sequences leave the batch. The
// model may be on the CPU or a CUDA device: the logits stay on its device and only the chosen
// ids are read back per step (sampler.h).
#include "hone/generator.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "hone/error.h"
#include "hone/tokenizer.h"
#include "infer/decoder.h"
#include "infer/sampler.h"
#include "infer/text_stream.h"
#include "model/transformer.h"

namespace hone {

namespace {
constexpr const char* kOp = "generate";
}

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::eos: return "eos";
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::context: return "context";
  }
  return "?";
}

Generator::Generator(Model& model, const Tokenizer* tokenizer) : model_(model), tokenizer_(tokenizer) {}

std::vector<Generation> Generator::generate(const std::vector<std::vector<std::int32_t>>& prompts,
                                            const GenerateOptions& o, const StreamCallback& on_token) {
  infer::check_sampling(o.sampling);
  HONE_CHECK(o.max_new_tokens >= 0, kOp, "max_new_tokens ", o.max_new_tokens, " must be ≥ 0");
  HONE_CHECK(o.stop.empty() || tokenizer_ != nullptr, kOp, "stop strings need a tokenizer");
  model::Transformer& m = model_.transformer();
  const std::int64_t V = m.config().vocab_size, context = infer::max_sequence_tokens(m);
  std::vector<std::int32_t> eos = o.eos_ids;
  if (eos.empty())
    for (std::int64_t id : m.config().eos_token_ids) eos.push_back(static_cast<std::int32_t>(id));
  if (o.ignore_eos) eos.clear();

  const auto B = static_cast<std::int64_t>(prompts.size());
  std::vector<Generation> out(static_cast<std::size_t>(B));
  for (std::int64_t i = 0; i < B; ++i) {
    const auto& p = prompts[static_cast<std::size_t>(i)];
    const auto n = static_cast<std::int64_t>(p.size());
    HONE_CHECK(n > 0, kOp, "prompt ", i, " is empty");
    HONE_CHECK(n < context, kOp, "prompt ", i, " has ", n, " tokens; the model holds at most ", context,
               " (max_position_embeddings", context < m.config().max_position_embeddings ? ", less the virtual tokens" : "",
               "), so nothing can follow it");
    for (std::int32_t id : p)
      HONE_CHECK(id >= 0 && id < V, kOp, "token id ", id, " of prompt ", i, " is outside the vocabulary [0, ", V, ")");
    out[static_cast<std::size_t>(i)].prompt_tokens = n;
  }
  if (B == 0 || o.max_new_tokens == 0) return out;

  std::vector<std::unique_ptr<infer::TextStream>> text(static_cast<std::size_t>(B));
  if (tokenizer_)
    for (auto& t : text) t = std::make_unique<infer::TextStream>(*tokenizer_, o.stop);
  std::vector<std::vector<std::int32_t>> seen = prompts;  // for the repetition penalty
  const std::unique_ptr<infer::Decoder> dec = o.use_cache ? infer::make_cached_decoder(m) : infer::make_recompute_decoder(m);
  Tensor logits = dec->prefill(prompts);
  std::vector<std::int64_t> live(static_cast<std::size_t>(B));  // live row → prompt index
  for (std::int64_t i = 0; i < B; ++i) live[static_cast<std::size_t>(i)] = i;

  while (!live.empty()) {
    std::vector<std::int32_t> next;
    std::vector<std::int64_t> keep, still;
    const std::vector<std::int64_t> lengths = dec->lengths();
    // Every live row's token at once: on a device only the ids come back to the host.
    std::vector<std::uint64_t> streams, steps;
    std::vector<const std::vector<std::int32_t>*> history;
    for (std::int64_t i : live) {
      streams.push_back(o.stream_offset + static_cast<std::uint64_t>(i));
      steps.push_back(out[static_cast<std::size_t>(i)].ids.size());
      history.push_back(&seen[static_cast<std::size_t>(i)]);
    }
    const std::vector<std::int32_t> chosen = infer::choose_tokens(logits, o.sampling, streams, steps, history);
    for (std::size_t r = 0; r < live.size(); ++r) {
      const auto i = static_cast<std::size_t>(live[r]);
      Generation& g = out[i];
      const std::int32_t id = chosen[r];
      g.ids.push_back(id);
      seen[i].push_back(id);
      StreamEvent e;
      e.index = static_cast<std::int64_t>(i);
      e.token = id;
      bool done = true;
      if (std::find(eos.begin(), eos.end(), id) != eos.end()) {
        g.finish = FinishReason::eos;  // the EOS token ends the text without being part of it
      } else if (text[i] && (e.text = text[i]->push(id), text[i]->stopped())) {
        g.finish = FinishReason::stop;
      } else if (static_cast<std::int64_t>(g.ids.size()) >= o.max_new_tokens) {
        g.finish = FinishReason::length;
      } else if (lengths[r] + 1 >= context) {
        g.finish = FinishReason::context;
      } else {
        done = false;
      }
      if (done) {
        if (text[i]) {
          e.text += text[i]->finish();
          g.text = text[i]->text();
        }
        e.finished = true;
        e.finish = g.finish;
      } else {
        keep.push_back(static_cast<std::int64_t>(r));
        still.push_back(live[r]);
        next.push_back(id);
      }
      if (on_token) on_token(e);
    }
    if (still.empty()) break;
    if (still.size() < live.size()) dec->retain(keep);
    live = std::move(still);
    logits = dec->step(next);
  }
  return out;
}

std::vector<Generation> Generator::generate_text(const std::vector<std::string>& prompts, const GenerateOptions& o,
                                                 const StreamCallback& on_token) {
  HONE_CHECK(tokenizer_ != nullptr, kOp, "text prompts need a tokenizer");
  std::vector<std::vector<std::int32_t>> ids;
  for (const std::string& p : prompts) ids.push_back(encode_prompt(*tokenizer_, p));
  return generate(ids, o, on_token);
}

std::vector<std::int32_t> encode_prompt(const Tokenizer& tokenizer, const std::string& text, bool chat) {
  std::vector<std::int32_t> ids;
  if (!chat) {  // the BOS the data pipeline puts before a non-chat example (TokenizerEncoder)
    const std::vector<std::int32_t> bare = tokenizer.encode("", true);
    if (!bare.empty() && tokenizer.bos_id() && bare.front() == *tokenizer.bos_id()) ids.push_back(bare.front());
  }
  const std::vector<std::int32_t> body = tokenizer.encode(text, false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

namespace {

// eos_token_id of a JSON file: nullopt when absent or null; a number or a list of numbers.
std::optional<std::vector<std::int32_t>> eos_from(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    fail(kOp, cat(path.string(), " is not valid JSON: ", e.what()));
  }
  if (!j.is_object() || !j.contains("eos_token_id") || j["eos_token_id"].is_null()) return std::nullopt;
  const nlohmann::json& e = j["eos_token_id"];
  std::vector<std::int32_t> ids;
  auto add = [&](const nlohmann::json& v) {
    HONE_CHECK(v.is_number_integer() && v.get<std::int64_t>() >= 0, kOp, path.string(), ": eos_token_id ", v.dump(),
               " is not a token id");
    ids.push_back(v.get<std::int32_t>());
  };
  if (e.is_array())
    for (const auto& v : e) add(v);
  else
    add(e);
  return ids;
}

}  // namespace

SamplingOptions generation_sampling_defaults(const std::string& dir) {
  const std::filesystem::path path = std::filesystem::path(dir) / "generation_config.json";
  SamplingOptions o;
  std::ifstream in(path);
  if (!in) return o;
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    fail(kOp, cat(path.string(), " is not valid JSON: ", e.what()));
  }
  auto number = [&](const char* key, double fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    HONE_CHECK(j[key].is_number(), kOp, path.string(), ": '", key, "' is ", j[key].dump(), "; expected a number");
    return j[key].get<double>();
  };
  HONE_CHECK(j.is_object(), kOp, path.string(), " is not a JSON object");
  const bool sample = j.contains("do_sample") && j["do_sample"].is_boolean() && j["do_sample"].get<bool>();
  o.repetition_penalty = number("repetition_penalty", 1.0);
  if (sample) {
    o.temperature = number("temperature", 1.0);
    o.top_k = static_cast<std::int64_t>(number("top_k", 50.0));
    o.top_p = number("top_p", 1.0);
  }
  return o;
}

std::vector<std::int32_t> generation_eos_ids(const std::string& dir) {
  namespace fs = std::filesystem;
  if (auto ids = eos_from(fs::path(dir) / "generation_config.json")) return *ids;
  if (auto ids = eos_from(fs::path(dir) / "config.json")) return *ids;
  return {};
}

}  // namespace hone

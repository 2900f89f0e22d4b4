// `hone generate` and `hone eval`: a model folder (a base or a fine-tuned one) with an optional
// PEFT adapter (LoRA or prompt tuning, applied unmerged), prompts or a task file in, text or
// accuracy out.
#include "cmd_infer.h"

#include "backend.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "hone/chat_template.h"
#include "hone/error.h"
#include "hone/evaluate.h"
#include "hone/generator.h"
#include "hone/peft.h"
#include "hone/tokenizer.h"
#include "hone/tokenizer_encoder.h"

namespace hone::cli {

namespace fs = std::filesystem;

namespace {

// Options both commands share: the model, the adapter and how tokens are chosen.
struct ModelOptions {
  std::string model, adapter, backend = "cpu";
  std::int64_t max_new_tokens = 64;
  // Negative: not given; the model's generation_config.json decides (else greedy).
  double temperature = -1, top_p = -1, repetition_penalty = -1;
  std::int64_t top_k = -1, batch = 8;
  std::uint64_t seed = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false, no_cache = false, chat = false;
  std::string chat_template = "auto";
};

struct GenerateCli : ModelOptions {
  std::vector<std::string> prompts;
  std::string file, output;
};

struct EvalCli : ModelOptions {
  std::string task, pool, output, metric = "exact", target_field = "completion";
  std::string input = "{prompt}", instruction, separator = "\\n\\n";
  std::int64_t shots = 0, limit = 0;
  bool no_loss = false;
};

// "\n", "\t" and "\\" typed on a command line, as the characters.
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The model folder, with the adapter attached (unmerged) when one is given.
Model load_model(const ModelOptions& o, const char* cmd) {
  HONE_CHECK(fs::is_directory(o.model), cmd, "--model ", o.model, " is not a folder");
  HONE_CHECK(fs::is_regular_file(fs::path(o.model) / "config.json"), cmd, "--model ", o.model, " has no config.json",
             fs::is_regular_file(fs::path(o.model) / "adapter_config.json")
                 ? " (it is an adapter folder: pass its base as --model and it as --adapter)"
                 : "");
  HONE_CHECK(fs::is_regular_file(fs::path(o.model) / "tokenizer.json"), cmd, "--model ", o.model,
             " has no tokenizer.json");
  const Device device = backend_device(o.backend, cmd);
  if (o.adapter.empty()) return Model::load(o.model, Model::compute_dtype(device), /*train_base=*/true, device);
  HONE_CHECK(fs::is_directory(o.adapter), cmd, "--adapter ", o.adapter, " is not a folder");
  Model model = Model::load(o.model, Model::compute_dtype(device), /*train_base=*/false, device);
  load_adapter(model, o.adapter);
  return model;
}

// `model_defaults`: sampling options not given come from the model's generation_config.json
// (hone generate, as transformers' generate() does); otherwise greedy (hone eval: scores are
// reproducible unless sampling is asked for).
GenerateOptions generate_options(const ModelOptions& o, const Tokenizer& tok, bool model_defaults) {
  GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  if (model_defaults) g.sampling = generation_sampling_defaults(o.model);
  if (o.temperature >= 0) g.sampling.temperature = o.temperature;
  if (o.top_k >= 0) g.sampling.top_k = o.top_k;
  if (o.top_p >= 0) g.sampling.top_p = o.top_p;
  if (o.repetition_penalty >= 0) g.sampling.repetition_penalty = o.repetition_penalty;
  g.sampling.seed = o.seed;
  g.eos_ids = generation_eos_ids(o.model);
  if (g.eos_ids.empty()) g.eos_ids = tok.eos_ids();
  g.ignore_eos = o.ignore_eos;
  for (const std::string& s : o.stop) g.stop.push_back(unescape(s));
  g.use_cache = !o.no_cache;
  return g;
}

void add_model_options(CLI::App* c, ModelOptions& o) {
  c->add_option("--model", o.model, "model folder (Hugging Face layout with tokenizer.json): a base or a fine-tuned one")
      ->required();
  c->add_option("--adapter", o.adapter, "PEFT adapter folder (LoRA or prompt tuning), applied without merging");
  c->add_option("--backend", o.backend, "cpu (f32) or cuda (bf16 on cuda:0)")->check(CLI::IsMember({"cpu", "cuda"}));
  c->add_option("--max-new-tokens", o.max_new_tokens, "tokens to generate at most")->check(CLI::NonNegativeNumber);
  // Sampling options not given: `generate` takes the model's generation_config.json (else
  // greedy), `eval` is greedy.
  c->add_option("--temperature", o.temperature, "0: greedy; else sample from softmax(logits / T) [generate: the model's]")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--top-k", o.top_k, "sample among the k most likely tokens (0: all) [generate: the model's]")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--top-p", o.top_p, "sample within the smallest set holding this probability [generate: the model's]")
      ->check(CLI::Range(1e-9, 1.0));
  c->add_option("--repetition-penalty", o.repetition_penalty,
                "divide (multiply) positive (negative) logits of seen ids [generate: the model's]")
      ->check(CLI::PositiveNumber);
  c->add_option("--seed", o.seed, "random seed for sampling");
  c->add_option("--stop", o.stop, "stop when the text contains this string (repeatable; \\n for a newline)");
  c->add_flag("--ignore-eos", o.ignore_eos, "do not stop at the model's EOS ids");
  c->add_flag("--no-cache", o.no_cache, "recompute the whole forward every step (no KV cache; slow, for checks)");
  c->add_option("--batch", o.batch, "prompts per batch")->check(CLI::PositiveNumber);
  c->add_flag("--chat", o.chat, "render prompts with the model's chat template");
  c->add_option("--chat-template", o.chat_template, cat("auto (from the tokenizer) or a family: ", chat_family_names()));
}

// A line of a prompts file: {"prompt": text} or {"messages": [...]} (always chat-rendered).
struct FilePrompt {
  std::string text;
  std::vector<data::Message> messages;
};

std::vector<FilePrompt> read_prompts(const std::string& path) {
  std::ifstream in(path);
  HONE_CHECK(in.good(), "generate", "--file ", path, " does not exist");
  std::vector<FilePrompt> out;
  std::string line;
  for (std::int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("generate", cat(path, ":", n, ": not valid JSON: ", e.what()));
    }
    FilePrompt p;
    if (j.is_object() && j.contains("prompt") && j["prompt"].is_string()) {
      p.text = j["prompt"].get<std::string>();
    } else if (j.is_object() && j.contains("messages") && j["messages"].is_array()) {
      for (const auto& m : j["messages"]) {
        HONE_CHECK(m.is_object() && m.value("role", "") != "" && m.contains("content"), "generate", path, ":", n,
                   ": each message needs 'role' and 'content'");
        p.messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>(), ""});
      }
    } else {
      fail("generate", cat(path, ":", n, ": expected {\"prompt\": text} or {\"messages\": [...]}"));
    }
    out.push_back(std::move(p));
  }
  HONE_CHECK(!out.empty(), "generate", "--file ", path, " has no prompts");
  return out;
}

int run_generate(const GenerateCli& o) {
  HONE_CHECK(o.prompts.empty() != o.file.empty(), "generate", "give --prompt TEXT or --file prompts.jsonl (one of them)");
  std::vector<FilePrompt> prompts;
  if (!o.file.empty()) prompts = read_prompts(o.file);
  for (const std::string& p : o.prompts) prompts.push_back({unescape(p), {}});
  Model model = load_model(o, "generate");
  const Tokenizer tok = Tokenizer::from_dir(o.model);
  const GenerateOptions g = generate_options(o, tok, true);
  std::optional<data::TokenizerEncoder> encoder;
  std::vector<std::vector<std::int32_t>> ids;
  for (const FilePrompt& p : prompts) {
    const bool chat = o.chat || !p.messages.empty();
    std::string text = p.text;
    if (chat) {
      if (!encoder) encoder.emplace(tok, o.chat_template);
      HONE_CHECK(encoder->chat().has_value(), "generate", "--chat needs a chat template: ", encoder->chat_error());
      ChatOptions co;
      co.add_generation_prompt = true;
      text = encoder->chat()->render_text(p.messages.empty() ? std::vector<data::Message>{{"user", p.text, ""}} : p.messages,
                                          co);
    }
    ids.push_back(encode_prompt(tok, text, chat));
  }
  Generator gen(model, &tok);
  const bool stream = prompts.size() == 1;
  std::vector<Generation> all;
  for (std::size_t b0 = 0; b0 < ids.size(); b0 += static_cast<std::size_t>(o.batch)) {
    const std::size_t b1 = std::min(ids.size(), b0 + static_cast<std::size_t>(o.batch));
    GenerateOptions gb = g;
    gb.stream_offset = b0;
    const auto out = gen.generate({ids.begin() + static_cast<long>(b0), ids.begin() + static_cast<long>(b1)}, gb,
                                  [&](const StreamEvent& e) {
                                    if (!stream) return;
                                    std::fputs(e.text.c_str(), stdout);
                                    std::fflush(stdout);
                                  });
    all.insert(all.end(), out.begin(), out.end());
  }
  if (stream) {
    std::printf("\n");
    std::fprintf(stderr, "[%lld tokens, %s]\n", static_cast<long long>(all[0].ids.size()),
                 finish_reason_name(all[0].finish));
  } else {
    for (std::size_t i = 0; i < all.size(); ++i)
      std::printf("[%zu] %s\n", i, all[i].text.c_str());
  }
  if (!o.output.empty()) {
    std::ofstream out(o.output);
    HONE_CHECK(out.good(), "generate", "cannot write --output ", o.output);
    for (std::size_t i = 0; i < all.size(); ++i)
      out << nlohmann::json{{"index", i}, {"text", all[i].text}, {"ids", all[i].ids},
                            {"finish", finish_reason_name(all[i].finish)}, {"prompt_tokens", all[i].prompt_tokens}}
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
  }
  return 0;
}

int run_eval(const EvalCli& o) {
  HONE_CHECK(fs::is_regular_file(o.task), "eval", "--task ", o.task, " does not exist");
  HONE_CHECK(o.pool.empty() || fs::is_regular_file(o.pool), "eval", "--pool ", o.pool, " does not exist");
  EvalOptions e;
  e.metric = parse_metric(o.metric);
  e.prompt.instruction = unescape(o.instruction);
  e.prompt.input = unescape(o.input);
  e.prompt.separator = unescape(o.separator);
  e.prompt.shots = o.shots;
  e.prompt.seed = o.seed;
  e.prompt.chat = o.chat;
  e.prompt.chat_template = o.chat_template;
  e.batch = o.batch;
  e.limit = o.limit;
  e.loss = !o.no_loss;
  const std::vector<TaskExample> task = read_task(o.task, o.target_field);
  const std::vector<TaskExample> pool = o.pool.empty() ? task : read_task(o.pool, o.target_field);
  Model model = load_model(o, "eval");
  const Tokenizer tok = Tokenizer::from_dir(o.model);
  e.generation = generate_options(o, tok, false);
  std::vector<ExampleResult> results;
  const EvalSummary s = evaluate(model, tok, task, pool, e, &results);
  std::printf("model      %s%s\n", o.model.c_str(), o.adapter.empty() ? "" : (" + adapter " + o.adapter).c_str());
  std::printf("task       %s (%lld examples, %lld-shot%s)\n", o.task.c_str(), static_cast<long long>(s.examples),
              static_cast<long long>(s.shots), o.chat ? ", chat" : "");
  std::printf("accuracy   %.4f (%lld/%lld, %s)\n", s.accuracy, static_cast<long long>(s.correct),
              static_cast<long long>(s.examples), metric_name(s.metric));
  if (e.loss)
    std::printf("loss       %.4f per target token, perplexity %.3f (%lld tokens)\n", s.loss, s.perplexity,
                static_cast<long long>(s.target_tokens));
  if (!o.output.empty()) {
    fs::create_directories(o.output);
    write_eval_outputs((fs::path(o.output) / "results.jsonl").string(), (fs::path(o.output) / "summary.json").string(), s,
                       results);
    std::printf("saved      %s/results.jsonl, %s/summary.json\n", o.output.c_str(), o.output.c_str());
  }
  return 0;
}

}  // namespace

void add_infer_commands(CLI::App& app) {
  auto g = std::make_shared<GenerateCli>();
  CLI::App* gen = app.add_subcommand("generate", "generate text from a model folder (with an optional PEFT adapter)");
  add_model_options(gen, *g);
  gen->add_option("--prompt", g->prompts, "prompt text (repeatable); one prompt streams its text as it is generated");
  gen->add_option("--file", g->file, "JSONL of {\"prompt\": text} or {\"messages\": [...]} lines");
  gen->add_option("--output", g->output, "also write the generations as JSONL to this file");
  gen->callback([g] { run_generate(*g); });

  auto e = std::make_shared<EvalCli>();
  CLI::App* ev = app.add_subcommand("eval", "accuracy and per-token loss of a model on a JSONL task");
  add_model_options(ev, *e);
  e->max_new_tokens = 32;
  ev->add_option("--task", e->task, "JSONL task: prompt fields and a target (or choices)")->required();
  ev->add_option("--metric", e->metric, "exact, normalized, contains (generated answers) or choice (log-likelihood)")
      ->check(CLI::IsMember({"exact", "normalized", "contains", "choice"}));
  ev->add_option("--target-field", e->target_field, "field holding the answer (choice: an index or the choice's text)");
  ev->add_option("--template", e->input, "prompt template with {field} placeholders");
  ev->add_option("--instruction", e->instruction, "text before the demonstrations (the system message with --chat)");
  ev->add_option("--separator", e->separator, "after the instruction and each demonstration");
  ev->add_option("--shots", e->shots, "few-shot demonstrations per prompt (0: zero-shot)")->check(CLI::NonNegativeNumber);
  ev->add_option("--pool", e->pool, "JSONL the demonstrations come from (default: the task, never the query itself)");
  ev->add_option("--limit", e->limit, "evaluate the first N examples only")->check(CLI::NonNegativeNumber);
  ev->add_flag("--no-loss", e->no_loss, "skip the per-token loss of the targets");
  ev->add_option("--output", e->output, "folder for results.jsonl (per example) and summary.json");
  ev->callback([e] { run_eval(*e); });
}

}  // namespace hone::cli

// `hone demo` (see demo.h).
#include "demo.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "demo_data.h"
#include "hone/error.h"
#include "hone/tokenizer.h"
#include "hone/trainer.h"
#include "hone/tokenizer_encoder.h"

namespace hone::demo {

namespace fs = std::filesystem;

namespace {

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& l : lines) out << l << "\n";
  HONE_CHECK(out.good(), "demo", "cannot write ", path.string());
}

std::string model_config(const DemoOptions& o) {
  const std::int64_t heads = 4, kv = 2, inter = (8 * o.hidden / 3 + 31) / 32 * 32;
  return nlohmann::json{{"model_type", "llama"}, {"vocab_size", 264}, {"hidden_size", o.hidden},
                        {"intermediate_size", inter}, {"num_hidden_layers", o.layers},
                        {"num_attention_heads", heads}, {"num_key_value_heads", kv},
                        {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0},
                        {"tie_word_embeddings", true}, {"eos_token_id", 256}, {"torch_dtype", "float32"}}
      .dump(1);
}

struct Scored {
  double accuracy = 0;
  std::vector<std::string> answers;
};

// Greedy answers to every held-out prompt; exact match with the completion.
Scored score(Model& model, const Tokenizer& tok, const std::vector<TaskExample>& task) {
  Scored s;
  std::int64_t right = 0;
  const std::vector<std::int32_t> stop = tok.eos_ids();
  for (const TaskExample& e : task) {
    std::vector<std::int32_t> out = model.greedy(tok.encode(e.prompt, false), 12, stop);
    if (!out.empty() && std::find(stop.begin(), stop.end(), out.back()) != stop.end()) out.pop_back();
    s.answers.push_back(tok.decode_raw(out));
    right += s.answers.back() == e.completion;
  }
  s.accuracy = task.empty() ? 0.0 : static_cast<double>(right) / static_cast<double>(task.size());
  return s;
}

}  // namespace

std::string DemoReport::to_json() const {
  nlohmann::json j{{"params", params},
                   {"pretrain_loss", {pretrain_loss_first, pretrain_loss_last}},
                   {"finetune_loss", {finetune_loss_first, finetune_loss_last}},
                   {"eval_loss_before", eval_loss_before},
                   {"eval_loss_after", eval_loss_after},
                   {"accuracy_before", accuracy_before},
                   {"accuracy_after", accuracy_after},
                   {"eval_examples", eval_examples},
                   {"corpus_sample", corpus_sample},
                   {"pretrain_seconds", pretrain_seconds},
                   {"finetune_seconds", finetune_seconds},
                   {"tokens_per_second", tokens_per_second}};
  for (const Sample& s : samples)
    j["samples"].push_back({{"prompt", s.prompt}, {"expected", s.expected}, {"before", s.before}, {"after", s.after}});
  return j.dump();
}

DemoReport run_demo(const DemoOptions& o) {
  HONE_CHECK(o.pretrain_steps >= 1 && o.finetune_steps >= 1, "demo", "steps must be at least 1 (pre-training ",
             o.pretrain_steps, ", fine-tuning ", o.finetune_steps, ")");
  const bool temporary = o.out.empty();
  const fs::path work = temporary ? fs::temp_directory_path() / ("hone-demo-" + std::to_string(::getpid())) : fs::path(o.out);
  struct Cleanup {
    fs::path p;
    bool on;
    ~Cleanup() {
      std::error_code ec;
      if (on) fs::remove_all(p, ec);
    }
  } cleanup{work, temporary};
  fs::create_directories(work / "base");
  write_byte_level_tokenizer((work / "base").string());
  write_lines(work / "corpus.jsonl", corpus_lines(o.seed, 3000));
  const std::vector<TaskExample> train_task = task_examples(false), eval_task = task_examples(true);
  std::vector<std::string> lines;
  for (const TaskExample& e : train_task) lines.push_back(to_jsonl_line(e));
  write_lines(work / "task_train.jsonl", lines);
  lines.clear();
  for (const TaskExample& e : eval_task) lines.push_back(to_jsonl_line(e));
  write_lines(work / "task_eval.jsonl", lines);

  const Tokenizer tok = Tokenizer::from_dir((work / "base").string());
  const data::TokenizerEncoder encoder(tok);
  const std::int32_t pad = tok.pad_id().value_or(0);
  Model model = Model::from_config(model_config(o), o.seed);
  DemoReport r;
  r.params = model.info().parameters;
  r.eval_examples = static_cast<std::int64_t>(eval_task.size());
  std::int64_t tokens = 0;
  double seconds = 0;
  auto track = [&](double& first, double& last) {
    first = -1;
    return [&](const StepMetrics& m) {
      if (first < 0) first = m.loss;
      last = m.loss;
      tokens += m.tokens;
      seconds += m.seconds;
    };
  };

  // 1. Pre-training on the corpus: packed rows, loss on every token.
  {
    if (o.progress) std::printf("1. pre-training on a generated English corpus (%s)\n", (work / "corpus.jsonl").c_str());
    std::fflush(stdout);
    data::DataOptions d;
    d.format = data::Format::text;
    d.max_length = 128;  // the row length: longer texts are truncated
    d.seed = o.seed;
    JsonlSource corpus((work / "corpus.jsonl").string(), encoder, d);
    TrainConfig c;
    c.lr = 3e-3;
    c.warmup_steps = o.pretrain_steps / 10;
    c.min_lr_ratio = 0.1;
    c.weight_decay = 0.01;
    c.steps = o.pretrain_steps;
    c.batch_rows = 8;
    c.seq_len = 128;
    c.progress = o.progress;
    c.seed = o.seed;
    const auto start = std::chrono::steady_clock::now();
    Trainer trainer(model, corpus, c, pad);
    trainer.train(track(r.pretrain_loss_first, r.pretrain_loss_last));
    r.pretrain_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  model.save((work / "base").string());
  {
    const std::vector<std::int32_t> out = model.greedy(tok.encode("the baker ", false), 60, tok.eos_ids());
    r.corpus_sample = "the baker " + tok.decode_raw(out, true);
  }

  // 2. Fine-tuning on the task: loss on the completions only.
  data::DataOptions d;
  d.format = data::Format::prompt_completion;
  d.max_length = 64;
  d.seed = o.seed;
  JsonlSource task((work / "task_train.jsonl").string(), encoder, d);
  data::DataOptions e = d;
  e.shuffle = false;
  JsonlSource held_out((work / "task_eval.jsonl").string(), encoder, e);
  TrainConfig c;
  c.lr = 2e-3;
  c.warmup_steps = o.finetune_steps / 10;
  c.steps = o.finetune_steps;
  c.batch_rows = 8;
  c.seq_len = 64;
  c.eval_batches = 16;
  c.progress = o.progress;
  c.seed = o.seed;
  c.output_dir = (work / "finetuned").string();
  Trainer trainer(model, task, c, pad, &held_out);
  r.eval_loss_before = trainer.evaluate().value();
  const Scored before = score(model, tok, eval_task);
  if (o.progress) std::printf("2. fine-tuning on review sentiment (%s)\n", (work / "task_train.jsonl").c_str());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  trainer.train(track(r.finetune_loss_first, r.finetune_loss_last));
  r.finetune_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.eval_loss_after = trainer.evaluate().value();
  const Scored after = score(model, tok, eval_task);
  model.save(c.output_dir);
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(work / "base" / name, work / "finetuned" / name, fs::copy_options::overwrite_existing);

  r.accuracy_before = before.accuracy;
  r.accuracy_after = after.accuracy;
  // Two held-out reviews of each label.
  for (const char* label : {" positive", " negative"})
    for (std::size_t i = 0, shown = 0; i < eval_task.size() && shown < 2; i += 5)
      if (eval_task[i].completion == label) {
        r.samples.push_back({eval_task[i].prompt, eval_task[i].completion, before.answers[i], after.answers[i]});
        ++shown;
      }
  r.tokens_per_second = seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0;
  return r;
}

}  // namespace hone::demo

// `hone train --method full`: model folder + JSONL data → checkpoints, metrics and the fine-tuned
// model as a Hugging Face folder (weights, config, tokenizer files).
#include "cmd_train.h"

#include <cstdio>
#include <filesystem>
#include <memory>

#include "hone/error.h"
#include "hone/tokenizer.h"
#include "hone/trainer.h"
#include "io/tokenizer_encoder.h"

namespace hone::cli {

namespace fs = std::filesystem;

namespace {

struct TrainOptions {
  std::string method = "full";
  std::string model, data, eval_data, output, resume;
  std::string format = "auto", truncation = "truncate", backend = "cpu", schedule = "cosine";
  bool loss_on_prompt = false, skip_bad_lines = false, no_packing = false, quiet = false;
  std::int64_t max_length = 0, steps = 0, warmup = 0, batch = 8, seq_len = 512, grad_accum = 1;
  std::int64_t save_every = 0, keep = 2, eval_every = 0, eval_batches = 4;
  double epochs = 1.0, lr = 2e-5, min_lr_ratio = 0.0, weight_decay = 0.0, max_grad_norm = 1.0;
  std::uint64_t seed = 0;
};

void require_file(const fs::path& p, const std::string& what) {
  HONE_CHECK(fs::is_regular_file(p), "train", what, " ", p.string(), " does not exist");
}

// Tokenizer files next to the weights, so the output folder is a complete model.
void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                           "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model"}) {
    const fs::path src = fs::path(from) / name;
    if (!fs::is_regular_file(src)) continue;
    const fs::path dst = fs::path(to) / name, tmp = fs::path(to) / (std::string(name) + ".tmp");
    if (fs::exists(dst) && fs::equivalent(src, dst)) continue;
    fs::copy_file(src, tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, dst);
  }
}

data::Truncation parse_truncation(const std::string& s) {
  if (s == "truncate") return data::Truncation::truncate;
  if (s == "drop") return data::Truncation::drop;
  return data::Truncation::error;
}

int run_train(const TrainOptions& o) {
  HONE_CHECK(o.method == "full", "train", "--method ", o.method,
             " is not available yet; this version trains with --method full");
  HONE_CHECK(o.backend == "cpu", "train", "--backend ", o.backend,
             ": the model's CUDA path is not implemented yet; use --backend cpu");
  HONE_CHECK(fs::is_directory(o.model), "train", "--model ", o.model, " is not a folder");
  require_file(fs::path(o.model) / "config.json", "model config");
  require_file(fs::path(o.model) / "tokenizer.json", "tokenizer");
  require_file(o.data, "--data");
  if (!o.eval_data.empty()) require_file(o.eval_data, "--eval-data");
  HONE_CHECK(o.max_length <= o.seq_len, "train", "--max-length ", o.max_length, " exceeds --seq-len ", o.seq_len,
             ": an example must fit in a row");

  const Tokenizer tokenizer = Tokenizer::from_dir(o.model);
  const data::TokenizerEncoder encoder(tokenizer);
  Model model = Model::load(o.model, DType::f32);
  const ModelInfo info = model.info();
  HONE_CHECK(tokenizer.vocab_size() <= info.vocab_size, "train", "the tokenizer has ", tokenizer.vocab_size(),
             " ids but the model's vocabulary is ", info.vocab_size);
  const std::int32_t pad = tokenizer.pad_id().value_or(encoder.eos_id());

  data::DataOptions d;
  d.format = data::parse_format(o.format);
  d.loss_on_prompt = o.loss_on_prompt;
  d.max_length = o.max_length > 0 ? o.max_length : o.seq_len;
  d.truncation = parse_truncation(o.truncation);
  d.skip_bad_lines = o.skip_bad_lines;
  d.seed = o.seed;
  JsonlSource train(o.data, encoder, d);
  std::unique_ptr<JsonlSource> eval;
  if (!o.eval_data.empty()) {
    data::DataOptions e = d;
    e.shuffle = false;
    eval = std::make_unique<JsonlSource>(o.eval_data, encoder, e);
  }

  TrainConfig c;
  c.lr = o.lr;
  c.schedule = parse_lr_schedule(o.schedule);
  c.warmup_steps = o.warmup;
  c.min_lr_ratio = o.min_lr_ratio;
  c.weight_decay = o.weight_decay;
  c.max_grad_norm = o.max_grad_norm;
  c.steps = o.steps;
  c.epochs = o.epochs;
  c.batch_rows = o.batch;
  c.seq_len = o.seq_len;
  c.grad_accum = o.grad_accum;
  c.packing = !o.no_packing;
  c.eval_every = eval ? (o.eval_every > 0 ? o.eval_every : 0) : 0;
  c.eval_batches = o.eval_batches;
  c.output_dir = o.output;
  c.save_every = o.save_every;
  c.keep_last = o.keep;
  c.progress = !o.quiet;
  c.seed = o.seed;
  fs::create_directories(o.output);
  Trainer trainer(model, train, c, pad, eval.get());
  if (!o.resume.empty()) {
    const std::string from = o.resume == "auto" ? latest_checkpoint(o.output) : o.resume;
    if (from.empty()) {
      std::printf("no checkpoint in %s: starting from step 0\n", o.output.c_str());
    } else {
      trainer.resume(from);
      std::printf("resumed from %s at step %lld\n", from.c_str(), static_cast<long long>(trainer.current_step()));
    }
  }
  std::printf("model      %s (%s, %lld parameters)\n", o.model.c_str(), info.family.c_str(),
              static_cast<long long>(info.parameters));
  std::printf("data       %s (%lld examples)%s\n", o.data.c_str(), static_cast<long long>(train.size()),
              eval ? (", eval " + o.eval_data).c_str() : "");
  std::printf("training   %lld steps of %lld x %lld rows x %lld tokens, lr %g (%s, warmup %lld)\n",
              static_cast<long long>(trainer.total_steps()), static_cast<long long>(c.grad_accum),
              static_cast<long long>(c.batch_rows), static_cast<long long>(c.seq_len), c.lr,
              lr_schedule_name(c.schedule), static_cast<long long>(c.warmup_steps));
  std::fflush(stdout);  // the header before the progress line (stderr)
  double first_loss = -1;
  const StepMetrics last = trainer.train([&](const StepMetrics& m) {
    if (first_loss < 0) first_loss = m.loss;
  });
  if (first_loss >= 0)
    std::printf("loss       %.4f -> %.4f over %lld steps\n", first_loss, last.loss,
                static_cast<long long>(trainer.current_step()));
  if (const auto e = trainer.evaluate()) std::printf("eval loss  %.4f\n", *e);
  model.save(o.output);
  copy_tokenizer_files(o.model, o.output);
  std::printf("saved      %s (metrics in %s/metrics.jsonl)\n", o.output.c_str(), o.output.c_str());
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* t = app.add_subcommand("train", "fine-tune a model folder on a JSONL file");
  t->add_option("--method", o->method, "full (lora and prompt-tuning come later)");
  t->add_option("--model", o->model, "Hugging Face model folder (config.json, weights, tokenizer.json)")->required();
  t->add_option("--data", o->data, "training data, JSONL")->required();
  t->add_option("--eval-data", o->eval_data, "held-out JSONL for evaluation");
  t->add_option("--output", o->output, "folder for checkpoints, metrics and the final model")->required();
  t->add_option("--format", o->format, "auto, text, prompt_completion, messages or alpaca")
      ->check(CLI::IsMember({"auto", "text", "prompt_completion", "messages", "alpaca"}));
  t->add_flag("--loss-on-prompt", o->loss_on_prompt, "train on prompt tokens too");
  t->add_option("--max-length", o->max_length, "tokens per example (default: --seq-len)")->check(CLI::PositiveNumber);
  t->add_option("--truncation", o->truncation, "truncate, drop or error for longer examples")
      ->check(CLI::IsMember({"truncate", "drop", "error"}));
  t->add_flag("--skip-bad-lines", o->skip_bad_lines, "skip and count lines that do not parse");
  t->add_option("--steps", o->steps, "optimizer steps (default: from --epochs)")->check(CLI::NonNegativeNumber);
  t->add_option("--epochs", o->epochs, "passes over the data when --steps is not given")->check(CLI::PositiveNumber);
  t->add_option("--lr", o->lr, "peak learning rate")->check(CLI::PositiveNumber);
  t->add_option("--schedule", o->schedule, "constant, linear or cosine")
      ->check(CLI::IsMember({"constant", "linear", "cosine"}));
  t->add_option("--warmup", o->warmup, "linear warmup steps")->check(CLI::NonNegativeNumber);
  t->add_option("--min-lr-ratio", o->min_lr_ratio, "final lr as a fraction of --lr")->check(CLI::Range(0.0, 1.0));
  t->add_option("--weight-decay", o->weight_decay, "AdamW weight decay (matrices only)")->check(CLI::NonNegativeNumber);
  t->add_option("--max-grad-norm", o->max_grad_norm, "clip the global gradient norm (0: off)")->check(CLI::NonNegativeNumber);
  t->add_option("--batch", o->batch, "rows per micro-batch")->check(CLI::PositiveNumber);
  t->add_option("--seq-len", o->seq_len, "tokens per row")->check(CLI::Range(2, 1 << 20));
  t->add_option("--grad-accum", o->grad_accum, "micro-batches per optimizer step")->check(CLI::PositiveNumber);
  t->add_flag("--no-packing", o->no_packing, "one example per row instead of packing whole examples");
  t->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  t->add_option("--resume", o->resume, "a checkpoint folder, or auto: the newest in --output");
  t->add_option("--save-every", o->save_every, "checkpoint every N steps (0: none)")->check(CLI::NonNegativeNumber);
  t->add_option("--keep", o->keep, "checkpoints to keep")->check(CLI::PositiveNumber);
  t->add_option("--eval-every", o->eval_every, "evaluate every N steps (with --eval-data)")->check(CLI::NonNegativeNumber);
  t->add_option("--eval-batches", o->eval_batches, "batches per evaluation")->check(CLI::PositiveNumber);
  t->add_option("--seed", o->seed, "random seed (data order)");
  t->add_flag("--quiet", o->quiet, "no progress line");
  t->callback([o] { run_train(*o); });
}

}  // namespace hone::cli

// `hone train --method full|lora|prompt-tuning`: model folder + JSONL data → checkpoints, metrics
// and the fine-tuned model as a Hugging Face folder (weights, config, tokenizer files), or the
// trained adapter in PEFT's format (adapter_config.json + adapter_model.safetensors).
#include "cmd_train.h"

#include "backend.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "cmd_peft.h"
#include "hone/error.h"
#include "hone/peft.h"
#include "hone/tokenizer.h"
#include "hone/trainer.h"
#include "hone/tokenizer_encoder.h"

namespace hone::cli {

namespace fs = std::filesystem;

namespace {

struct TrainOptions {
  std::string method = "full";
  std::string model, data, eval_data, output, resume;
  std::string format = "auto", truncation = "truncate", backend = "cpu", schedule = "cosine";
  bool loss_on_prompt = false, skip_bad_lines = false, no_packing = false, quiet = false;
  bool activation_checkpointing = false;
  std::int64_t loss_chunk = 1024;
  std::int64_t max_length = 0, steps = 0, warmup = 0, batch = 8, seq_len = 512, grad_accum = 1;
  std::int64_t save_every = 0, keep = 2, eval_every = 0, eval_batches = 4;
  double epochs = 1.0, lr = 2e-5, min_lr_ratio = 0.0, weight_decay = 0.0, max_grad_norm = 1.0;
  std::uint64_t seed = 0;
  // LoRA
  std::int64_t lora_r = 8;
  double lora_alpha = 16, lora_dropout = 0.0;
  std::string lora_targets = "all-linear", lora_target_regex, lora_layers, lora_init = "kaiming";
  bool rslora = false;
  // Prompt tuning
  std::int64_t virtual_tokens = 20;
  std::string prompt_init = "random", prompt_init_text;
};

void require_file(const fs::path& p, const std::string& what) {
  HONE_CHECK(fs::is_regular_file(p), "train", what, " ", p.string(), " does not exist");
}

// "a,b, c" → {"a", "b", "c"}.
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (const auto b = item.find_first_not_of(' '); b != std::string::npos) out.push_back(item.substr(b, item.find_last_not_of(' ') - b + 1));
  return out;
}

LoraConfig lora_config(const TrainOptions& o) {
  LoraConfig c;
  c.r = o.lora_r;
  c.alpha = o.lora_alpha;
  c.dropout = o.lora_dropout;
  c.use_rslora = o.rslora;
  c.target_regex = o.lora_target_regex;
  c.target_modules = split_list(o.lora_targets);
  for (const std::string& l : split_list(o.lora_layers)) {
    try {
      c.layers_to_transform.push_back(std::stoll(l));
    } catch (const std::exception&) {
      fail("train", cat("--lora-layers: '", l, "' is not a block number"));
    }
  }
  c.init = o.lora_init == "gaussian" ? LoraInit::gaussian : o.lora_init == "none" ? LoraInit::none : LoraInit::kaiming;
  c.seed = o.seed;
  return c;
}

PromptTuningConfig prompt_config(const TrainOptions& o) {
  PromptTuningConfig c;
  c.num_virtual_tokens = o.virtual_tokens;
  c.init = o.prompt_init == "text" ? PromptInit::text : o.prompt_init == "sample-vocab" ? PromptInit::sample_vocab
                                                                                           : PromptInit::random;
  c.init_text = o.prompt_init_text;
  if (c.init == PromptInit::text) c.tokenizer_name_or_path = o.model;
  HONE_CHECK(c.init != PromptInit::text || !c.init_text.empty(), "train",
             "--prompt-init text needs --prompt-init-text");
  c.seed = o.seed;
  return c;
}

data::Truncation parse_truncation(const std::string& s) {
  if (s == "truncate") return data::Truncation::truncate;
  if (s == "drop") return data::Truncation::drop;
  return data::Truncation::error;
}

int run_train(const TrainOptions& o) {
  HONE_CHECK(o.method == "full" || o.method == "lora" || o.method == "prompt-tuning", "train", "--method ", o.method,
             " is not one of full, lora, prompt-tuning");
  const Device device = backend_device(o.backend, "train");
  HONE_CHECK(fs::is_directory(o.model), "train", "--model ", o.model, " is not a folder");
  require_file(fs::path(o.model) / "config.json", "model config");
  require_file(fs::path(o.model) / "tokenizer.json", "tokenizer");
  require_file(o.data, "--data");
  if (!o.eval_data.empty()) require_file(o.eval_data, "--eval-data");
  HONE_CHECK(o.max_length <= o.seq_len, "train", "--max-length ", o.max_length, " exceeds --seq-len ", o.seq_len,
             ": an example must fit in a row");

  const Tokenizer tokenizer = Tokenizer::from_dir(o.model);
  const data::TokenizerEncoder encoder(tokenizer);
  const bool full = o.method == "full";
  // Adapters train over a frozen base: no gradient or optimizer memory is allocated for it.
  // On CUDA: bf16 weights and activations, f32 gradients, fp32 master weights in the trainer.
  Model model = Model::load(o.model, Model::compute_dtype(device), /*train_base=*/full, device);
  const ModelInfo info = model.info();
  if (o.method == "lora") add_lora(model, lora_config(o));
  if (o.method == "prompt-tuning") add_prompt_tuning(model, prompt_config(o), &tokenizer);
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
  c.activation_checkpointing = o.activation_checkpointing;
  c.loss_chunk = o.loss_chunk;
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
  std::printf("model      %s (%s, %lld parameters, %s on %s)\n", o.model.c_str(), info.family.c_str(),
              static_cast<long long>(info.parameters), dtype_name(model.dtype()), device.str().c_str());
  if (!full) {
    const AdapterInfo a = adapter_info(model);
    const double pct = 100.0 * static_cast<double>(a.trainable_parameters) / static_cast<double>(info.parameters);
    if (a.kind == AdapterKind::lora)
      std::printf("adapter    LoRA r %lld, alpha %g on %lld linear layers: %lld trainable parameters (%.3f%%)\n",
                  static_cast<long long>(o.lora_r), o.lora_alpha, static_cast<long long>(a.modules),
                  static_cast<long long>(a.trainable_parameters), pct);
    else
      std::printf("adapter    prompt tuning, %lld virtual tokens: %lld trainable parameters (%.3f%%)\n",
                  static_cast<long long>(o.virtual_tokens), static_cast<long long>(a.trainable_parameters), pct);
  }
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
  if (full) {
    trainer.save_model(o.output);  // a device run: its fp32 master weights
    copy_tokenizer_files(o.model, o.output);
  } else {
    // PEFT's format (PeftModel.from_pretrained(base, output)); a device run's fp32 master weights.
    trainer.save_model(o.output, std::nullopt, o.model);
  }
  std::printf("saved      %s%s (metrics in %s/metrics.jsonl)\n", o.output.c_str(), full ? "" : " (adapter)",
              o.output.c_str());
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* t = app.add_subcommand("train", "fine-tune a model folder on a JSONL file");
  t->add_option("--method", o->method, "full, lora or prompt-tuning (the last two write a PEFT adapter)");
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
  t->add_flag("--activation-checkpointing", o->activation_checkpointing,
              "keep only each block's input; recompute the block in backward (less memory)");
  t->add_option("--loss-chunk", o->loss_chunk, "tokens whose logits are formed at once in the loss")
      ->check(CLI::PositiveNumber);
  t->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  t->add_option("--resume", o->resume, "a checkpoint folder, or auto: the newest in --output");
  t->add_option("--save-every", o->save_every, "checkpoint every N steps (0: none)")->check(CLI::NonNegativeNumber);
  t->add_option("--keep", o->keep, "checkpoints to keep")->check(CLI::PositiveNumber);
  t->add_option("--eval-every", o->eval_every, "evaluate every N steps (with --eval-data)")->check(CLI::NonNegativeNumber);
  t->add_option("--eval-batches", o->eval_batches, "batches per evaluation")->check(CLI::PositiveNumber);
  t->add_option("--seed", o->seed, "random seed (data order)");
  t->add_flag("--quiet", o->quiet, "no progress line");
  t->add_option("--lora-r", o->lora_r, "LoRA rank")->check(CLI::PositiveNumber);
  t->add_option("--lora-alpha", o->lora_alpha, "LoRA alpha (scale alpha / r)");
  t->add_option("--lora-dropout", o->lora_dropout, "dropout on the adapter's input")->check(CLI::Range(0.0, 0.99));
  t->add_option("--lora-targets", o->lora_targets,
                "comma-separated module names (q_proj,v_proj; c_attn,c_fc for GPT-2) or all-linear");
  t->add_option("--lora-target-regex", o->lora_target_regex, "a regular expression matching whole module names instead");
  t->add_option("--lora-layers", o->lora_layers, "comma-separated blocks to adapt (default: all)");
  t->add_flag("--rslora", o->rslora, "rank-stabilised scaling alpha / sqrt(r)");
  t->add_option("--lora-init", o->lora_init, "kaiming (PEFT's default), gaussian or none")
      ->check(CLI::IsMember({"kaiming", "gaussian", "none"}));
  t->add_option("--num-virtual-tokens", o->virtual_tokens, "prompt tuning: learned tokens before each example")
      ->check(CLI::PositiveNumber);
  t->add_option("--prompt-init", o->prompt_init, "random, text or sample-vocab")
      ->check(CLI::IsMember({"random", "text", "sample-vocab"}));
  t->add_option("--prompt-init-text", o->prompt_init_text, "text whose token embeddings start the prompt");
  t->callback([o] { run_train(*o); });
}

}  // namespace hone::cli

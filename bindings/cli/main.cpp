// The `hone` command.
//   hone demo     pre-train and fine-tune a small model on embedded data (CPU), before/after
//   hone init     save a random-initialised model as a Hugging Face folder
//   hone info     describe a model folder, or this build and its devices
//   hone train    fine-tune a model folder on JSONL data (full, LoRA or prompt tuning)
//   hone merge    fold a LoRA adapter into its base model
//   hone merge    fold a LoRA adapter into its base model
//   hone generate text from a model (KV cache, sampling, streaming)
//   hone eval     accuracy and loss of a model on a JSONL task
//   hone tokenize text ↔ ids with a model's tokenizer
//   hone data inspect  examples, tokens, truncation and packing of a JSONL file
//   hone version
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cmath>
#include <fstream>
#include <omp.h>

#include "cmd_data.h"
#include "cmd_infer.h"
#include "cmd_model.h"
#include "cmd_peft.h"
#include "cmd_train.h"
#include "demo.h"
#include "hone/hone.h"
#include "hone/log.h"

namespace {

int run_info() {
  std::printf("hone %s\n", hone::version());
#ifdef HONE_WITH_CUDA
  std::printf("CUDA backend: built\n");
#else
  std::printf("CUDA backend: not built\n");
#endif
  std::printf("CUDA devices: %d\n", hone::cuda_device_count());
  std::printf("CPU threads: %d\n", omp_get_max_threads());
  return 0;
}

std::string shown(const std::string& s) {
  std::string out;
  for (char ch : s) out += ch == '\n' ? std::string("\\n") : std::string(1, ch);
  return out;
}

int run_demo_command(const hone::demo::DemoOptions& options, const std::string& json_path) {
  std::printf("hone demo: a small Llama-shaped model (byte-level tokenizer, RMSNorm, RoPE, grouped-query\n"
              "attention, SwiGLU) pre-trained on a generated corpus, then fully fine-tuned on a review\n"
              "sentiment task, all on the CPU with hone's trainer.\n\n");
  std::fflush(stdout);
  const hone::demo::DemoReport r = hone::demo::run_demo(options);
  std::printf("\nparameters         %lld\n", static_cast<long long>(r.params));
  std::printf("pre-training loss  %.3f -> %.3f  (%lld steps, %.1f s)\n", r.pretrain_loss_first,
              r.pretrain_loss_last, static_cast<long long>(options.pretrain_steps), r.pretrain_seconds);
  std::printf("  greedy text:     \"%s\"\n", shown(r.corpus_sample).c_str());
  std::printf("fine-tuning loss   %.3f -> %.3f  (%lld steps, %.1f s)\n", r.finetune_loss_first,
              r.finetune_loss_last, static_cast<long long>(options.finetune_steps), r.finetune_seconds);
  std::printf("held-out task      loss %.3f -> %.3f, accuracy %.0f%% -> %.0f%% (%lld reviews never seen)\n",
              r.eval_loss_before, r.eval_loss_after, 100 * r.accuracy_before, 100 * r.accuracy_after,
              static_cast<long long>(r.eval_examples));
  std::printf("throughput         %.0f tokens/s\n\n", r.tokens_per_second);
  std::printf("%-34s %-12s %-14s %s\n", "held-out prompt", "expected", "before", "after");
  for (const auto& s : r.samples)
    std::printf("%-34s %-12s %-14s %s\n", shown(s.prompt).c_str(), ("\"" + s.expected + "\"").c_str(),
                ("\"" + shown(s.before) + "\"").c_str(), ("\"" + shown(s.after) + "\"").c_str());
  if (!options.out.empty())
    std::printf("\nmodels, data and metrics are in %s (base/, finetuned/)\n", options.out.c_str());
  if (!json_path.empty()) {
    const std::string tmp = json_path + ".tmp";
    {
      std::ofstream out(tmp);
      if (!out) throw hone::Error("[demo] cannot write " + tmp);
      out << r.to_json() << "\n";
    }
    if (std::rename(tmp.c_str(), json_path.c_str()) != 0)
      throw hone::Error("[demo] cannot rename " + tmp + " to " + json_path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hone: a fine-tuning engine"};
  app.require_subcommand(1);
  hone::demo::DemoOptions demo;
  std::string json_path;
  CLI::App* demo_cmd = app.add_subcommand("demo", "pre-train and fine-tune a small model on embedded data (CPU)");
  demo_cmd->add_option("--pretrain-steps", demo.pretrain_steps, "pre-training steps")->check(CLI::PositiveNumber);
  demo_cmd->add_option("--finetune-steps", demo.finetune_steps, "fine-tuning steps")->check(CLI::PositiveNumber);
  demo_cmd->add_option("--hidden", demo.hidden, "hidden size")->check(CLI::Range(16, 1024));
  demo_cmd->add_option("--layers", demo.layers, "blocks")->check(CLI::Range(1, 32));
  demo_cmd->add_option("--seed", demo.seed, "random seed");
  demo_cmd->add_option("--out", demo.out, "keep the models, data and metrics in this folder");
  demo_cmd->add_option("--json", json_path, "also write the report as JSON to this file");
  hone::cli::add_model_commands(app);
  hone::cli::add_data_commands(app);
  hone::cli::add_train_command(app);
  hone::cli::add_merge_command(app);
  hone::cli::add_infer_commands(app);
  app.add_subcommand("version", "print the version");
  try {
    try {
      app.parse(argc, argv);  // runs the callbacks of init and info
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    if (demo_cmd->parsed()) return run_demo_command(demo, json_path);
    if (app.got_subcommand("info") && app.get_subcommand("info")->get_option("model")->empty()) return run_info();
    if (app.got_subcommand("info") || app.got_subcommand("init") || app.got_subcommand("tokenize") ||
        app.got_subcommand("data") || app.got_subcommand("train") || app.got_subcommand("generate") ||
        app.got_subcommand("eval") || app.got_subcommand("merge"))
      return 0;
    std::printf("%s\n", hone::version());
    return 0;
  } catch (const hone::Error& e) {
    std::fprintf(stderr, "hone: error: %s\n", e.what());
    return 1;
  }
}

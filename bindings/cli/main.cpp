// The `hone` command.
//   hone demo     train a small byte-level language model on embedded text (CPU), then sample
//   hone init     save a random-initialised model as a Hugging Face folder
//   hone info     describe a model folder, or this build and its devices
//   hone train    fine-tune a model folder on JSONL data
//   hone tokenize text ↔ ids with a model's tokenizer
//   hone data inspect  examples, tokens, truncation and packing of a JSONL file
//   hone version
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cmath>
#include <fstream>
#include <omp.h>

#include "cmd_data.h"
#include "cmd_model.h"
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

int run_demo_command(const hone::demo::DemoOptions& options, const std::string& json_path) {
  std::printf("hone demo: a 2-layer byte-level transformer (RMSNorm, RoPE, grouped-query\n"
              "attention, SwiGLU) trained on embedded text with AdamW, on the CPU.\n\n");
  const hone::demo::DemoReport r = hone::demo::run_demo(options);
  std::printf("\nparameters        %lld\n", static_cast<long long>(r.params));
  std::printf("eval loss         %.3f -> %.3f (nats/byte; uniform guess is %.3f)\n",
              r.eval_loss_before, r.eval_loss_after, std::log(256.0));
  std::printf("train loss        %.3f -> %.3f over %lld steps\n", r.first_loss, r.final_loss,
              static_cast<long long>(options.steps));
  std::printf("time              %.2f s (%.0f tokens/s)\n", r.seconds, r.tokens_per_second);
  std::printf("greedy sample:\n----\n%s\n----\n", r.sample.c_str());
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
  CLI::App* demo_cmd = app.add_subcommand("demo", "train a small language model on embedded text (CPU)");
  demo_cmd->add_option("--steps", demo.steps, "training steps")->check(CLI::PositiveNumber);
  demo_cmd->add_option("--batch", demo.batch, "sequences per step")->check(CLI::PositiveNumber);
  demo_cmd->add_option("--seq", demo.seq, "tokens per sequence")->check(CLI::Range(2, 512));
  demo_cmd->add_option("--lr", demo.lr, "peak learning rate")->check(CLI::PositiveNumber);
  demo_cmd->add_option("--seed", demo.seed, "random seed");
  demo_cmd->add_option("--prompt", demo.prompt, "text to continue after training");
  demo_cmd->add_option("--json", json_path, "also write the report as JSON to this file");
  hone::cli::add_model_commands(app);
  hone::cli::add_data_commands(app);
  hone::cli::add_train_command(app);
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
        app.got_subcommand("data") || app.got_subcommand("train"))
      return 0;
    std::printf("%s\n", hone::version());
    return 0;
  } catch (const hone::Error& e) {
    std::fprintf(stderr, "hone: error: %s\n", e.what());
    return 1;
  }
}

// `hone demo`, the main job on its embedded default: a small Llama-shaped model with the
// byte-level tokenizer is pre-trained on a generated corpus, then fully fine-tuned on a review
// sentiment task; held-out accuracy and samples before and after show what fine-tuning did.
// Everything goes through the public API (Model, Tokenizer, Trainer) and real files (model
// folders, JSONL data) in a work folder.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hone::demo {

struct DemoOptions {
  std::int64_t pretrain_steps = 150;
  std::int64_t finetune_steps = 300;
  std::int64_t hidden = 128;
  std::int64_t layers = 3;
  std::uint64_t seed = 1;
  std::string out;  // work folder kept afterwards; empty: a temporary folder, removed
  bool progress = true;
};

struct Sample {
  std::string prompt, expected, before, after;
};

struct DemoReport {
  std::int64_t params = 0;
  double pretrain_loss_first = 0, pretrain_loss_last = 0;
  double finetune_loss_first = 0, finetune_loss_last = 0;
  double eval_loss_before = 0, eval_loss_after = 0;  // held-out task, per completion token
  double accuracy_before = 0, accuracy_after = 0;    // held-out task, exact match of greedy answers
  std::int64_t eval_examples = 0;
  std::string corpus_sample;                         // greedy text of the pre-trained model
  std::vector<Sample> samples;
  double pretrain_seconds = 0, finetune_seconds = 0, tokens_per_second = 0;
  std::string to_json() const;
};

DemoReport run_demo(const DemoOptions& options);

}  // namespace hone::demo

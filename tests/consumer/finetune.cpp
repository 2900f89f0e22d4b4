// The C++ API the way an application uses it: load a Hugging Face model folder, fine-tune every
// weight on a JSONL file, save the result as a model folder.
//   finetune MODEL_DIR DATA.jsonl OUT_DIR [STEPS]
#include <cstdio>
#include <string>

#include "hone/hone.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR DATA.jsonl OUT_DIR [STEPS]\n", argv[0]);
    return 2;
  }
  const std::string model_dir = argv[1], data = argv[2], out = argv[3];
  try {
    hone::Model model = hone::Model::load(model_dir);
    const hone::Tokenizer tokenizer = hone::Tokenizer::from_dir(model_dir);
    const hone::data::TokenizerEncoder encoder(tokenizer);

    hone::data::DataOptions data_options;  // JSONL form detected per line; loss on completions
    data_options.max_length = 64;
    hone::JsonlSource train(data, encoder, data_options);

    hone::TrainConfig config;
    config.steps = argc > 4 ? std::stoll(argv[4]) : 20;
    config.lr = 2e-3;
    config.warmup_steps = 2;
    config.batch_rows = 4;
    config.seq_len = 64;
    config.output_dir = out;  // metrics.jsonl (and checkpoints, with save_every)
    config.progress = false;
    hone::Trainer trainer(model, train, config, tokenizer.pad_id().value_or(encoder.eos_id()));
    double first = -1;
    const hone::StepMetrics last = trainer.train([&](const hone::StepMetrics& m) {
      if (first < 0) first = m.loss;
    });
    model.save(out);  // config.json + model.safetensors; copy the tokenizer files alongside
    std::printf("fine-tuned %s (%lld parameters): loss %.4f -> %.4f in %lld steps, saved to %s\n",
                model_dir.c_str(), static_cast<long long>(model.info().parameters), first, last.loss,
                static_cast<long long>(last.step), out.c_str());
    return last.loss < first ? 0 : 1;
  } catch (const hone::Error& e) {
    std::fprintf(stderr, "finetune: %s\n", e.what());
    return 1;
  }
}

// The trainer with an adapter: only the adapter moves (the frozen base stays bitwise the same,
// with no gradient or optimizer memory for it), checkpoints hold the adapter in PEFT's format and
// resume bit-exactly, dropout included.
#include <catch2/catch.hpp>

#include <filesystem>
#include <unistd.h>

#include "hone/peft.h"
#include "hone/random.h"
#include "hone/safetensors.h"
#include "hone/trainer.h"
#include "model/transformer.h"
#include "ops/ops.h"
#include "peft/prompt.h"

#include "support/train_data.h"
#include "support/temp_dir.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

using test::examples;
using test::kTinyLlama;

// The second half of every example is token 7: a pattern a prompt can learn, unlike random ids.
std::vector<data::TokenizedExample> patterned(int n, std::uint64_t seed) {
  std::vector<data::TokenizedExample> out = examples(n, seed);
  for (auto& ex : out)
    for (std::size_t k = ex.ids.size() / 2; k < ex.ids.size(); ++k) ex.ids[k] = 7, ex.labels[k] = 7;
  return out;
}

TrainConfig small_config() {
  TrainConfig c;
  c.lr = 1e-2;
  c.schedule = LrSchedule::cosine;
  c.warmup_steps = 1;
  c.steps = 6;
  c.batch_rows = 4;
  c.seq_len = 14;
  c.weight_decay = 0.01;
  c.progress = false;
  return c;
}

using test::TempDir;

LoraConfig lora_config() {
  LoraConfig c;
  c.r = 4;
  c.alpha = 8;
  c.dropout = 0.1;
  c.target_modules = {"all-linear"};
  c.seed = 5;
  return c;
}

PromptTuningConfig prompt_config() {
  PromptTuningConfig c;
  c.num_virtual_tokens = 5;
  c.init = PromptInit::sample_vocab;
  c.seed = 3;
  return c;
}

void attach(Model& m, bool lora) {
  if (lora)
    add_lora(m, lora_config());
  else
    add_prompt_tuning(m, prompt_config());
}

std::vector<float> adapter_values(const Model& m) { return m.transformer().adapter()->params().to_vector<float>(); }

}  // namespace

TEST_CASE("training an adapter leaves the frozen base bitwise unchanged", "[cpu][peft]") {
  for (const bool lora : {true, false}) {
    INFO((lora ? "lora" : "prompt tuning"));
    Model model = Model::from_config(kTinyLlama, 4, 0.1, DType::f32, false);
    attach(model, lora);
    const model::Transformer& t = model.transformer();
    CHECK_FALSE(t.grads().defined());  // no gradient slab for the base at all
    for (const auto& p : t.named_params()) CHECK_FALSE(p.grad.defined());
    const std::vector<float> base = t.params().to_vector<float>(), before = adapter_values(model);
    VectorSource source(patterned(16, 2), 1);
    TrainConfig c = small_config();
    c.steps = 25;
    c.lr = lora ? 1e-2 : 0.1;
    Trainer trainer(model, source, c, 0);
    double first = -1;
    const StepMetrics last = trainer.train([&](const StepMetrics& m) {
      if (first < 0) first = m.loss;
    });
    INFO("loss " << first << " -> " << last.loss);
    CHECK(last.loss < first - 0.4);
    CHECK(t.params().to_vector<float>() == base);
    CHECK(adapter_values(model) != before);
  }
}

TEST_CASE("adapter checkpoints hold PEFT files and optimizer state for the adapter only, and resume bitwise", "[cpu][peft]") {
  for (const bool lora : {true, false}) {
    INFO((lora ? "lora" : "prompt tuning"));
    TempDir dir(lora ? "ckpt_lora" : "ckpt_prompt");
    const std::int64_t k = 3;
    TrainConfig c = small_config();
    c.steps = 2 * k;
    std::vector<float> straight;
    std::vector<double> straight_losses;
    {
      Model model = Model::from_config(kTinyLlama, 21, 0.1, DType::f32, false);
      attach(model, lora);
      VectorSource source(examples(30, 4), 8);
      Trainer trainer(model, source, c, 0);
      trainer.train([&](const StepMetrics& m) { straight_losses.push_back(m.loss); });
      straight = adapter_values(model);
    }
    std::string checkpoint;
    std::int64_t adapter_size = 0;
    {
      Model model = Model::from_config(kTinyLlama, 21, 0.1, DType::f32, false);
      attach(model, lora);
      adapter_size = model.transformer().adapter()->params().numel();
      VectorSource source(examples(30, 4), 8);
      TrainConfig first = c;
      first.output_dir = dir.str();
      Trainer trainer(model, source, first, 0);
      for (std::int64_t i = 0; i < k; ++i) trainer.step();
      checkpoint = trainer.save_checkpoint();
    }
    CHECK(fs::exists(checkpoint + "/adapter_config.json"));
    CHECK(fs::exists(checkpoint + "/adapter_model.safetensors"));
    CHECK_FALSE(fs::exists(checkpoint + "/model.safetensors"));
    const SafetensorsFile opt = SafetensorsFile::open(checkpoint + "/optimizer.safetensors");
    CHECK(opt.find("exp_avg")->shape == Shape{adapter_size});
    CHECK(opt.find("exp_avg_sq")->shape == Shape{adapter_size});
    // A fresh adapter (other values) on the same base takes everything from the checkpoint.
    Model model = Model::from_config(kTinyLlama, 21, 0.1, DType::f32, false);
    attach(model, lora);  // the same options (dropout seed included)...
    ops::scale_(model.transformer().adapter()->params(), 3.0);  // ...but other values
    VectorSource source(examples(30, 4), 8);
    Trainer trainer(model, source, c, 0);
    trainer.resume(checkpoint);
    std::vector<double> resumed_losses;
    trainer.train([&](const StepMetrics& m) { resumed_losses.push_back(m.loss); });
    REQUIRE(resumed_losses.size() == static_cast<std::size_t>(k));
    for (std::int64_t i = 0; i < k; ++i) CHECK(resumed_losses[i] == straight_losses[k + i]);
    CHECK(adapter_values(model) == straight);
    // A full fine-tuning checkpoint cannot resume an adapter run, and the reverse.
    Model full = Model::from_config(kTinyLlama, 21, 0.1);
    Trainer wrong(full, source, c, 0);
    CHECK_THROWS_WITH(wrong.resume(checkpoint), Catch::Contains("holds an adapter"));
  }
}

TEST_CASE("a frozen base without an adapter has nothing to train", "[cpu][peft]") {
  Model model = Model::from_config(kTinyLlama, 4, 0.1, DType::f32, false);
  VectorSource source(examples(8, 2), 1);
  CHECK_THROWS_WITH(Trainer(model, source, small_config(), 0), Catch::Contains("nothing to train"));
  Model trainable = Model::from_config(kTinyLlama, 4, 0.1);
  CHECK_THROWS_WITH(trainable.transformer().set_adapter(std::make_shared<peft::PromptAdapter>(trainable.transformer(), prompt_config())),
                    Catch::Contains("freeze the base"));
}

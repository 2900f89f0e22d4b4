// Full fine-tuning on cuda:0: bf16 weights with fp32 master weights and moments. The device run
// tracks the CPU f32 run from the same (bf16-representable) weights, the model's weights are
// the bf16 rounding of the master weights, micro-batches add up to the batch, and a resumed run
// is bitwise the uninterrupted one.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "hone/safetensors.h"
#include "hone/trainer.h"
#include "model/transformer.h"
#include "support/device_compare.h"
#include "support/device_tag.h"
#include "support/temp_dir.h"
#include "support/train_data.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

const Device kDev = Device::cuda(0);

// tests/support/train_data.h's tiny Llama with head dim 32 (the attention kernels' smallest).
const std::string kConfig = R"({"model_type": "llama", "vocab_size": 40, "hidden_size": 64,
  "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
  "head_dim": 32, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"})";

TrainConfig small_config() {
  TrainConfig c;
  c.lr = 3e-3;
  c.warmup_steps = 1;
  c.steps = 4;
  c.batch_rows = 2;
  c.seq_len = 16;
  c.weight_decay = 0.01;
  c.progress = false;
  return c;
}

std::vector<double> weights(const Model& m) { return m.transformer().params().to_vector<double>(); }


// A device model and a CPU model with the same weights (drawn once, rounded to bf16).
Model device_model(std::uint64_t seed) { return Model::from_config(kConfig, seed, 0.1, DType::bf16, true, kDev); }
Model cpu_twin(const Model& dev) {
  Model cpu = Model::from_config(kConfig, 0, 0.0);
  cpu.transformer().params().copy_from(dev.transformer().params().to(Device::cpu()).to(DType::f32));
  return cpu;
}


}  // namespace

TEST_CASE("training on the device tracks the CPU run from the same weights", HONE_DEVICE_TAG) {
  Model dev = device_model(21);
  Model cpu = cpu_twin(dev);
  REQUIRE(dev.device() == kDev);
  REQUIRE(dev.dtype() == DType::bf16);
  const std::vector<double> start = weights(cpu);
  std::vector<double> dev_losses, cpu_losses;
  {
    VectorSource source(test::examples(24, 4), 8);
    Trainer trainer(dev, source, small_config(), 0);
    trainer.train([&](const StepMetrics& m) { dev_losses.push_back(m.loss); });
  }
  {
    VectorSource source(test::examples(24, 4), 8);
    Trainer trainer(cpu, source, small_config(), 0);
    trainer.train([&](const StepMetrics& m) { cpu_losses.push_back(m.loss); });
  }
  REQUIRE(dev_losses.size() == 4);
  for (std::size_t i = 0; i < dev_losses.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(std::fabs(dev_losses[i] - cpu_losses[i]) < 1e-2 * cpu_losses[i]);
  }
  // The updates (not just the weights) agree: bf16 rounding of the weights is the main difference.
  std::vector<double> dev_step = weights(dev), cpu_step = weights(cpu);
  for (std::size_t i = 0; i < start.size(); ++i) dev_step[i] -= start[i], cpu_step[i] -= start[i];
  CHECK(test::rel_err(dev_step, cpu_step) < 0.1);
  CHECK(test::rel_err(weights(dev), weights(cpu)) < 5e-3);
}

TEST_CASE("the device model's weights are the bf16 rounding of the fp32 master weights", HONE_DEVICE_TAG) {
  test::TempDir dir("master");
  Model dev = device_model(5);
  VectorSource source(test::examples(24, 4), 8);
  TrainConfig c = small_config();
  c.steps = 2;
  c.output_dir = dir.path.string();
  Trainer trainer(dev, source, c, 0);
  trainer.train();
  const std::string checkpoint = trainer.save_checkpoint();
  const SafetensorsFile opt = SafetensorsFile::open(checkpoint + "/optimizer.safetensors");
  REQUIRE(opt.find("master") != nullptr);
  const Tensor master = opt.load("master", DType::f32);
  const Tensor& params = dev.transformer().params();
  REQUIRE(master.shape() == params.shape());
  // The saved model is the master weights (f32 here), not their bf16 rounding.
  trainer.save_model(dir.str("final"), DType::f32);
  const auto saved = model::Transformer::from_pretrained(dir.str("final"), DType::f32);
  CHECK(saved.params().to_vector<float>() == master.to_vector<float>());
  CHECK(master.to(DType::bf16).to_vector<float>() == params.to_vector<float>());
  CHECK(opt.load("exp_avg", DType::f32).shape() == params.shape());
  // The master weights hold what bf16 cannot: some differ from their rounding.
  const auto m = master.to_vector<double>(), p = params.to_vector<double>();
  std::size_t finer = 0;
  for (std::size_t i = 0; i < m.size(); ++i) finer += m[i] != p[i];
  CHECK(finer > m.size() / 2);
}

TEST_CASE("micro-batches on the device add up to the batch", HONE_DEVICE_TAG) {
  auto one_step = [&](std::int64_t rows, std::int64_t accum) {
    Model dev = device_model(8);
    VectorSource source(test::examples(24, 4), 8);
    TrainConfig c = small_config();
    c.steps = 1;
    c.batch_rows = rows;
    c.grad_accum = accum;
    std::vector<double> grads;
    Trainer trainer(dev, source, c, 0);
    trainer.set_gradient_hook([&](Model& m) { grads = m.transformer().grads().to_vector<double>(); });
    const StepMetrics s = trainer.step();
    return std::make_pair(s.loss, grads);
  };
  const auto whole = one_step(4, 1), split = one_step(1, 4);
  CHECK(std::fabs(whole.first - split.first) < 1e-5 * whole.first);
  CHECK(test::rel_err(split.second, whole.second) < 1e-3);
}

TEST_CASE("a resumed run on the device is bitwise the uninterrupted one", HONE_DEVICE_TAG) {
  test::TempDir dir("resume");
  const std::int64_t k = 2;
  TrainConfig c = small_config();
  c.steps = 2 * k;
  std::vector<double> straight, straight_losses;
  {
    Model dev = device_model(21);
    VectorSource source(test::examples(24, 4), 8);
    Trainer trainer(dev, source, c, 0);
    trainer.train([&](const StepMetrics& m) { straight_losses.push_back(m.loss); });
    straight = weights(dev);
  }
  std::string checkpoint;
  {
    Model dev = device_model(21);
    VectorSource source(test::examples(24, 4), 8);
    TrainConfig first = c;
    first.output_dir = dir.path.string();
    Trainer trainer(dev, source, first, 0);
    for (std::int64_t i = 0; i < k; ++i) trainer.step();
    checkpoint = trainer.save_checkpoint();
  }
  Model dev = device_model(99);  // other weights: everything must come from the checkpoint
  VectorSource source(test::examples(24, 4), 8);
  Trainer trainer(dev, source, c, 0);
  trainer.resume(checkpoint);
  std::vector<double> losses;
  trainer.train([&](const StepMetrics& m) { losses.push_back(m.loss); });
  REQUIRE(losses.size() == static_cast<std::size_t>(k));
  for (std::int64_t i = 0; i < k; ++i) CHECK(losses[i] == straight_losses[k + i]);
  CHECK(weights(dev) == straight);
}

TEST_CASE("checkpoints move between the device and the CPU", HONE_DEVICE_TAG) {
  test::TempDir dir("cross");
  TrainConfig c = small_config();
  c.steps = 2;
  c.output_dir = dir.str("device");
  std::string device_checkpoint;
  {
    Model dev = device_model(3);
    VectorSource source(test::examples(24, 4), 8);
    Trainer trainer(dev, source, c, 0);
    trainer.train();
    device_checkpoint = trainer.save_checkpoint();
  }
  // On the CPU the f32 weights come from the device run's fp32 master weights, not their bf16
  // rounding in model.safetensors.
  const Tensor master = SafetensorsFile::open(device_checkpoint + "/optimizer.safetensors").load("master", DType::f32);
  Model cpu = Model::from_config(kConfig, 0, 0.0);
  {
    VectorSource source(test::examples(24, 4), 8);
    TrainConfig more = c;
    more.steps = 3;
    Trainer trainer(cpu, source, more, 0);
    trainer.resume(device_checkpoint);
    CHECK(cpu.transformer().params().to_vector<float>() == master.to_vector<float>());
    CHECK(trainer.current_step() == 2);
    trainer.save_checkpoint();  // a CPU checkpoint (no master weights) at step 2 in c.output_dir
  }
  // A CPU checkpoint resumed on the device: master weights start from its weights.
  Model dev = device_model(99);
  VectorSource source(test::examples(24, 4), 8);
  TrainConfig more = c;
  more.steps = 3;
  Trainer trainer(dev, source, more, 0);
  trainer.resume(latest_checkpoint(c.output_dir));
  CHECK(dev.transformer().params().to_vector<float>() == master.to(DType::bf16).to_vector<float>());
  const StepMetrics m = trainer.step();
  CHECK(std::isfinite(m.loss));
  CHECK(m.step == 3);
}

// LoRA and prompt tuning on a model on cuda:0 (bf16 base and adapter values, f32 adapter
// gradients) against the same adapters on the CPU f32 model with the same bf16-representable
// base and adapter values: logits, loss and adapter gradients (dropout included: both backends
// draw the same mask), training through the Trainer with the base left bitwise unchanged,
// merging, and adapter files written from the device.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "hone/peft.h"
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

std::string config_of(const std::string& family) { return test::config_head_dim_32(family, 2, 1); }
using test::Packed;
using test::packed_batch;
using test::rel_err;
using test::rms;

// A frozen bf16 model on cuda:0 (random weights) and a frozen CPU f32 model with the same values.
struct Pair {
  Model dev, cpu;
};
Pair twins(const std::string& config, std::uint64_t seed = 7) {
  Pair p{Model::from_config(config, seed, 0.1, DType::bf16, false, kDev),
         Model::from_config(config, 0, 0.0, DType::f32, false)};
  p.cpu.transformer().params().copy_from(p.dev.transformer().params().to(Device::cpu()).to(DType::f32));
  return p;
}

// The CPU adapter takes the device adapter's (bf16) values.
void copy_adapter(Pair& p) {
  p.cpu.transformer().adapter()->params().copy_from(
      p.dev.transformer().adapter()->params().to(Device::cpu()).to(DType::f32));
}

LoraConfig lora_config(double dropout) {
  LoraConfig c;
  c.r = 4;
  c.alpha = 8;
  c.dropout = dropout;
  c.target_modules = {"all-linear"};
  c.init = LoraInit::none;  // B random too: the adapter changes the outputs
  c.seed = 3;
  return c;
}

PromptTuningConfig prompt_config() {
  PromptTuningConfig c;
  c.num_virtual_tokens = 3;
  c.init = PromptInit::random;
  c.seed = 4;
  return c;
}

// Logits, loss and adapter gradients of the pair (training mode on `stream` when `training`).
void compare_forward_backward(Pair& p, bool training, std::uint64_t stream) {
  model::Transformer& dev = p.dev.transformer();
  model::Transformer& cpu = p.cpu.transformer();
  const Packed b = packed_batch(cpu.config().vocab_size, 11);
  dev.adapter()->set_training(training, stream);
  cpu.adapter()->set_training(training, stream);

  const Tensor ref_logits = cpu.forward(b.batch);
  const Tensor logits = dev.forward(b.batch);
  REQUIRE(logits.device() == kDev);
  CHECK(rel_err(logits, ref_logits) < 2e-2);

  const double scale = 1.0 / b.counted;
  const double ref_loss = cpu.loss(b.batch, b.targets, scale, true, false, -100, 8);
  const double loss = dev.loss(b.batch, b.targets, scale, true, false, -100, 8);
  CHECK(std::fabs(loss - ref_loss) < 1e-2 * std::fabs(ref_loss));
  REQUIRE(dev.adapter()->grads().dtype() == DType::f32);
  REQUIRE(dev.adapter()->grads().device() == kDev);
  const double floor = 0.1 * rms(cpu.adapter()->grads());
  REQUIRE(floor > 0);
  const auto& ref = cpu.adapter()->named_params();
  const auto& got = dev.adapter()->named_params();
  REQUIRE(ref.size() == got.size());
  for (std::size_t i = 0; i < ref.size(); ++i) {
    INFO(ref[i].name);
    CHECK(got[i].name == ref[i].name);
    CHECK(rel_err(got[i].grad, ref[i].grad, floor) < 5e-2);
  }
  dev.adapter()->set_training(false, 0);
  cpu.adapter()->set_training(false, 0);
}

using test::TempDir;

TrainConfig train_config() {
  TrainConfig c;
  c.lr = 3e-3;
  c.warmup_steps = 1;
  c.steps = 3;
  c.batch_rows = 2;
  c.seq_len = 16;
  c.weight_decay = 0.01;
  c.progress = false;
  return c;
}

std::vector<float> values(const Tensor& t) { return t.to_vector<float>(); }
double norm(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x * x;
  return std::sqrt(sum);
}

}  // namespace

TEST_CASE("LoRA on the device matches the CPU: logits, loss and adapter gradients", HONE_DEVICE_TAG) {
  for (const std::string family : {"llama", "gpt2"}) {
    for (const double dropout : {0.0, 0.25}) {
      INFO(family << " dropout " << dropout);
      Pair p = twins(config_of(family));
      const Packed b = packed_batch(p.cpu.transformer().config().vocab_size, 11);
      const Tensor base_logits = p.cpu.transformer().forward(b.batch);
      add_lora(p.dev, lora_config(dropout));
      add_lora(p.cpu, lora_config(dropout));
      const model::Adapter& a = *p.dev.transformer().adapter();
      REQUIRE(a.params().device() == kDev);
      REQUIRE(a.params().dtype() == DType::bf16);
      copy_adapter(p);
      // The adapter matters: its term moves the logits well beyond bf16 rounding.
      CHECK(rel_err(p.cpu.transformer().forward(b.batch), base_logits) > 0.05);
      compare_forward_backward(p, dropout > 0, 5);
    }
  }
}

TEST_CASE("LoRA dropout draws the same mask on the device as on the CPU", HONE_DEVICE_TAG) {
  Pair p = twins(config_of("llama"));
  add_lora(p.dev, lora_config(0.5));
  add_lora(p.cpu, lora_config(0.5));
  copy_adapter(p);
  const Packed b = packed_batch(p.cpu.transformer().config().vocab_size, 2);
  model::Transformer& dev = p.dev.transformer();
  model::Transformer& cpu = p.cpu.transformer();
  auto logits = [&](model::Transformer& t, bool training, std::uint64_t stream) {
    t.adapter()->set_training(training, stream);
    const Tensor l = t.forward(b.batch).to(Device::cpu());
    t.adapter()->set_training(false, 0);
    return l.dtype() == DType::f32 ? l : l.to(DType::f32);
  };
  const Tensor eval = logits(cpu, false, 0), s1 = logits(cpu, true, 1), s2 = logits(cpu, true, 2);
  // Dropout changes the logits, and another stream another way; the device follows each.
  CHECK(rel_err(s1, eval) > 0.05);
  CHECK(rel_err(s2, s1) > 0.05);
  CHECK(rel_err(logits(dev, true, 1), s1) < 2e-2);
  CHECK(rel_err(logits(dev, true, 2), s2) < 2e-2);
  CHECK(rel_err(logits(dev, false, 0), eval) < 2e-2);
}

TEST_CASE("prompt tuning on the device matches the CPU: logits, loss and prompt gradient", HONE_DEVICE_TAG) {
  for (const std::string family : {"llama", "gpt2"}) {
    INFO(family);
    Pair p = twins(config_of(family));
    add_prompt_tuning(p.dev, prompt_config());
    add_prompt_tuning(p.cpu, prompt_config());
    const Tensor prompt = p.dev.transformer().adapter()->prompt();
    REQUIRE(prompt.device() == kDev);
    REQUIRE(prompt.dtype() == DType::bf16);
    REQUIRE(prompt.shape() == (Shape{3, 64}));
    CHECK(rms(prompt) > 0.5);  // standard normal
    copy_adapter(p);
    compare_forward_backward(p, true, 0);
  }
}

TEST_CASE("prompt tuning's vocabulary initialisation reads the device model's embeddings", HONE_DEVICE_TAG) {
  Pair p = twins(config_of("llama"));
  PromptTuningConfig c = prompt_config();
  c.init = PromptInit::sample_vocab;
  add_prompt_tuning(p.dev, c);
  add_prompt_tuning(p.cpu, c);
  const Tensor dev = p.dev.transformer().adapter()->prompt();
  CHECK(rms(dev) > 0.05);  // rows of the embedding (std 0.1)
  CHECK(dev.to_vector<double>() == p.cpu.transformer().adapter()->prompt().to_vector<double>());
}

// AdamW's first steps amplify bf16 noise (a step moves each element by about ±lr whatever the
// gradient's size, so tiny gradients whose sign differs move the other way), so the runs are
// compared step by step: the CPU run takes the device's gradient after checking it against its
// own, and the device's bf16 adapter must then be the rounding of the CPU's f32 one.
TEST_CASE("training an adapter on the device moves the adapter only and follows the CPU update", HONE_DEVICE_TAG) {
  for (const bool lora : {true, false}) {
    INFO((lora ? "LoRA" : "prompt tuning"));
    Pair p = twins(config_of("llama"), 21);
    if (lora) {
      add_lora(p.dev, lora_config(0.1));
      add_lora(p.cpu, lora_config(0.1));
    } else {
      add_prompt_tuning(p.dev, prompt_config());
      add_prompt_tuning(p.cpu, prompt_config());
    }
    copy_adapter(p);
    const std::vector<float> base = values(p.dev.transformer().params());
    const std::vector<double> start = p.cpu.transformer().adapter()->params().to_vector<double>();
    std::vector<double> dev_losses, cpu_losses;
    std::vector<Tensor> dev_grads;
    {
      VectorSource source(test::examples(24, 4), 8);
      Trainer trainer(p.dev, source, train_config(), 0);
      trainer.set_gradient_hook(
          [&](Model& m) { dev_grads.push_back(m.transformer().adapter()->grads().to(Device::cpu())); });
      trainer.train([&](const StepMetrics& s) { dev_losses.push_back(s.loss); });
    }
    {
      VectorSource source(test::examples(24, 4), 8);
      Trainer trainer(p.cpu, source, train_config(), 0);
      std::size_t step = 0;
      trainer.set_gradient_hook([&](Model& m) {
        INFO("step " << step + 1);
        const Tensor& g = m.transformer().adapter()->grads();
        REQUIRE(step < dev_grads.size());
        CHECK(rel_err(dev_grads[step], g) < 5e-2);
        g.copy_from(dev_grads[step++]);
      });
      trainer.train([&](const StepMetrics& s) { cpu_losses.push_back(s.loss); });
    }
    CHECK(values(p.dev.transformer().params()) == base);  // the frozen base: bitwise
    REQUIRE(dev_losses.size() == 3);
    REQUIRE(cpu_losses.size() == 3);
    for (std::size_t i = 0; i < dev_losses.size(); ++i) {
      INFO("step " << i + 1);
      CHECK(std::fabs(dev_losses[i] - cpu_losses[i]) < 1e-2 * cpu_losses[i]);
    }
    // Every element within half a bf16 ulp of the CPU's value (2^-8 of its magnitude at most).
    const std::vector<double> dev = p.dev.transformer().adapter()->params().to_vector<double>();
    const std::vector<double> cpu = p.cpu.transformer().adapter()->params().to_vector<double>();
    std::size_t moved = 0, outside = 0;
    for (std::size_t i = 0; i < cpu.size(); ++i) {
      moved += std::fabs(cpu[i] - start[i]) > 1e-3;
      outside += std::fabs(dev[i] - cpu[i]) > std::ldexp(std::fabs(cpu[i]), -8) * 1.001 + 1e-7;
    }
    CHECK(moved > cpu.size() / 2);  // three steps of lr 3e-3 move almost every element
    CHECK(outside == 0);
  }
}

TEST_CASE("a LoRA run on the device resumes bitwise from its checkpoint", HONE_DEVICE_TAG) {
  TempDir dir("resume");
  TrainConfig c = train_config();
  c.steps = 4;
  auto fresh = [&] {
    Model m = Model::from_config(config_of("llama"), 21, 0.2, DType::bf16, false, kDev);
    add_lora(m, lora_config(0.1));
    return m;
  };
  std::vector<float> straight;
  std::vector<double> straight_losses;
  {
    Model m = fresh();
    VectorSource source(test::examples(24, 4), 8);
    Trainer trainer(m, source, c, 0);
    trainer.train([&](const StepMetrics& s) { straight_losses.push_back(s.loss); });
    straight = values(m.transformer().adapter()->params());
  }
  std::string checkpoint;
  {
    Model m = fresh();
    VectorSource source(test::examples(24, 4), 8);
    TrainConfig first = c;
    first.output_dir = dir.str();
    Trainer trainer(m, source, first, 0);
    trainer.step();
    trainer.step();
    checkpoint = trainer.save_checkpoint();
    // The adapter a run hands over is its fp32 master weights, not their bf16 rounding.
    trainer.save_model(dir.str() + "/final", DType::f32, "base");
    const Tensor master = SafetensorsFile::open(checkpoint + "/optimizer.safetensors").load("master", DType::f32);
    const SafetensorsFile saved = SafetensorsFile::open(dir.str() + "/final/adapter_model.safetensors");
    const Tensor& slab = m.transformer().adapter()->params();
    std::size_t finer = 0;
    for (const model::Param& p : m.transformer().adapter()->named_params()) {
      const std::int64_t at = model::offset_in(p.value, slab);
      const auto want = master.slice(at, at + p.value.numel()).to_vector<float>();
      CHECK(saved.load(p.name, DType::f32).to_vector<float>() == want);
      const auto rounded = p.value.to_vector<float>();
      for (std::size_t i = 0; i < want.size(); ++i) finer += want[i] != rounded[i];
    }
    CHECK(finer > 0);  // some master values differ from their bf16 rounding
  }
  Model m = fresh();
  m.transformer().adapter()->params().fill(0.0);  // everything must come from the checkpoint
  VectorSource source(test::examples(24, 4), 8);
  Trainer trainer(m, source, c, 0);
  trainer.resume(checkpoint);
  std::vector<double> losses;
  trainer.train([&](const StepMetrics& s) { losses.push_back(s.loss); });
  REQUIRE(losses.size() == 2);
  CHECK(losses[0] == straight_losses[2]);
  CHECK(losses[1] == straight_losses[3]);
  CHECK(values(m.transformer().adapter()->params()) == straight);
}

TEST_CASE("merging LoRA on the device equals the CPU merge up to bf16 rounding", HONE_DEVICE_TAG) {
  for (const std::string family : {"llama", "gpt2"}) {
    INFO(family);
    Pair p = twins(config_of(family));
    add_lora(p.dev, lora_config(0.0));
    add_lora(p.cpu, lora_config(0.0));
    copy_adapter(p);
    const Packed b = packed_batch(p.cpu.transformer().config().vocab_size, 3);
    const Tensor before = p.dev.transformer().params().to(Device::cpu()).to(DType::f32);
    const Tensor unmerged_logits = p.dev.transformer().forward(b.batch);
    merge_adapter(p.dev);
    merge_adapter(p.cpu);
    CHECK(adapter_info(p.dev).merged);
    const std::vector<double> dev = p.dev.transformer().params().to_vector<double>();
    const std::vector<double> cpu = p.cpu.transformer().params().to_vector<double>();
    const std::vector<double> orig = before.to_vector<double>();
    // Each merged bf16 weight is the rounding of the fp32 sum W + s·B·A: within half an ulp,
    // at most 2^-8 of its magnitude (and the two backends' fp32 sums differ far less).
    std::size_t changed = 0, outside = 0;
    for (std::size_t i = 0; i < dev.size(); ++i) {
      changed += cpu[i] != orig[i];
      outside += std::fabs(dev[i] - cpu[i]) > std::ldexp(std::fabs(cpu[i]), -8) * 1.001 + 1e-6;
    }
    CHECK(changed > dev.size() / 4);
    CHECK(outside == 0);
    // The merged model computes what the adapter did.
    CHECK(rel_err(p.dev.transformer().forward(b.batch), unmerged_logits) < 2e-2);
    unmerge_adapter(p.dev);
    CHECK_FALSE(adapter_info(p.dev).merged);
    CHECK(rel_err(p.dev.transformer().params(), before) < 1e-2);
  }
}

TEST_CASE("adapters saved from the device load with the same values on the CPU and back", HONE_DEVICE_TAG) {
  TempDir dir("files");
  for (const bool lora : {true, false}) {
    INFO((lora ? "LoRA" : "prompt tuning"));
    Pair p = twins(config_of("gpt2"));
    if (lora)
      add_lora(p.dev, lora_config(0.0));
    else
      add_prompt_tuning(p.dev, prompt_config());
    const std::vector<double> dev = p.dev.transformer().adapter()->params().to_vector<double>();
    const std::string f32_dir = dir.str() + (lora ? "/lora_f32" : "/prompt_f32");
    const std::string bf16_dir = dir.str() + (lora ? "/lora_bf16" : "/prompt_bf16");
    save_adapter(p.dev, f32_dir, "base", DType::f32);
    save_adapter(p.dev, bf16_dir, "base", DType::bf16);
    // f32 file → CPU model: the device's bf16 values exactly.
    load_adapter(p.cpu, f32_dir);
    CHECK(adapter_info(p.cpu).kind == (lora ? AdapterKind::lora : AdapterKind::prompt_tuning));
    CHECK(p.cpu.transformer().adapter()->params().to_vector<double>() == dev);
    // bf16 file (the checkpoint's dtype) → another device model: bitwise.
    Model other = Model::from_config(config_of("gpt2"), 9, 0.2, DType::bf16, false, kDev);
    load_adapter(other, bf16_dir);
    REQUIRE(other.transformer().adapter()->params().device() == kDev);
    CHECK(other.transformer().adapter()->params().to_vector<double>() == dev);
    // A CPU adapter with values finer than bf16 loads onto the device as their rounding.
    if (lora) {
      Model cpu = Model::from_config(config_of("gpt2"), 0, 0.0, DType::f32, false);
      add_lora(cpu, lora_config(0.0));
      const std::string cpu_dir = dir.str() + "/cpu_lora";
      save_adapter(cpu, cpu_dir, "base", DType::f32);
      load_adapter(other, cpu_dir);
      const Tensor want = cpu.transformer().adapter()->params().to(DType::bf16).to(DType::f32);
      CHECK(other.transformer().adapter()->params().to_vector<double>() == want.to_vector<double>());
    }
  }
}

// hone::Model: a decoder-only transformer of a supported family (llama, mistral, qwen2, qwen3,
// gpt2) loaded from, or saved to, a Hugging Face folder (config.json + safetensors).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hone/device.h"
#include "hone/dtype.h"
#include "hone/tensor.h"

namespace hone {

namespace model {
class Transformer;
}

struct ModelInfo {
  std::string family;  // model_type of config.json
  std::int64_t parameters = 0;
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t layers = 0;
  std::int64_t max_positions = 0;
};

class Model {
 public:
  // Reads config.json and the weights (one file or shards) of a Hugging Face folder, converted
  // to `dtype` on `device`: f32 (or f64 for checks) on the CPU, bf16 on a CUDA device (where
  // gradients are f32 and the trainer keeps fp32 master weights). Errors name the file and the
  // tensor. With train_base false the weights are frozen from the start: no gradient memory is
  // ever allocated for them (for LoRA and prompt tuning, hone/peft.h).
  static Model load(const std::string& dir, DType dtype = DType::f32, bool train_base = true,
                    Device device = Device::cpu());
  // A model of the architecture described by a config.json text, with normal(0, std) weights
  // drawn from Philox(seed), norms at one and biases at zero.
  static Model from_config(const std::string& config_json, std::uint64_t seed, double std = 0.02,
                           DType dtype = DType::f32, bool train_base = true, Device device = Device::cpu());
  // The dtype a model computes in on `device`: f32 on the CPU, bf16 on CUDA.
  static DType compute_dtype(Device device) { return device.is_cuda() ? DType::bf16 : DType::f32; }

  // Writes config.json and the weights in Hugging Face names and layouts, in `storage`
  // (default: the dtype config.json names). Files appear whole or not at all.
  void save(const std::string& dir, std::optional<DType> storage = std::nullopt) const;

  ModelInfo info() const;
  DType dtype() const;
  Device device() const;
  // Next-token logits (V) after the tokens of one sequence.
  std::vector<float> next_token_logits(const std::vector<std::int32_t>& ids);
  // Greedy continuation: up to max_new_tokens ids, stopping after any id in stop_ids.
  std::vector<std::int32_t> greedy(const std::vector<std::int32_t>& prompt, std::int64_t max_new_tokens,
                                   const std::vector<std::int32_t>& stop_ids = {});

  // The engine's model (internal header engine/model/transformer.h).
  model::Transformer& transformer() { return *impl_; }
  const model::Transformer& transformer() const { return *impl_; }

 private:
  explicit Model(std::shared_ptr<model::Transformer> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<model::Transformer> impl_;
};

}  // namespace hone

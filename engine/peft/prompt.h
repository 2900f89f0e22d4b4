// Prompt tuning: Nv trainable embeddings (Nv, D) placed before every sequence (the Transformer
// splices them in and shifts positions); only they are trained. On a device the embeddings are
// bf16 (the trainer keeps their fp32 master weights) and their gradient f32.
#pragma once
#include <vector>

#include "hone/peft.h"
#include "model/transformer.h"

namespace hone::peft {

class PromptAdapter : public model::Adapter {
 public:
  // Zero embeddings of the base's width, dtype and device.
  PromptAdapter(const model::Transformer& base, const PromptTuningConfig& config);
  // PEFT's initialisations (see PromptInit); `tokenizer` is needed for PromptInit::text.
  void init(const model::Transformer& base, const Tokenizer* tokenizer);

  const Tensor& params() const override { return params_; }
  const Tensor& grads() const override { return grads_; }
  const std::vector<model::Param>& named_params() const override { return named_; }  // "prompt_embeddings"
  Tensor prompt() const override { return named_[0].value; }
  void prompt_bwd(const Tensor& dprompt) override;
  const PromptTuningConfig& config() const { return config_; }

 private:
  PromptTuningConfig config_;
  Tensor params_, grads_;
  std::vector<model::Param> named_;
  Tensor rows_;  // 0…Nv−1 (i64) on the device when the gradient's dtype differs from the values'
};

}  // namespace hone::peft

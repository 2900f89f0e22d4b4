// LoRA on a Transformer's linear layers: y = W x + scale · B A dropout(x), A (r, in), B (out, r),
// in one parameter slab on the model's device and in its dtype (bf16 on CUDA, where the trainer
// keeps fp32 master weights) with its gradient slab in the model's gradient dtype (f32 on CUDA),
// merge and unmerge.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "hone/peft.h"
#include "model/transformer.h"

namespace hone::peft {

// One adapted Hugging Face linear layer of block `layer`. Its output is the concatenation of
// the projections' outputs (GPT-2's c_attn: q | k | v), so B's rows split the same way.
struct LoraModule {
  std::string key;                 // module name, e.g. model.layers.0.self_attn.q_proj
  std::int64_t layer = 0;
  std::vector<model::Proj> projs;  // output blocks, in order
  std::vector<std::int64_t> rows;  // out features of each block
  std::int64_t in = 0, out = 0, r = 0;
  double alpha = 0, scale = 0;
  Tensor A, B, dA, dB;             // (r, in), (out, r) views of the slabs
};

// The linear layers a config selects on this model, in block order (checked: r ≥ 1, no target
// outside the linear layers, at least one match).
std::vector<LoraModule> resolve_lora_modules(const model::TransformerConfig& model, const LoraConfig& config);
// The module names a model offers for LoRA (for messages and all-linear).
std::vector<std::string> lora_candidate_names(const model::TransformerConfig& model);

class LoraAdapter : public model::Adapter {
 public:
  // Zero A and B for the modules `config` selects on `base`, on its device and in its dtype.
  LoraAdapter(const model::Transformer& base, const LoraConfig& config);
  void init();  // as PEFT: see LoraInit

  const Tensor& params() const override { return params_; }
  const Tensor& grads() const override { return grads_; }
  // Named by their PEFT tensor names (base_model.model.<module>.lora_A.weight, lora_B).
  const std::vector<model::Param>& named_params() const override { return named_; }
  void linear_fwd(std::int64_t layer, const std::vector<model::Proj>& projs, const Tensor& x,
                  const std::vector<Tensor>& outs) override;
  void linear_bwd(std::int64_t layer, const std::vector<model::Proj>& projs, const Tensor& x,
                  const std::vector<Tensor>& douts, const Tensor& din) override;
  void set_training(bool training, std::uint64_t stream) override;

  // W_block += sign · scale · B_block · A for every module (sign = +1 merges, −1 unmerges), on
  // the model's device. bf16 weights take the rounding of W + sign · scale · B · A (fp32 sums),
  // so an unmerge restores them only up to that rounding.
  void merge(model::Transformer& base);
  void unmerge(model::Transformer& base);
  bool merged() const { return merged_; }
  const LoraConfig& config() const { return config_; }
  const std::vector<LoraModule>& modules() const { return modules_; }
  bool fan_in_fan_out() const { return gpt2_; }

 private:
  void fold(model::Transformer& base, double sign);
  // Dropout keep mask (N, in) scaled by 1/(1 − p) for module m under `stream`, drawn on the
  // model's device (Philox gives the same draws everywhere): in the model's dtype on the CPU, f32
  // on a device.
  Tensor dropout_mask(std::size_t m, std::int64_t rows) const;

  LoraConfig config_;
  DType dtype_;
  Device device_;
  bool gpt2_ = false;
  std::vector<LoraModule> modules_;
  std::vector<std::vector<std::size_t>> by_layer_;  // block → its modules
  Tensor params_, grads_;
  std::vector<model::Param> named_;
  bool merged_ = false, training_ = false;
  std::uint64_t stream_ = 0;
  struct Saved {
    Tensor xd, u;  // the dropped-out input (undefined without dropout) and A·xd (N, r)
  };
  std::vector<Saved> saved_;
};

}  // namespace hone::peft

// Transformer: a decoder-only model of any supported family (model/config.h) with its
// parameters in one slab, an explicit forward and backward over packed sequences, and
// Hugging Face checkpoint loading and saving (names, layouts, tied embeddings).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hone/safetensors.h"
#include "hone/tensor.h"
#include "model/config.h"

namespace hone::model {

// Tokens to run: ids (N) i64 with cu_seqlens (S + 1) i32 and positions (N) i64 — several
// sequences packed end to end — or ids (B, T), which means B sequences of length T.
struct Batch {
  Tensor ids;
  Tensor positions;   // optional with (B, T) ids: 0..T−1 in every row
  Tensor cu_seqlens;  // optional with (B, T) ids
};

class Transformer {
 public:
  // Parameters in `dtype` (f32 or f64), zero until loaded or initialised.
  Transformer(TransformerConfig config, DType dtype);
  static Transformer from_pretrained(const std::string& dir, DType dtype);

  // Reads every parameter from a checkpoint with Hugging Face names (converted to `dtype`);
  // a missing or wrongly shaped tensor is an error naming it; tensors the model does not use
  // are listed in the returned vector.
  std::vector<std::string> load(const SafetensorsCheckpoint& checkpoint);
  // The parameters (or their gradients) under Hugging Face names and layouts, in `as`.
  std::vector<std::pair<std::string, Tensor>> hf_state(bool gradients = false, DType as = DType::f32) const;
  // Writes config.json and the weights (Hugging Face names and layouts) into `dir`, in
  // `storage` (default: the checkpoint's own dtype from config.json): model.safetensors, or
  // shards of at most `max_shard_bytes` with model.safetensors.index.json.
  void save_pretrained(const std::string& dir, std::optional<DType> storage = std::nullopt,
                       std::uint64_t max_shard_bytes = 5'000'000'000ull) const;
  // Normal(0, std) weights from Philox (seed), norms at one, biases at zero.
  void init_random(std::uint64_t seed, double std = 0.02);

  // Logits (N, V) for every token; keeps what backward needs.
  Tensor forward(const Batch& batch);
  // grads() = d(Σ dlogits ⊙ logits)/d(params) for the last forward: overwritten, or added to
  // the gradients already there with `accumulate`.
  void backward(const Tensor& dlogits, bool accumulate = false);

  const TransformerConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  const Tensor& params() const { return params_; }  // (P)
  const Tensor& grads() const { return grads_; }    // (P)
  // Hugging Face name → (parameter view, gradient view), in checkpoint layout where it differs
  // (see hf_layout). For GPT-2, Conv1D weights are stored transposed and c_attn split.
  struct Param {
    std::string name;  // internal name, e.g. "layers.0.wq"
    Tensor value, grad;
  };
  const std::vector<Param>& named_params() const { return named_; }
  // The Hugging Face tensor that holds internal parameter `internal` (e.g. "layers.0.wq" →
  // "model.layers.0.self_attn.q_proj.weight"); `internal` itself when none does.
  std::string hf_name(const std::string& internal) const;

 private:
  struct Layer;
  struct Acts;
  void build_views();
  const Tensor& param(const std::string& name) const;
  const Tensor& grad(const std::string& name) const;

  TransformerConfig config_;
  DType dtype_;
  Tensor params_, grads_;
  std::vector<Param> named_;
  struct ActsDeleter {
    void operator()(Acts* a) const;
  };
  std::unique_ptr<Acts, ActsDeleter> acts_;
};

}  // namespace hone::model

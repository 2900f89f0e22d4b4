// Decoder: the narrow interface the generator drives — start a batch of prompts, then feed one
// token per live sequence and get its next-token logits back. Two implementations: a KV-cache
// decoder (prefill on the training forward's ops, then decode against cached keys and values)
// and a recompute decoder that runs the model's whole forward every step, the reference the
// cache is tested against. Both run on the model's device (the CPU in f32/f64, CUDA in bf16).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "hone/tensor.h"
#include "model/transformer.h"

namespace hone::infer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Starts one sequence per prompt (each non-empty) and returns the logits (B, V) of each
  // prompt's last token, in the model's dtype on the model's device (bf16 on CUDA: the sampler
  // picks tokens there and copies only the ids back; see sampler.h).
  virtual Tensor prefill(const std::vector<std::vector<std::int32_t>>& prompts) = 0;
  // Appends next[i] to live sequence i and returns the logits (live, V) of those tokens.
  virtual Tensor step(const std::vector<std::int32_t>& next) = 0;
  // Keeps the live sequences `rows` (indices into the current live order, increasing) and
  // drops the others; their order becomes the new live order.
  virtual void retain(const std::vector<std::int64_t>& rows) = 0;
  // Tokens (prompt and generated) held per live sequence; an adapter's virtual tokens are not
  // counted.
  virtual std::vector<std::int64_t> lengths() const = 0;
};

// The model (with whatever adapter is attached to it: LoRA's term in every linear layer, a
// prompt-tuning prefix before every sequence) must outlive the decoder and stay unchanged
// while it runs. Neither decoder keeps the model's saved activations meaningful.
std::unique_ptr<Decoder> make_cached_decoder(model::Transformer& model);
std::unique_ptr<Decoder> make_recompute_decoder(model::Transformer& model);

// The most tokens a sequence may hold: max_position_embeddings less the adapter's virtual
// tokens (they take positions 0…Nv−1 before the prompt).
std::int64_t max_sequence_tokens(const model::Transformer& model);

}  // namespace hone::infer

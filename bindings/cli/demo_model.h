// The demo behind `hone demo`: a two-layer decoder-only language model over bytes (Llama-style:
// RMSNorm, RoPE, grouped-query causal attention, SwiGLU, tied embeddings) written directly on
// the ops, trained end to end on the CPU. It exercises every op forward and backward until the
// Hugging Face model families arrive; it is not the engine's model code.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "hone/tensor.h"

namespace hone::demo {

struct DemoConfig {
  std::int64_t vocab = 256;  // bytes
  std::int64_t dim = 64;
  std::int64_t heads = 4;
  std::int64_t kv_heads = 2;
  std::int64_t head_dim = 16;
  std::int64_t ffn = 128;
  std::int64_t layers = 2;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
};

class DemoModel {
 public:
  // Parameters in `dtype` (f32 or f64), initialised from Philox with `seed`.
  DemoModel(const DemoConfig& config, DType dtype, std::uint64_t seed);

  // tokens: i64 (B, T + 1); predicts tokens[:, 1:] from tokens[:, :T]. Returns the mean
  // cross-entropy. With backward, grads() holds d(mean loss)/d(params) (overwritten).
  double forward_backward(const Tensor& tokens, bool backward);
  // Logits (V) for the token after `context` (1 ≤ length).
  std::vector<float> next_logits(const std::vector<std::int64_t>& context);

  const Tensor& params() const { return params_; }  // (P): every parameter, one slab
  const Tensor& grads() const { return grads_; }    // (P)
  const DemoConfig& config() const { return config_; }

 private:
  struct Weights {
    Tensor embed;  // (V, d), also the output projection
    Tensor final_norm;
    struct Layer {
      Tensor attn_norm, wq, wk, wv, wo, mlp_norm, wg, wu, wd;  // linear weights (out, in)
    };
    std::vector<Layer> layers;
  };
  Weights carve(const Tensor& slab) const;  // named views into a slab
  void forward(const Tensor& inputs);       // fills acts_
  void backward(const Tensor& inputs, const Tensor& targets);

  struct LayerActs {
    Tensor x, h1, rstd1, q, k, v, o, lse, x1, h2, rstd2, g, u, s;
  };
  struct Acts {
    std::int64_t batch = 0, time = 0;
    Tensor positions;  // (B, T) i64
    std::vector<LayerActs> layers;
    Tensor x_final, h_final, rstd_final, logits, lse_ce, losses;
  };

  DemoConfig config_;
  DType dtype_;
  Tensor params_, grads_;
  Weights w_, dw_;
  Acts acts_;
};

// The text the demo trains on (embedded, a few kilobytes).
const std::string& demo_text();

}  // namespace hone::demo

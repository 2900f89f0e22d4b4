// TransformerConfig: the architecture of a decoder-only model, read from a Hugging Face
// config.json (Llama, Mistral, Qwen2, Qwen3, GPT-2 families).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace hone::model {

enum class Family { llama, mistral, qwen2, qwen3, gpt2 };
const char* family_name(Family f);

struct TransformerConfig {
  Family family = Family::llama;
  std::string model_type;         // as in the file
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t max_position_embeddings = 0;
  double norm_eps = 1e-6;         // rms_norm_eps, or layer_norm_epsilon for GPT-2
  bool tie_word_embeddings = false;
  bool attention_bias = false;    // q/k/v (and o for Llama's attention_bias) biases
  bool o_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;           // Qwen3: per-head RMSNorm on q and k before RoPE
  std::int64_t sliding_window = 0;  // 0: plain causal
  ops::RopeArgs rope;             // unused by GPT-2 (learned positions)
  std::int64_t bos_token_id = -1;
  std::vector<std::int64_t> eos_token_ids;
  std::string torch_dtype;        // "bfloat16", "float32", ...

  // Parses the JSON text of a config.json; `source` names it in errors.
  static TransformerConfig from_json_text(const std::string& text, const std::string& source);
  static TransformerConfig from_file(const std::string& path);
  // config.json text that transformers loads back (same family and values).
  std::string to_json_text() const;
  std::int64_t q_dim() const { return num_heads * head_dim; }
  std::int64_t kv_dim() const { return num_kv_heads * head_dim; }
};

}  // namespace hone::model

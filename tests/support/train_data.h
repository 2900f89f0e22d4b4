// A tiny Llama config and generated examples for the trainer and adapter tests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "hone/dataset.h"
#include "hone/random.h"

namespace hone::test {

inline const std::string kTinyLlama = R"({"model_type": "llama", "vocab_size": 40, "hidden_size": 16,
  "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"})";

// n examples of 3…13 random ids in [3, 40) from Philox(seed), with loss on the second half.
inline std::vector<data::TokenizedExample> examples(int n, std::uint64_t seed) {
  std::vector<data::TokenizedExample> out;
  for (int i = 0; i < n; ++i) {
    const Philox4 r = philox_block(seed, static_cast<std::uint64_t>(i));
    const int len = 3 + static_cast<int>(r.x[0] % 11);
    data::TokenizedExample ex;
    for (int k = 0; k < len; ++k) {
      const Philox4 t = philox_block(seed + 1, static_cast<std::uint64_t>(i * 64 + k));
      ex.ids.push_back(3 + static_cast<std::int32_t>(t.x[0] % 37));
      ex.labels.push_back(k >= len / 2 ? ex.ids.back() : data::kIgnoreLabel);
    }
    ex.line = i + 1;
    out.push_back(std::move(ex));
  }
  return out;
}

}  // namespace hone::test

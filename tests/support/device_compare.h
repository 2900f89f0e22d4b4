// Comparing a model on cuda:0 (bf16) with the same model on the CPU (f32): configs the attention
// kernels take, and norm-relative errors.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hone/tensor.h"
#include "model/transformer.h"

namespace hone::test {

// The fixture config.json of tests/data/models/<family> with head dim 32 (the attention
// kernels' smallest): hidden 64 and `heads` query heads over `kv_heads` (GPT-2: 2 heads).
inline std::string config_head_dim_32(const std::string& family, int heads = 4, int kv_heads = 2) {
  std::ifstream in(std::string(HONE_TEST_DATA_DIR) + "/models/" + family + "/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  if (family == "gpt2") {
    j["n_embd"] = 64;
    j["n_head"] = 2;
  } else if (family == "qwen2") {  // no head_dim key in Qwen2: hidden / heads
    j["hidden_size"] = 64;
    j["num_attention_heads"] = 2;
    j["num_key_value_heads"] = 1;
    j.erase("head_dim");
  } else {
    j["hidden_size"] = 64;
    j["num_attention_heads"] = heads;
    j["num_key_value_heads"] = kv_heads;
    j["head_dim"] = 32;
  }
  return j.dump();
}

// ||x − y|| / max(||y||, floor · sqrt(n)): relative, except for references that are about zero,
// which are held to an RMS error of `floor` instead.
inline double rel_err(const std::vector<double>& x, const std::vector<double>& y, double floor = 1e-4) {
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / std::max(den, floor * floor * static_cast<double>(x.size())));
}
inline double rel_err(const Tensor& a, const Tensor& b, double floor = 1e-4) {
  return rel_err(a.to_vector<double>(), b.to_vector<double>(), floor);
}

inline double rms(const Tensor& t) {
  double sum = 0;
  for (double v : t.to_vector<double>()) sum += v * v;
  return std::sqrt(sum / static_cast<double>(std::max<std::int64_t>(t.numel(), 1)));
}

// Packed sequences of lengths {7, 1, 12} (positions restart per sequence), random ids in
// [0, vocab), targets the next id within each sequence and -100 at each sequence's last token.
struct Packed {
  model::Batch batch;
  Tensor targets;
  double counted = 0;  // targets that count (17)
};
inline Packed packed_batch(std::int64_t vocab, std::uint64_t seed) {
  const std::vector<std::int64_t> lens = {7, 1, 12};
  std::vector<std::int64_t> ids, pos, tgt;
  std::vector<std::int32_t> cu = {0};
  std::uint64_t x = seed;
  for (std::int64_t len : lens) {
    for (std::int64_t i = 0; i < len; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      ids.push_back(static_cast<std::int64_t>((x >> 33) % static_cast<std::uint64_t>(vocab)));
      pos.push_back(i);
    }
    cu.push_back(cu.back() + static_cast<std::int32_t>(len));
  }
  Packed p;
  for (std::size_t s = 0; s + 1 < cu.size(); ++s)
    for (std::int32_t i = cu[s]; i < cu[s + 1]; ++i) {
      tgt.push_back(i + 1 < cu[s + 1] ? ids[static_cast<std::size_t>(i) + 1] : -100);
      p.counted += tgt.back() >= 0;
    }
  const auto n = static_cast<std::int64_t>(ids.size());
  p.batch.ids = Tensor::from_vector<std::int64_t>({n}, ids);
  p.batch.positions = Tensor::from_vector<std::int64_t>({n}, pos);
  p.batch.cu_seqlens = Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(cu.size())}, cu);
  p.targets = Tensor::from_vector<std::int64_t>({n}, tgt);
  return p;
}

}  // namespace hone::test

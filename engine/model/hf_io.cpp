// Hugging Face checkpoint names and layouts ↔ the Transformer's parameter views: loading,
// saving (config.json + model.safetensors) and from_pretrained.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <fstream>
#include <set>

#include "model/transformer.h"

namespace hone::model {

namespace {

constexpr const char* kOp = "checkpoint";

// One internal parameter's place inside a Hugging Face tensor. direct: hf[offset + k] is
// element k. transposed: the internal (O, I) matrix is columns [offset, offset + O) of the
// (I, cols) Hugging Face matrix (GPT-2's Conv1D layout, c_attn split into q | k | v).
struct Part {
  std::string internal;
  bool transposed = false;
  std::int64_t offset = 0;
};
struct HfTensor {
  std::string name;
  Shape shape;
  std::vector<Part> parts;
};

std::vector<HfTensor> hf_tensors(const TransformerConfig& c) {
  std::vector<HfTensor> out;
  const std::int64_t D = c.hidden_size, F = c.intermediate_size;
  auto direct = [&](const std::string& hf, const std::string& internal, Shape s) {
    out.push_back({hf, std::move(s), {{internal, false, 0}}});
  };
  if (c.family == Family::gpt2) {
    const std::string t = "transformer.";
    direct(t + "wte.weight", "embed", {c.vocab_size, D});
    direct(t + "wpe.weight", "pos_embed", {c.max_position_embeddings, D});
    for (std::int64_t l = 0; l < c.num_layers; ++l) {
      const std::string h = t + "h." + std::to_string(l) + ".", p = "layers." + std::to_string(l) + ".";
      direct(h + "ln_1.weight", p + "norm1", {D});
      direct(h + "ln_1.bias", p + "norm1_b", {D});
      out.push_back({h + "attn.c_attn.weight", {D, 3 * D}, {{p + "wq", true, 0}, {p + "wk", true, D}, {p + "wv", true, 2 * D}}});
      out.push_back({h + "attn.c_attn.bias", {3 * D}, {{p + "bq", false, 0}, {p + "bk", false, D}, {p + "bv", false, 2 * D}}});
      out.push_back({h + "attn.c_proj.weight", {D, D}, {{p + "wo", true, 0}}});
      direct(h + "attn.c_proj.bias", p + "bo", {D});
      direct(h + "ln_2.weight", p + "norm2", {D});
      direct(h + "ln_2.bias", p + "norm2_b", {D});
      out.push_back({h + "mlp.c_fc.weight", {D, F}, {{p + "wu", true, 0}}});
      direct(h + "mlp.c_fc.bias", p + "bu", {F});
      out.push_back({h + "mlp.c_proj.weight", {F, D}, {{p + "wd", true, 0}}});
      direct(h + "mlp.c_proj.bias", p + "bd", {D});
    }
    direct(t + "ln_f.weight", "final_norm", {D});
    direct(t + "ln_f.bias", "final_norm_b", {D});
    return out;
  }
  direct("model.embed_tokens.weight", "embed", {c.vocab_size, D});
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".", p = "layers." + std::to_string(l) + ".";
    direct(h + "input_layernorm.weight", p + "norm1", {D});
    direct(h + "self_attn.q_proj.weight", p + "wq", {c.q_dim(), D});
    direct(h + "self_attn.k_proj.weight", p + "wk", {c.kv_dim(), D});
    direct(h + "self_attn.v_proj.weight", p + "wv", {c.kv_dim(), D});
    if (c.attention_bias) {
      direct(h + "self_attn.q_proj.bias", p + "bq", {c.q_dim()});
      direct(h + "self_attn.k_proj.bias", p + "bk", {c.kv_dim()});
      direct(h + "self_attn.v_proj.bias", p + "bv", {c.kv_dim()});
    }
    if (c.qk_norm) {
      direct(h + "self_attn.q_norm.weight", p + "q_norm", {c.head_dim});
      direct(h + "self_attn.k_norm.weight", p + "k_norm", {c.head_dim});
    }
    direct(h + "self_attn.o_proj.weight", p + "wo", {D, c.q_dim()});
    if (c.o_bias) direct(h + "self_attn.o_proj.bias", p + "bo", {D});
    direct(h + "post_attention_layernorm.weight", p + "norm2", {D});
    direct(h + "mlp.gate_proj.weight", p + "wg", {F, D});
    direct(h + "mlp.up_proj.weight", p + "wu", {F, D});
    direct(h + "mlp.down_proj.weight", p + "wd", {D, F});
    if (c.mlp_bias) {
      direct(h + "mlp.gate_proj.bias", p + "bg", {F});
      direct(h + "mlp.up_proj.bias", p + "bu", {F});
      direct(h + "mlp.down_proj.bias", p + "bd", {D});
    }
  }
  direct("model.norm.weight", "final_norm", {D});
  if (!c.tie_word_embeddings) direct("lm_head.weight", "lm_head", {c.vocab_size, D});
  return out;
}

// Index into the Hugging Face tensor of element k of the part's internal tensor.
std::int64_t hf_index(const Part& part, const Shape& hf_shape, const Shape& internal_shape, std::int64_t k) {
  if (!part.transposed) return part.offset + k;
  const std::int64_t in_features = internal_shape[1], o = k / in_features, i = k % in_features;
  return i * hf_shape[1] + part.offset + o;
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    HONE_CHECK(out.good(), kOp, "cannot write ", tmp);
    out << text;
    out.flush();
    HONE_CHECK(out.good(), kOp, "writing ", tmp, " failed");
  }
  HONE_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, kOp, "cannot rename ", tmp, " to ", path);
}

}  // namespace

std::vector<std::string> Transformer::load(const SafetensorsCheckpoint& checkpoint) {
  std::set<std::string> used;
  const bool gpt2 = config_.family == Family::gpt2;
  for (const HfTensor& t : hf_tensors(config_)) {
    std::string name = t.name;
    // GPT-2 checkpoints on the hub often lack the "transformer." prefix.
    if (gpt2 && !checkpoint.contains(name) && checkpoint.contains(name.substr(12))) name = name.substr(12);
    HONE_CHECK(checkpoint.contains(name), kOp, "checkpoint has no tensor '", t.name, "' needed by this ",
               family_name(config_.family), " model");
    const Tensor hf = checkpoint.load(name, DType::f64);
    HONE_CHECK(hf.shape() == t.shape, kOp, "tensor '", name, "' has shape ", shape_str(hf.shape()),
               "; the config implies ", shape_str(t.shape));
    const double* src = hf.data<double>();
    for (const Part& part : t.parts) {
      const Tensor& dst = param(part.internal);
      std::vector<double> v(static_cast<std::size_t>(dst.numel()));
      for (std::int64_t k = 0; k < dst.numel(); ++k) v[k] = src[hf_index(part, t.shape, dst.shape(), k)];
      dst.copy_from(Tensor::from_vector<double>(dst.shape(), v).to(dtype_));
    }
    used.insert(name);
  }
  std::vector<std::string> unused;
  for (const std::string& n : checkpoint.names())
    if (!used.count(n)) unused.push_back(n);
  return unused;
}

std::vector<std::pair<std::string, Tensor>> Transformer::hf_state(bool gradients, DType as) const {
  HONE_CHECK(!gradients || train_base(), kOp, "the base is frozen: it has no gradients");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const HfTensor& t : hf_tensors(config_)) {
    std::vector<double> v(static_cast<std::size_t>(shape_numel(t.shape)));
    for (const Part& part : t.parts) {
      const Tensor& src = gradients ? grad(part.internal) : param(part.internal);
      const std::vector<double> values = src.to_vector<double>();
      for (std::int64_t k = 0; k < src.numel(); ++k) v[hf_index(part, t.shape, src.shape(), k)] = values[k];
    }
    tensors.emplace_back(t.name, Tensor::from_vector<double>(t.shape, v).to(as));
  }
  return tensors;
}

void Transformer::save_pretrained(const std::string& dir, std::optional<DType> storage_opt,
                                  std::uint64_t max_shard_bytes) const {
  const std::string& td = config_.torch_dtype;
  const DType storage = storage_opt ? *storage_opt
                        : td == "bfloat16" ? DType::bf16
                        : td == "float16"  ? DType::f16
                                           : DType::f32;
  HONE_CHECK(storage == DType::f32 || storage == DType::bf16 || storage == DType::f16 || storage == DType::f64,
             kOp, "cannot save weights as ", dtype_name(storage));
  std::filesystem::create_directories(dir);
  const auto state = hf_state(false, storage);
  std::vector<std::vector<std::pair<std::string, Tensor>>> shards(1);
  std::uint64_t in_shard = 0, total = 0;
  for (const auto& entry : state) {
    const std::uint64_t bytes = entry.second.nbytes();
    if (in_shard > 0 && in_shard + bytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(entry);
    in_shard += bytes;
    total += bytes;
  }
  if (shards.size() == 1) {
    save_safetensors(dir + "/model.safetensors", shards[0]);
  } else {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total}};
    index["weight_map"] = nlohmann::ordered_json::object();
    char name[64];
    for (std::size_t i = 0; i < shards.size(); ++i) {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      save_safetensors(dir + "/" + name, shards[i]);
      for (const auto& entry : shards[i]) index["weight_map"][entry.first] = name;
    }
    write_text_atomically(dir + "/model.safetensors.index.json", index.dump(2) + "\n");
  }
  TransformerConfig c = config_;
  c.torch_dtype = storage == DType::bf16 ? "bfloat16" : storage == DType::f16 ? "float16"
                  : storage == DType::f64 ? "float64" : "float32";
  write_text_atomically(dir + "/config.json", c.to_json_text());
}

Transformer Transformer::from_pretrained(const std::string& dir, DType dtype, bool train_base, Device device) {
  Transformer m(TransformerConfig::from_file(dir + "/config.json"), dtype, train_base, device);
  m.load(SafetensorsCheckpoint::open(dir));
  return m;
}

}  // namespace hone::model

namespace hone::model {

std::string Transformer::hf_name(const std::string& internal) const {
  for (const HfTensor& t : hf_tensors(config_))
    for (const Part& part : t.parts)
      if (part.internal == internal) return t.name;
  return internal;
}

}  // namespace hone::model

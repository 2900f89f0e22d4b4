// config.json → TransformerConfig, with the families' defaults and RoPE scaling forms.
#include "model/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hone/error.h"

namespace hone::model {

namespace {

constexpr const char* kOp = "config";
using Json = nlohmann::json;

class Reader {
 public:
  Reader(const Json& j, std::string source) : j_(j), source_(std::move(source)) {}
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  std::int64_t integer(const char* key) const {
    HONE_CHECK(has(key), kOp, source_, ": missing field \"", key, "\"");
    return integer_or(key, 0);
  }
  std::int64_t integer_or(const char* key, std::int64_t fallback) const {
    if (!has(key)) return fallback;
    const Json& v = j_[key];
    HONE_CHECK(v.is_number_integer(), kOp, source_, ": field \"", key, "\" must be an integer, got ", v.dump());
    return v.get<std::int64_t>();
  }
  double number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const Json& v = j_[key];
    HONE_CHECK(v.is_number(), kOp, source_, ": field \"", key, "\" must be a number, got ", v.dump());
    return v.get<double>();
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const Json& v = j_[key];
    HONE_CHECK(v.is_boolean(), kOp, source_, ": field \"", key, "\" must be true or false, got ", v.dump());
    return v.get<bool>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    HONE_CHECK(j_[key].is_string(), kOp, source_, ": field \"", key, "\" must be a string");
    return j_[key].get<std::string>();
  }
  const Json& json() const { return j_; }
  const std::string& source() const { return source_; }

 private:
  const Json& j_;
  std::string source_;
};

void positive(const Reader& r, const char* name, std::int64_t v) {
  HONE_CHECK(v > 0, kOp, r.source(), ": field \"", name, "\" must be positive, got ", v);
}

// RoPE: rope_theta + rope_scaling {rope_type|type, ...}, or rope_parameters {rope_theta, rope_type, ...}.
void read_rope(const Reader& r, TransformerConfig& c) {
  c.rope.theta = r.number_or("rope_theta", 10000.0);
  const Json* scaling = nullptr;
  if (r.has("rope_parameters")) {
    scaling = &r.json()["rope_parameters"];
    HONE_CHECK(scaling->is_object(), kOp, r.source(), ": field \"rope_parameters\" must be an object");
    if (scaling->contains("rope_theta")) c.rope.theta = (*scaling)["rope_theta"].get<double>();
  } else if (r.has("rope_scaling")) {
    scaling = &r.json()["rope_scaling"];
    HONE_CHECK(scaling->is_object(), kOp, r.source(), ": field \"rope_scaling\" must be an object or null");
  }
  HONE_CHECK(c.rope.theta > 0, kOp, r.source(), ": rope_theta must be positive, got ", c.rope.theta);
  if (!scaling) return;
  const Reader s(*scaling, r.source() + " (rope scaling)");
  const std::string type = s.string_or("rope_type", s.string_or("type", "default"));
  if (type == "default") return;
  HONE_CHECK(type == "llama3", kOp, r.source(), ": rope scaling type '", type,
             "' is not supported (default, llama3)");
  c.rope.scaling.kind = ops::RopeScaling::Kind::llama3;
  c.rope.scaling.factor = s.number_or("factor", 8.0);
  c.rope.scaling.low_freq_factor = s.number_or("low_freq_factor", 1.0);
  c.rope.scaling.high_freq_factor = s.number_or("high_freq_factor", 4.0);
  c.rope.scaling.original_max_position =
      static_cast<double>(s.integer_or("original_max_position_embeddings", 8192));
}

std::vector<std::int64_t> read_eos(const Reader& r) {
  if (!r.has("eos_token_id")) return {};
  const Json& v = r.json()["eos_token_id"];
  if (v.is_number_integer()) return {v.get<std::int64_t>()};
  HONE_CHECK(v.is_array(), kOp, r.source(), ": field \"eos_token_id\" must be an integer or a list");
  std::vector<std::int64_t> out;
  for (const Json& e : v) {
    HONE_CHECK(e.is_number_integer(), kOp, r.source(), ": eos_token_id entry ", e.dump(), " is not an integer");
    out.push_back(e.get<std::int64_t>());
  }
  return out;
}

}  // namespace

const char* family_name(Family f) {
  switch (f) {
    case Family::llama: return "llama";
    case Family::mistral: return "mistral";
    case Family::qwen2: return "qwen2";
    case Family::qwen3: return "qwen3";
    case Family::gpt2: return "gpt2";
  }
  return "?";
}

TransformerConfig TransformerConfig::from_json_text(const std::string& text, const std::string& source) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    fail(kOp, cat(source, ": not valid JSON (", e.what(), ")"));
  }
  HONE_CHECK(j.is_object(), kOp, source, ": expected a JSON object");
  const Reader r(j, source);
  TransformerConfig c;
  c.model_type = r.string_or("model_type", "");
  if (c.model_type == "llama") c.family = Family::llama;
  else if (c.model_type == "mistral") c.family = Family::mistral;
  else if (c.model_type == "qwen2") c.family = Family::qwen2;
  else if (c.model_type == "qwen3") c.family = Family::qwen3;
  else if (c.model_type == "gpt2") c.family = Family::gpt2;
  else fail(kOp, cat(source, ": model_type '", c.model_type, "' is not supported (llama, mistral, qwen2, qwen3, gpt2)"));
  c.torch_dtype = r.string_or("torch_dtype", r.string_or("dtype", "float32"));
  c.eos_token_ids = read_eos(r);
  c.bos_token_id = r.integer_or("bos_token_id", -1);
  c.vocab_size = r.integer("vocab_size");

  if (c.family == Family::gpt2) {
    c.hidden_size = r.integer("n_embd");
    c.num_layers = r.integer("n_layer");
    c.num_heads = r.integer("n_head");
    c.num_kv_heads = c.num_heads;
    c.intermediate_size = r.integer_or("n_inner", 4 * c.hidden_size);
    c.max_position_embeddings = r.integer("n_positions");
    c.norm_eps = r.number_or("layer_norm_epsilon", 1e-5);
    c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", true);
    c.attention_bias = c.o_bias = c.mlp_bias = true;
    const std::string act = r.string_or("activation_function", "gelu_new");
    HONE_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh", kOp, source, ": activation_function '", act,
               "' is not supported (gelu_new, gelu_pytorch_tanh)");
  } else {
    c.hidden_size = r.integer("hidden_size");
    c.intermediate_size = r.integer("intermediate_size");
    c.num_layers = r.integer("num_hidden_layers");
    c.num_heads = r.integer("num_attention_heads");
    c.num_kv_heads = r.integer_or("num_key_value_heads", c.num_heads);
    c.max_position_embeddings = r.integer_or("max_position_embeddings", 2048);
    c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
    c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);
    const std::string act = r.string_or("hidden_act", "silu");
    HONE_CHECK(act == "silu", kOp, source, ": hidden_act '", act, "' is not supported (silu)");
    read_rope(r, c);
    if (c.family == Family::llama) {
      c.attention_bias = c.o_bias = r.boolean_or("attention_bias", false);
      c.mlp_bias = r.boolean_or("mlp_bias", false);
    } else if (c.family == Family::qwen2) {
      c.attention_bias = true;  // q/k/v biases, no o bias
    } else if (c.family == Family::qwen3) {
      c.attention_bias = c.o_bias = r.boolean_or("attention_bias", false);
      c.qk_norm = true;
    }
    const bool windowed = c.family == Family::mistral ||
                          (c.family != Family::llama && r.boolean_or("use_sliding_window", false));
    if (windowed) c.sliding_window = r.integer_or("sliding_window", 0);
  }
  positive(r, "hidden size", c.hidden_size);
  positive(r, "num_hidden_layers", c.num_layers);
  positive(r, "num_attention_heads", c.num_heads);
  positive(r, "num_key_value_heads", c.num_kv_heads);
  positive(r, "vocab_size", c.vocab_size);
  positive(r, "intermediate_size", c.intermediate_size);
  HONE_CHECK(c.num_heads % c.num_kv_heads == 0, kOp, source, ": num_attention_heads ", c.num_heads,
             " is not a multiple of num_key_value_heads ", c.num_kv_heads);
  if (c.family == Family::gpt2) {
    HONE_CHECK(c.hidden_size % c.num_heads == 0, kOp, source, ": n_embd ", c.hidden_size,
               " is not a multiple of n_head ", c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  } else {
    c.head_dim = r.integer_or("head_dim", c.hidden_size / c.num_heads);
    HONE_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, kOp, source, ": head_dim ", c.head_dim,
               " must be positive and even (RoPE)");
  }
  return c;
}

TransformerConfig TransformerConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  HONE_CHECK(in.good(), kOp, "cannot open ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path);
}

std::string TransformerConfig::to_json_text() const {
  nlohmann::ordered_json j;
  j["model_type"] = model_type.empty() ? family_name(family) : model_type;
  j["vocab_size"] = vocab_size;
  if (family == Family::gpt2) {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["n_embd"] = hidden_size;
    j["n_layer"] = num_layers;
    j["n_head"] = num_heads;
    j["n_inner"] = intermediate_size;
    j["n_positions"] = max_position_embeddings;
    j["layer_norm_epsilon"] = norm_eps;
    j["activation_function"] = "gelu_new";
  } else {
    static const char* kArch[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
    j["architectures"] = {kArch[static_cast<int>(family)]};
    j["hidden_size"] = hidden_size;
    j["intermediate_size"] = intermediate_size;
    j["num_hidden_layers"] = num_layers;
    j["num_attention_heads"] = num_heads;
    j["num_key_value_heads"] = num_kv_heads;
    j["head_dim"] = head_dim;
    j["max_position_embeddings"] = max_position_embeddings;
    j["rms_norm_eps"] = norm_eps;
    j["hidden_act"] = "silu";
    j["rope_theta"] = rope.theta;
    if (rope.scaling.kind == ops::RopeScaling::Kind::llama3)
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", rope.scaling.factor},
                           {"low_freq_factor", rope.scaling.low_freq_factor},
                           {"high_freq_factor", rope.scaling.high_freq_factor},
                           {"original_max_position_embeddings", static_cast<std::int64_t>(rope.scaling.original_max_position)}};
    if (family == Family::llama) {
      j["attention_bias"] = attention_bias;
      j["mlp_bias"] = mlp_bias;
    }
    if (family == Family::qwen3) j["attention_bias"] = attention_bias;
    if (sliding_window > 0) {
      j["sliding_window"] = sliding_window;
      if (family != Family::mistral) j["use_sliding_window"] = true;
    } else if (family == Family::mistral) {
      j["sliding_window"] = nullptr;
    }
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty()) j["eos_token_id"] = eos_token_ids;
  j["torch_dtype"] = torch_dtype;
  return j.dump(2) + "\n";
}

}  // namespace hone::model

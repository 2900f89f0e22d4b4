// PEFT's adapter_config.json for LORA and PROMPT_TUNING. Unknown keys are ignored (PEFT adds
// keys with every release); keys that would change the forward and are not implemented here
// are refused by name, so an adapter never loads with silently different math.
#include "peft/config_json.h"

#include <nlohmann/json.hpp>

#include "hone/error.h"

namespace hone::peft {

using nlohmann::json;

namespace {

constexpr const char* kOp = "adapter";

bool is_set(const json& j, const char* key) {
  if (!j.contains(key)) return false;
  const json& v = j[key];
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_array() || v.is_object() || v.is_string()) return !v.empty();
  return true;
}

void refuse(const json& j, const char* key, const std::string& source, const char* why) {
  HONE_CHECK(!is_set(j, key), kOp, source, ": '", key, "' is ", j[key].dump(), "; ", why);
}

LoraConfig lora_from_json(const json& j, const std::string& source) {
  refuse(j, "use_dora", source, "DoRA is not supported (hone implements plain LoRA)");
  refuse(j, "modules_to_save", source, "fully trained extra modules are not supported");
  refuse(j, "lora_bias", source, "LoRA biases on B are not supported");
  refuse(j, "layer_replication", source, "layer replication is not supported");
  refuse(j, "use_qalora", source, "QA-LoRA is not supported");
  refuse(j, "target_parameters", source, "LoRA on parameters (not modules) is not supported");
  refuse(j, "trainable_token_indices", source, "trainable tokens are not supported");
  refuse(j, "alora_invocation_tokens", source, "activated LoRA is not supported");
  refuse(j, "use_bdlora", source, "this LoRA variant is not supported");
  refuse(j, "arrow_config", source, "Arrow routing is not supported");
  refuse(j, "monteclora_config", source, "this LoRA variant is not supported");
  refuse(j, "megatron_config", source, "Megatron-parallel layers are not supported");
  const std::string bias = j.value("bias", std::string("none"));
  HONE_CHECK(bias == "none", kOp, source, ": 'bias' is \"", bias, "\"; only \"none\" is supported (trained biases are not)");

  LoraConfig c;
  c.r = j.value("r", std::int64_t{8});
  c.alpha = j.value("lora_alpha", 8.0);
  c.dropout = j.value("lora_dropout", 0.0);
  c.use_rslora = j.value("use_rslora", false);
  c.target_modules.clear();
  if (j.contains("target_modules") && !j["target_modules"].is_null()) {
    const json& t = j["target_modules"];
    if (t.is_string()) {
      if (t.get<std::string>() == "all-linear")
        c.target_modules = {"all-linear"};
      else
        c.target_regex = t.get<std::string>();
    } else {
      c.target_modules = t.get<std::vector<std::string>>();
    }
  }
  HONE_CHECK(!c.target_modules.empty() || !c.target_regex.empty(), kOp, source, ": 'target_modules' is missing or empty");
  if (is_set(j, "exclude_modules")) {
    HONE_CHECK(j["exclude_modules"].is_array(), kOp, source,
               ": 'exclude_modules' as a regular expression is not supported; give a list");
    c.exclude_modules = j["exclude_modules"].get<std::vector<std::string>>();
  }
  if (is_set(j, "layers_to_transform")) {
    const json& l = j["layers_to_transform"];
    c.layers_to_transform = l.is_array() ? l.get<std::vector<std::int64_t>>() : std::vector<std::int64_t>{l.get<std::int64_t>()};
  }
  if (is_set(j, "rank_pattern"))
    for (const auto& [k, v] : j["rank_pattern"].items()) c.rank_pattern[k] = v.get<std::int64_t>();
  if (is_set(j, "alpha_pattern"))
    for (const auto& [k, v] : j["alpha_pattern"].items()) c.alpha_pattern[k] = v.get<double>();
  if (j.contains("init_lora_weights")) {
    const json& i = j["init_lora_weights"];
    if (i.is_boolean()) c.init = i.get<bool>() ? LoraInit::kaiming : LoraInit::none;
    else if (i.is_string() && i.get<std::string>() == "gaussian") c.init = LoraInit::gaussian;
    // other initialisations (pissa, olora, loftq, ...) only matter when creating an adapter
  }
  return c;
}

PromptTuningConfig prompt_from_json(const json& j, const std::string& source) {
  PromptTuningConfig c;
  HONE_CHECK(j.contains("num_virtual_tokens") && j["num_virtual_tokens"].is_number_integer(), kOp, source,
             ": 'num_virtual_tokens' is missing");
  c.num_virtual_tokens = j["num_virtual_tokens"].get<std::int64_t>();
  const std::int64_t subs = j.value("num_transformer_submodules", std::int64_t{1});
  HONE_CHECK(subs == 1, kOp, source, ": 'num_transformer_submodules' is ", subs,
             "; only decoder-only models (1) are supported");
  const std::string init = j.value("prompt_tuning_init", std::string("RANDOM"));
  HONE_CHECK(init == "RANDOM" || init == "TEXT" || init == "SAMPLE_VOCAB", kOp, source, ": 'prompt_tuning_init' is \"",
             init, "\"; expected RANDOM, TEXT or SAMPLE_VOCAB");
  c.init = init == "TEXT" ? PromptInit::text : init == "SAMPLE_VOCAB" ? PromptInit::sample_vocab : PromptInit::random;
  if (is_set(j, "prompt_tuning_init_text")) c.init_text = j["prompt_tuning_init_text"].get<std::string>();
  if (is_set(j, "tokenizer_name_or_path")) c.tokenizer_name_or_path = j["tokenizer_name_or_path"].get<std::string>();
  return c;
}

}  // namespace

AdapterConfig adapter_config_from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(kOp, cat(source, ": not valid JSON (", e.what(), ")"));
  }
  HONE_CHECK(j.is_object(), kOp, source, ": not a JSON object");
  try {
    const std::string type = j.value("peft_type", std::string());
    HONE_CHECK(!type.empty(), kOp, source, ": 'peft_type' is missing");
    if (is_set(j, "task_type")) {
      const std::string task = j["task_type"].get<std::string>();
      HONE_CHECK(task == "CAUSAL_LM", kOp, source, ": 'task_type' is \"", task, "\"; hone loads CAUSAL_LM adapters");
    }
    if (type == "LORA") return lora_from_json(j, source);
    if (type == "PROMPT_TUNING") return prompt_from_json(j, source);
    fail(kOp, cat(source, ": 'peft_type' is \"", type, "\"; hone supports LORA and PROMPT_TUNING"));
  } catch (const json::exception& e) {
    fail(kOp, cat(source, ": ", e.what()));
  }
}

std::string lora_config_to_json(const LoraConfig& c, const std::vector<std::string>& target_names, bool fan_in_fan_out,
                                const std::string& base_model) {
  json j;  // nlohmann::json sorts keys, as PEFT's file does
  j["alpha_pattern"] = json::object();
  for (const auto& [k, v] : c.alpha_pattern) j["alpha_pattern"][k] = v;
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = base_model.empty() ? json(nullptr) : json(base_model);
  j["bias"] = "none";
  j["exclude_modules"] = c.exclude_modules.empty() ? json(nullptr) : json(c.exclude_modules);
  j["fan_in_fan_out"] = fan_in_fan_out;
  j["inference_mode"] = true;
  j["init_lora_weights"] = c.init == LoraInit::gaussian ? json("gaussian") : json(c.init == LoraInit::kaiming);
  j["layer_replication"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = c.layers_to_transform.empty() ? json(nullptr) : json(c.layers_to_transform);
  j["loftq_config"] = json::object();
  j["lora_alpha"] = c.alpha;
  j["lora_bias"] = false;
  j["lora_dropout"] = c.dropout;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["r"] = c.r;
  j["rank_pattern"] = json::object();
  for (const auto& [k, v] : c.rank_pattern) j["rank_pattern"][k] = v;
  j["revision"] = nullptr;
  j["target_modules"] = c.target_regex.empty() ? json(target_names) : json(c.target_regex);
  j["task_type"] = "CAUSAL_LM";
  j["use_dora"] = false;
  j["use_rslora"] = c.use_rslora;
  return j.dump(2) + "\n";
}

std::string prompt_config_to_json(const PromptTuningConfig& c, std::int64_t token_dim, std::int64_t num_heads,
                                  std::int64_t num_layers, const std::string& base_model) {
  json j;
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = base_model.empty() ? json(nullptr) : json(base_model);
  j["inference_mode"] = true;
  j["modules_to_save"] = nullptr;
  j["num_attention_heads"] = num_heads;
  j["num_layers"] = num_layers;
  j["num_transformer_submodules"] = 1;
  j["num_virtual_tokens"] = c.num_virtual_tokens;
  j["peft_type"] = "PROMPT_TUNING";
  j["prompt_tuning_init"] = c.init == PromptInit::text ? "TEXT" : c.init == PromptInit::sample_vocab ? "SAMPLE_VOCAB" : "RANDOM";
  j["prompt_tuning_init_text"] = c.init_text.empty() ? json(nullptr) : json(c.init_text);
  j["revision"] = nullptr;
  j["task_type"] = "CAUSAL_LM";
  j["token_dim"] = token_dim;
  j["tokenizer_kwargs"] = nullptr;
  j["tokenizer_name_or_path"] = c.tokenizer_name_or_path.empty() ? json(nullptr) : json(c.tokenizer_name_or_path);
  return j.dump(2) + "\n";
}

}  // namespace hone::peft

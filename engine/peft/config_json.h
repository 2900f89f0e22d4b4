// adapter_config.json ↔ LoraConfig / PromptTuningConfig, with PEFT's keys and values. Reading
// refuses options that change the math and are not implemented, naming the key.
#pragma once
#include <string>
#include <variant>

#include "hone/peft.h"

namespace hone::peft {

using AdapterConfig = std::variant<LoraConfig, PromptTuningConfig>;

// `source` names the file in errors.
AdapterConfig adapter_config_from_json(const std::string& text, const std::string& source);
std::string lora_config_to_json(const LoraConfig& c, const std::vector<std::string>& target_names, bool fan_in_fan_out,
                                const std::string& base_model);
std::string prompt_config_to_json(const PromptTuningConfig& c, std::int64_t token_dim, std::int64_t num_heads,
                                  std::int64_t num_layers, const std::string& base_model);

}  // namespace hone::peft

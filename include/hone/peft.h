// Parameter-efficient fine-tuning: LoRA and prompt tuning on a frozen hone::Model, saved and
// loaded in PEFT's format (adapter_config.json + adapter_model.safetensors), which PEFT,
// transformers and vLLM read.
//
//   hone::Model model = hone::Model::load("llama-dir", hone::DType::f32, /*train_base=*/false);
//   hone::LoraConfig lora;  lora.r = 16;  lora.alpha = 32;  lora.target_modules = {"all-linear"};
//   hone::add_lora(model, lora);              // base frozen, adapter initialised as PEFT does
//   hone::Trainer(model, source, cfg, pad).train();   // AdamW on the adapter only
//   hone::save_adapter(model, "out/adapter", "llama-dir");
//
// On a CUDA device (Model::load(dir, DType::bf16, false, Device::cuda(0))) the adapter lives on
// the device beside the frozen bf16 base: bf16 values with f32 gradients, and the trainer keeps
// fp32 master weights and moments for them. Files are written from host copies and loaded on
// the host, then copied to the device.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hone/dtype.h"
#include "hone/model.h"

namespace hone {

class Tokenizer;

// PEFT's init_lora_weights: true (A kaiming-uniform with a = √5, B zero: the adapter starts as
// the identity), "gaussian" (A normal with std 1/r, B zero), false (B random too).
enum class LoraInit { kaiming, gaussian, none };

struct LoraConfig {
  std::int64_t r = 8;
  double alpha = 8;     // lora_alpha; scale = alpha / r, or alpha / √r with use_rslora
  double dropout = 0;   // lora_dropout on the adapter's input while training (Philox, seeded)
  // Which linear layers (Hugging Face module names such as model.layers.3.self_attn.q_proj or
  // transformer.h.0.attn.c_attn): a name matches an entry equal to it or ending in "." + entry
  // ("q_proj", "c_attn", "mlp.c_proj"); {"all-linear"} takes every linear layer but the output
  // head. A non-empty target_regex replaces the list and must match the whole name.
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
  std::string target_regex;
  std::vector<std::string> exclude_modules;         // same matching as target_modules
  std::vector<std::int64_t> layers_to_transform;    // blocks to adapt (list targets); empty: all
  // Per-module rank and alpha: the first key k with (.*\.)?(k) matching the whole module name.
  std::map<std::string, std::int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
  bool use_rslora = false;
  LoraInit init = LoraInit::kaiming;
  std::uint64_t seed = 0;  // initialisation and dropout
};

// PEFT's prompt_tuning_init: RANDOM (standard normal, like torch's nn.Embedding), TEXT (the
// embeddings of init_text's tokens, repeated to fill), SAMPLE_VOCAB (of random vocabulary ids).
enum class PromptInit { random, text, sample_vocab };

struct PromptTuningConfig {
  std::int64_t num_virtual_tokens = 20;
  PromptInit init = PromptInit::random;
  std::string init_text;                // for PromptInit::text
  std::string tokenizer_name_or_path;   // recorded in adapter_config.json (TEXT init)
  std::uint64_t seed = 0;
};

enum class AdapterKind { none, lora, prompt_tuning };

struct AdapterInfo {
  AdapterKind kind = AdapterKind::none;
  std::int64_t trainable_parameters = 0;
  std::int64_t modules = 0;  // LoRA: adapted linear layers
  bool merged = false;       // LoRA folded into the base weights
};

// Freezes the base (no gradients, no optimizer state for it) and attaches a new LoRA adapter
// initialised as PEFT does. Errors name the option: a target matching no linear layer, r < 1...
void add_lora(Model& model, const LoraConfig& config);
// Freezes the base and attaches num_virtual_tokens trainable embeddings placed before every
// sequence. PromptInit::text needs the model's tokenizer.
void add_prompt_tuning(Model& model, const PromptTuningConfig& config, const Tokenizer* tokenizer = nullptr);

// Reads a PEFT adapter folder (LORA or PROMPT_TUNING) made by PEFT or hone, freezes the base and
// attaches it. Options hone does not implement (use_dora, bias, modules_to_save, ...) are
// refused by name; unknown keys are ignored.
void load_adapter(Model& model, const std::string& dir);
// Writes adapter_config.json and adapter_model.safetensors as PEFT does, tensors in `storage`.
void save_adapter(const Model& model, const std::string& dir, const std::string& base_model_name_or_path = "",
                  DType storage = DType::f32);

// LoRA: W += scale · B · A in every adapted layer; the forward then skips the adapter's term.
// unmerge subtracts it again (equal to the original up to rounding: on a device the bf16
// weights are rounded at each of the two steps).
void merge_adapter(Model& model);
void unmerge_adapter(Model& model);
// Detaches the adapter (a merged one stays in the weights); the base stays frozen.
void remove_adapter(Model& model);
AdapterInfo adapter_info(const Model& model);

}  // namespace hone

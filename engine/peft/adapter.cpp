// The public PEFT functions (hone/peft.h): attach, load, save, merge and describe adapters.
// Files: adapter_config.json + adapter_model.safetensors (metadata {"format": "pt"}), tensors
// named as PEFT names them with the adapter name stripped.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "hone/error.h"
#include "hone/peft.h"
#include "hone/safetensors.h"
#include "peft/adapter_io.h"
#include "peft/config_json.h"
#include "peft/lora.h"
#include "peft/prompt.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

constexpr const char* kOp = "adapter";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  HONE_CHECK(in.good(), kOp, "cannot read ", p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text_atomically(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    HONE_CHECK(out.good(), kOp, "cannot write ", tmp.string());
    out << text;
    out.flush();
    HONE_CHECK(out.good(), kOp, "writing ", tmp.string(), " failed");
  }
  fs::rename(tmp, p);
}

void freeze(model::Transformer& t) {
  t.set_adapter(nullptr);
  t.set_train_base(false);
}

peft::LoraAdapter* lora_of(const Model& m) { return dynamic_cast<peft::LoraAdapter*>(m.transformer().adapter()); }
peft::PromptAdapter* prompt_of(const Model& m) { return dynamic_cast<peft::PromptAdapter*>(m.transformer().adapter()); }

// The short names (q_proj, c_attn, ...) written for all-linear: every linear layer of a block.
std::vector<std::string> target_names(const peft::LoraAdapter& a) {
  const LoraConfig& c = a.config();
  if (!(c.target_modules.size() == 1 && c.target_modules[0] == "all-linear")) return c.target_modules;
  std::vector<std::string> names;
  for (const peft::LoraModule& m : a.modules()) {
    const std::string last = m.key.substr(m.key.rfind('.') + 1);
    if (std::find(names.begin(), names.end(), last) == names.end()) names.push_back(last);
  }
  return names;
}

}  // namespace

void add_lora(Model& model, const LoraConfig& config) {
  model::Transformer& t = model.transformer();
  auto adapter = std::make_shared<peft::LoraAdapter>(t, config);
  adapter->init();
  freeze(t);
  t.set_adapter(std::move(adapter));
}

void add_prompt_tuning(Model& model, const PromptTuningConfig& config, const Tokenizer* tokenizer) {
  model::Transformer& t = model.transformer();
  auto adapter = std::make_shared<peft::PromptAdapter>(t, config);
  adapter->init(t, tokenizer);
  freeze(t);
  t.set_adapter(std::move(adapter));
}

void load_adapter(Model& model, const std::string& dir) {
  const fs::path d(dir);
  HONE_CHECK(fs::is_directory(d), kOp, "adapter folder ", dir, " does not exist");
  const fs::path config_path = d / "adapter_config.json", weights_path = d / "adapter_model.safetensors";
  HONE_CHECK(fs::is_regular_file(config_path), kOp, dir, " has no adapter_config.json");
  HONE_CHECK(fs::is_regular_file(weights_path), kOp, dir, " has no adapter_model.safetensors",
             fs::exists(d / "adapter_model.bin") ? " (adapter_model.bin, PyTorch's pickle format, is not read)" : "");
  const peft::AdapterConfig config = peft::adapter_config_from_json(read_text(config_path), config_path.string());
  model::Transformer& t = model.transformer();
  std::shared_ptr<model::Adapter> adapter;
  if (const auto* lora = std::get_if<LoraConfig>(&config)) {
    adapter = std::make_shared<peft::LoraAdapter>(t, *lora);
  } else {
    const auto& prompt = std::get<PromptTuningConfig>(config);
    adapter = std::make_shared<peft::PromptAdapter>(t, prompt);
  }
  const SafetensorsFile file = SafetensorsFile::open(weights_path.string());
  std::set<std::string> used;
  for (const model::Param& p : adapter->named_params()) {
    const SafetensorsEntry* e = file.find(p.name);
    HONE_CHECK(e != nullptr, kOp, weights_path.string(), " has no tensor '", p.name, "' that adapter_config.json implies");
    const Tensor value = file.load(p.name, p.value.dtype());  // on the host; copied to the model's device
    HONE_CHECK(value.shape() == p.value.shape(), kOp, weights_path.string(), ": tensor '", p.name, "' has shape ",
               shape_str(value.shape()), "; the config and the model imply ", shape_str(p.value.shape()));
    p.value.copy_from(value);
    used.insert(p.name);
  }
  for (const SafetensorsEntry& e : file.entries())
    HONE_CHECK(used.count(e.name), kOp, weights_path.string(), " has tensor '", e.name,
               "' that this adapter does not use (a module its config does not select, or an unsupported feature)");
  freeze(t);
  t.set_adapter(std::move(adapter));
}

namespace {

// save_adapter's body: the tensors from `values` (the adapter's slab shape) or, undefined, from
// the adapter itself.
void write_adapter(const Model& model, const std::string& dir, const Tensor& values, const std::string& base_model,
                   DType storage) {
  const model::Transformer& t = model.transformer();
  HONE_CHECK(t.adapter() != nullptr, kOp, "the model has no adapter to save");
  HONE_CHECK(storage == DType::f32 || storage == DType::bf16 || storage == DType::f16 || storage == DType::f64, kOp,
             "cannot save an adapter as ", dtype_name(storage));
  std::string config;
  if (const peft::LoraAdapter* lora = lora_of(model)) {
    HONE_CHECK(!lora->merged(), kOp, "the adapter is merged into the base; unmerge it before saving it");
    config = peft::lora_config_to_json(lora->config(), target_names(*lora), lora->fan_in_fan_out(), base_model);
  } else if (const peft::PromptAdapter* prompt = prompt_of(model)) {
    const model::TransformerConfig& c = t.config();
    config = peft::prompt_config_to_json(prompt->config(), c.hidden_size, c.num_heads, c.num_layers, base_model);
  } else {
    fail(kOp, "the model's adapter is of a kind hone cannot save");
  }
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  // Host copies, converted there (a device model's values are bf16 on the device).
  const Tensor& slab = t.adapter()->params();
  const Tensor host = values.defined() ? values.host() : Tensor();
  HONE_CHECK(!values.defined() || values.shape() == slab.shape(), kOp, "adapter values of shape ",
             shape_str(values.shape()), " for an adapter slab of ", shape_str(slab.shape()));
  for (const model::Param& p : t.adapter()->named_params()) {
    if (!host.defined()) {
      tensors.emplace_back(p.name, p.value.host().to(storage));
      continue;
    }
    const std::int64_t at = model::offset_in(p.value, slab);
    tensors.emplace_back(p.name, host.slice(at, at + p.value.numel()).view(p.value.shape()).to(storage));
  }
  save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors);
  write_text_atomically(fs::path(dir) / "adapter_config.json", config);
}

}  // namespace

void save_adapter(const Model& model, const std::string& dir, const std::string& base_model, DType storage) {
  write_adapter(model, dir, Tensor(), base_model, storage);
}

namespace peft {
void save_adapter_values(const Model& model, const std::string& dir, const Tensor& values,
                         const std::string& base_model, DType storage) {
  HONE_CHECK(values.defined(), kOp, "no adapter values to save");
  write_adapter(model, dir, values, base_model, storage);
}
}  // namespace peft

void merge_adapter(Model& model) {
  peft::LoraAdapter* lora = lora_of(model);
  HONE_CHECK(lora != nullptr, kOp,
             prompt_of(model) ? "a prompt-tuning adapter cannot be merged into the weights" : "the model has no LoRA adapter");
  lora->merge(model.transformer());
}

void unmerge_adapter(Model& model) {
  peft::LoraAdapter* lora = lora_of(model);
  HONE_CHECK(lora != nullptr, kOp, "the model has no LoRA adapter");
  lora->unmerge(model.transformer());
}

void remove_adapter(Model& model) { model.transformer().set_adapter(nullptr); }

AdapterInfo adapter_info(const Model& model) {
  AdapterInfo i;
  const model::Adapter* a = model.transformer().adapter();
  if (!a) return i;
  i.trainable_parameters = a->params().numel();
  if (const peft::LoraAdapter* lora = lora_of(model)) {
    i.kind = AdapterKind::lora;
    i.modules = static_cast<std::int64_t>(lora->modules().size());
    i.merged = lora->merged();
  } else {
    i.kind = AdapterKind::prompt_tuning;
  }
  return i;
}

}  // namespace hone

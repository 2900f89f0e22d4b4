// `hone merge MODEL ADAPTER OUT`: a base model folder plus a PEFT LoRA adapter folder (made by
// hone or by PEFT) → a Hugging Face model folder with W + scale·B·A in every adapted layer.
#include "cmd_peft.h"

#include <cstdio>
#include <filesystem>
#include <memory>

#include "hone/error.h"
#include "hone/model.h"
#include "hone/peft.h"

namespace hone::cli {

namespace fs = std::filesystem;

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                           "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model"}) {
    const fs::path src = fs::path(from) / name;
    if (!fs::is_regular_file(src)) continue;
    const fs::path dst = fs::path(to) / name, tmp = fs::path(to) / (std::string(name) + ".tmp");
    if (fs::exists(dst) && fs::equivalent(src, dst)) continue;
    fs::copy_file(src, tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, dst);
  }
}

namespace {

struct MergeOptions {
  std::string model, adapter, output;
};

int run_merge(const MergeOptions& o) {
  HONE_CHECK(fs::is_directory(o.model), "merge", "MODEL ", o.model, " is not a folder");
  HONE_CHECK(fs::is_regular_file(fs::path(o.model) / "config.json"), "merge", "MODEL ", o.model, " has no config.json");
  HONE_CHECK(fs::is_directory(o.adapter), "merge", "ADAPTER ", o.adapter, " is not a folder");
  HONE_CHECK(fs::weakly_canonical(o.output) != fs::weakly_canonical(o.model), "merge",
             "OUT must differ from MODEL (the base folder would be overwritten)");
  Model model = Model::load(o.model, DType::f32, /*train_base=*/false);
  load_adapter(model, o.adapter);
  const AdapterInfo info = adapter_info(model);
  merge_adapter(model);  // refuses prompt tuning by name
  remove_adapter(model);
  model.save(o.output);
  copy_tokenizer_files(o.model, o.output);
  std::printf("merged     %s (LoRA on %lld layers) into %s\n", o.adapter.c_str(), static_cast<long long>(info.modules),
              o.model.c_str());
  std::printf("saved      %s\n", o.output.c_str());
  return 0;
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto o = std::make_shared<MergeOptions>();
  CLI::App* m = app.add_subcommand("merge", "fold a LoRA adapter (PEFT format) into its base model and save the result");
  m->add_option("model", o->model, "base model folder (Hugging Face layout)")->required();
  m->add_option("adapter", o->adapter, "adapter folder (adapter_config.json + adapter_model.safetensors)")->required();
  m->add_option("out", o->output, "folder for the merged model")->required();
  m->callback([o] { run_merge(*o); });
}

}  // namespace hone::cli

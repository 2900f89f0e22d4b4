// Adapters on disk in PEFT's format: fixtures made by PEFT itself (tests/data/peft, from its
// make_peft_fixtures.py) load and reproduce PEFT's logits; hone's saves match PEFT's names,
// shapes and config keys and load back exactly; unsupported options are refused by name.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "hone/peft.h"
#include "hone/safetensors.h"
#include "model/transformer.h"
#include "support/random.h"
#include "support/tolerance.h"
#include "support/temp_dir.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

const std::string kModels = std::string(HONE_TEST_DATA_DIR) + "/models/";
const std::string kPeft = std::string(HONE_TEST_DATA_DIR) + "/peft/";

using test::TempDir;

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("adapters made by PEFT load in hone and reproduce PEFT's logits", "[cpu][peft]") {
  const std::pair<const char*, const char*> fixtures[] = {{"llama_lora", "llama"},   {"qwen2_lora", "qwen2"},
                                                          {"gpt2_lora", "gpt2"},     {"llama_prompt", "llama"},
                                                          {"gpt2_prompt", "gpt2"}};
  for (const auto& [name, family] : fixtures) {
    INFO(name);
    const SafetensorsFile ref = SafetensorsFile::open(kPeft + name + "/reference.safetensors");
    const Tensor ids = ref.load("input_ids", DType::i64);
    Model base = Model::load(kModels + family, DType::f64, false);
    const Tensor base_logits = base.transformer().forward({ids, {}, {}}).clone();
    Model model = Model::load(kModels + family, DType::f64, false);
    load_adapter(model, kPeft + name);
    CHECK(model.transformer().adapter() != nullptr);
    CHECK_FALSE(model.transformer().train_base());
    const Tensor logits = model.transformer().forward({ids, {}, {}});
    const Tensor expected = ref.load("logits", DType::f64).view(logits.shape());
    // transformers computes RoPE's tables in float32 even in double: ~1e-7 relative.
    CHECK(test::compare(logits, expected, {1e-6, 1e-5}) == "");
    CHECK(test::compare(base_logits, expected, {1e-3, 0}) != "");  // the adapter does change them
  }
  Model m = Model::load(kModels + "llama", DType::f32, false);
  load_adapter(m, kPeft + "llama_lora");
  const AdapterInfo info = adapter_info(m);
  CHECK(info.kind == AdapterKind::lora);
  CHECK(info.modules == 14);
  CHECK(info.trainable_parameters == 2 * (4 * (32 + 32) + 4 * (32 + 16) * 2 + 4 * (32 + 32) + 4 * (32 + 48) * 2 + 2 * (48 + 32)));
}

TEST_CASE("hone saves adapters with PEFT's names, shapes and config keys, and loads them back exactly", "[cpu][peft]") {
  TempDir dir("save");
  for (const std::string name : {"llama_lora", "gpt2_lora", "qwen2_lora", "gpt2_prompt"}) {
    INFO(name);
    const std::string family = name.substr(0, name.find('_'));
    Model model = Model::load(kModels + family, DType::f32, false);
    load_adapter(model, kPeft + name);
    const std::string out = dir.str(name);
    save_adapter(model, out, "base-model");
    // Same tensors, names and values as PEFT's file.
    const SafetensorsFile mine = SafetensorsFile::open(out + "/adapter_model.safetensors");
    const SafetensorsFile peft = SafetensorsFile::open(kPeft + name + "/adapter_model.safetensors");
    CHECK(mine.metadata().at("format") == "pt");
    REQUIRE(mine.entries().size() == peft.entries().size());
    for (const SafetensorsEntry& e : peft.entries()) {
      INFO(e.name);
      REQUIRE(mine.find(e.name) != nullptr);
      CHECK(mine.find(e.name)->dtype_name == "F32");
      CHECK(mine.load(e.name).to_vector<float>() == peft.load(e.name).to_vector<float>());
    }
    // The config keys that carry meaning are PEFT's, with the same values.
    const nlohmann::json a = read_json(out + "/adapter_config.json"), b = read_json(kPeft + name + "/adapter_config.json");
    CHECK(a["base_model_name_or_path"] == "base-model");
    for (const char* key : {"peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "use_rslora", "use_dora", "bias",
                            "fan_in_fan_out", "rank_pattern", "alpha_pattern", "layers_to_transform", "modules_to_save",
                            "num_virtual_tokens", "token_dim", "num_transformer_submodules", "prompt_tuning_init"}) {
      INFO(key);
      CHECK(a.contains(key) == b.contains(key));
      if (b.contains(key)) CHECK(a[key] == b[key]);
    }
    if (b["target_modules"].is_array()) {
      auto x = a["target_modules"].get<std::vector<std::string>>(), y = b["target_modules"].get<std::vector<std::string>>();
      std::sort(x.begin(), x.end());
      std::sort(y.begin(), y.end());
      CHECK(x == y);
    } else if (b.contains("target_modules")) {
      CHECK(a["target_modules"] == b["target_modules"]);
    }
    // Loading hone's folder gives the same model, bitwise.
    Model back = Model::load(kModels + family, DType::f32, false);
    load_adapter(back, out);
    const Tensor ids = Tensor::from_vector<std::int64_t>({1, 6}, {5, 1, 77, 3, 3, 40});
    CHECK(back.transformer().forward({ids, {}, {}}).to_vector<float>() ==
          model.transformer().forward({ids, {}, {}}).to_vector<float>());
  }
}

TEST_CASE("adapter loading refuses what it cannot reproduce, by name", "[cpu][peft]") {
  TempDir dir("refuse");
  const nlohmann::json good = read_json(kPeft + "llama_lora/adapter_config.json");
  auto try_config = [&](const nlohmann::json& config) {
    const std::string d = dir.str("a");
    fs::create_directories(d);
    write(d + "/adapter_config.json", config.dump());
    fs::copy_file(kPeft + "llama_lora/adapter_model.safetensors", d + "/adapter_model.safetensors",
                  fs::copy_options::overwrite_existing);
    Model m = Model::load(kModels + "llama", DType::f32, false);
    load_adapter(m, d);
  };
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json j = good;
    j[key] = std::move(value);
    return j;
  };
  CHECK_NOTHROW(try_config(good));
  CHECK_NOTHROW(try_config(with("some_future_key", 3)));  // unknown keys are ignored
  CHECK_THROWS_WITH(try_config(with("use_dora", true)), Catch::Contains("'use_dora'") && Catch::Contains("DoRA"));
  CHECK_THROWS_WITH(try_config(with("bias", "all")), Catch::Contains("'bias' is \"all\""));
  CHECK_THROWS_WITH(try_config(with("modules_to_save", {"lm_head"})), Catch::Contains("'modules_to_save'"));
  CHECK_THROWS_WITH(try_config(with("peft_type", "PREFIX_TUNING")), Catch::Contains("PREFIX_TUNING") && Catch::Contains("LORA"));
  CHECK_THROWS_WITH(try_config(with("task_type", "SEQ_CLS")), Catch::Contains("'task_type'"));
  // The tensors must be exactly those the config implies.
  CHECK_THROWS_WITH(try_config(with("r", 8)), Catch::Contains("has shape (4, 32)") && Catch::Contains("(8, 32)"));
  CHECK_THROWS_WITH(try_config(with("target_modules", {"q_proj"})),
                    Catch::Contains("down_proj.lora_A.weight") && Catch::Contains("does not use"));
  CHECK_THROWS_WITH(try_config(with("rank_pattern", nlohmann::json::object())), Catch::Contains("down_proj"));
  CHECK_THROWS_WITH(try_config(with("target_modules", {"lm_head"})), Catch::Contains("lm_head"));
  write(dir.str("a") + "/adapter_config.json", "{not json");
  Model m = Model::load(kModels + "llama", DType::f32, false);
  CHECK_THROWS_WITH(load_adapter(m, dir.str("a")), Catch::Contains("adapter_config.json") && Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(load_adapter(m, dir.str("missing")), Catch::Contains("does not exist"));
  // Prompt tuning for another width.
  Model g = Model::load(kModels + "gpt2", DType::f32, false);
  nlohmann::json p = read_json(kPeft + "gpt2_prompt/adapter_config.json");
  p["num_transformer_submodules"] = 2;
  const std::string d = dir.str("p");
  fs::create_directories(d);
  write(d + "/adapter_config.json", p.dump());
  fs::copy_file(kPeft + "gpt2_prompt/adapter_model.safetensors", d + "/adapter_model.safetensors");
  CHECK_THROWS_WITH(load_adapter(g, d), Catch::Contains("'num_transformer_submodules' is 2"));
  Model q = Model::load(kModels + "qwen3", DType::f32, false);  // hidden 32 too, but 16 per head...
  CHECK_NOTHROW(load_adapter(q, kPeft + "gpt2_prompt"));       // ...a prompt only needs the width
  CHECK_THROWS_WITH(merge_adapter(q), Catch::Contains("cannot be merged"));
}

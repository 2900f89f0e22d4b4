// Greedy continuations of the fixture models (tests/data/models) against transformers'
// generate(), recorded by tests/data/generate/make_generate_fixtures.py: the same ids, plain
// and with repetition_penalty 1.5, and the same next-token logits after each prompt.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hone/generator.h"
#include "infer/decoder.h"
#include "support/tolerance.h"

using namespace hone;

namespace {

const std::string kData = std::string(HONE_TEST_DATA_DIR);

nlohmann::json fixtures() {
  std::ifstream in(kData + "/generate/greedy.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("Greedy continuations match transformers generate() on every family", "[cpu][infer]") {
  const nlohmann::json f = fixtures();
  for (const std::string family : {"llama", "mistral", "qwen2", "qwen3", "gpt2"}) {
    // float64 like the recording; generation_config.json names EOS 2, as generate() used.
    const std::string dir = kData + "/models/" + family;
    Model model = Model::load(dir, DType::f64);
    Generator gen(model);
    GenerateOptions o;
    o.max_new_tokens = 12;
    o.eos_ids = generation_eos_ids(dir);
    REQUIRE(o.eos_ids == std::vector<std::int32_t>{2});
    const nlohmann::json& cases = f.at(family);
    REQUIRE(cases.size() == 3);
    std::vector<std::vector<std::int32_t>> prompts;
    for (const auto& c : cases) prompts.push_back(c.at("prompt").get<std::vector<std::int32_t>>());
    const std::vector<Generation> plain = gen.generate(prompts, o);
    o.sampling.repetition_penalty = 1.5;
    const std::vector<Generation> penalised = gen.generate(prompts, o);
    const Tensor logits = infer::make_cached_decoder(model.transformer())->prefill(prompts);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      INFO(family << " prompt " << i << " (smallest greedy margin " << cases[i].at("margin").get<double>() << ")");
      const auto expected = cases[i].at("generated").get<std::vector<std::int32_t>>();
      CHECK(plain[i].ids == expected);
      CHECK(plain[i].finish == (expected.back() == 2 ? FinishReason::eos : FinishReason::length));
      CHECK(penalised[i].ids == cases[i].at("generated_penalty").get<std::vector<std::int32_t>>());
      // transformers computes RoPE's cos/sin in float32 even in a float64 model.
      const auto ref = cases[i].at("next_logits").get<std::vector<double>>();
      const auto row = logits.slice(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1).to_vector<double>();
      CHECK(test::compare(row, ref, {1e-6, 1e-6}) == "");
    }
  }
}

TEST_CASE("EOS ids come from generation_config.json, else config.json, as a number or a list", "[cpu][infer]") {
  const std::string dir = "generate_eos_test";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir + "/" + name) << text; };
  CHECK(generation_eos_ids(dir).empty());
  write("config.json", R"({"eos_token_id": 7})");
  CHECK(generation_eos_ids(dir) == std::vector<std::int32_t>{7});
  write("generation_config.json", R"({"bos_token_id": 1, "eos_token_id": [128001, 128008, 128009]})");
  CHECK(generation_eos_ids(dir) == std::vector<std::int32_t>{128001, 128008, 128009});
  write("generation_config.json", R"({"do_sample": true})");  // no eos here: config.json's
  CHECK(generation_eos_ids(dir) == std::vector<std::int32_t>{7});
  write("generation_config.json", R"({"eos_token_id": "x"})");
  CHECK_THROWS_WITH(generation_eos_ids(dir), Catch::Contains("eos_token_id \"x\" is not a token id"));
  write("generation_config.json", "{broken");
  CHECK_THROWS_WITH(generation_eos_ids(dir), Catch::Contains("generation_config.json is not valid JSON"));
  std::filesystem::remove_all(dir);
}

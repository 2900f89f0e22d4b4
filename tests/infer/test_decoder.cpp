// The KV-cache decoder against full recomputation (logits step by step and greedy tokens, on
// every fixture family, with LoRA and prompt-tuning adapters attached), batched generation
// against one prompt at a time, the sliding window, and decode attention against the
// training attention op.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "hone/generator.h"
#include "hone/peft.h"
#include "infer/decoder.h"
#include "model/transformer.h"
#include "ops/ops.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;

namespace {

const std::string kModels = std::string(HONE_TEST_DATA_DIR) + "/models/";
const std::vector<std::string> kFamilies = {"llama", "mistral", "qwen2", "qwen3", "gpt2"};

std::vector<std::vector<std::int32_t>> random_prompts(const std::vector<std::int64_t>& lengths, std::int64_t vocab,
                                                      std::uint64_t seed) {
  std::vector<std::vector<std::int32_t>> out;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    const auto ids = test::random_ids({lengths[i]}, vocab, DType::i64, seed + i).to_vector<std::int64_t>();
    out.emplace_back(ids.begin(), ids.end());
  }
  return out;
}

std::vector<std::int32_t> argmax_rows(const Tensor& logits) {
  const Tensor out = Tensor::empty({logits.size(0)}, DType::i64);
  ops::argmax(logits, out);
  std::vector<std::int32_t> ids;
  for (std::int64_t v : out.to_vector<std::int64_t>()) ids.push_back(static_cast<std::int32_t>(v));
  return ids;
}

// Feeds both decoders the same greedy tokens (from the recompute logits) for `steps` steps and
// checks every step's logits agree; drops sequence 1 half way (retain) when there are three.
void check_cache_equals_recompute(model::Transformer& m, const std::vector<std::vector<std::int32_t>>& prompts,
                                  int steps, test::Tolerance tol) {
  auto cached = infer::make_cached_decoder(m);
  auto reference = infer::make_recompute_decoder(m);
  Tensor a = cached->prefill(prompts), b = reference->prefill(prompts);
  INFO("prefill");
  REQUIRE(test::compare(a, b, tol) == "");
  for (int t = 0; t < steps; ++t) {
    INFO("step " << t);
    std::vector<std::int32_t> next = argmax_rows(b);
    if (t == steps / 2 && next.size() == 3) {
      cached->retain({0, 2});
      reference->retain({0, 2});
      next = {next[0], next[2]};
    }
    a = cached->step(next);
    b = reference->step(next);
    REQUIRE(cached->lengths() == reference->lengths());
    REQUIRE(test::compare(a, b, tol) == "");
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("KV-cache decoder logits equal full recomputation on every family", "[cpu][infer]") {
  for (const std::string& family : kFamilies) {
    for (DType dt : {DType::f64, DType::f32}) {
      INFO(family << " " << dtype_name(dt));
      auto m = model::Transformer::from_pretrained(kModels + family, dt);
      const auto prompts = random_prompts({5, 1, 13}, m.config().vocab_size, 3);
      // f32: the decode step reduces in another order than the packed attention.
      check_cache_equals_recompute(m, prompts, 16, dt == DType::f64 ? test::Tolerance{1e-11, 1e-11}
                                                                        : test::Tolerance{2e-5, 2e-5});
    }
  }
}

TEST_CASE("Greedy generation with the cache equals recomputation token for token", "[cpu][infer]") {
  for (const std::string& family : kFamilies) {
    for (DType dt : {DType::f64, DType::f32}) {
      INFO(family << " " << dtype_name(dt));
      Model model = Model::load(kModels + family, dt);
      Generator gen(model);
      GenerateOptions o;
      o.max_new_tokens = 24;
      o.ignore_eos = true;
      const auto prompts = random_prompts({3, 11, 1, 6}, model.info().vocab_size, 17);
      const std::vector<Generation> cached = gen.generate(prompts, o);
      o.use_cache = false;
      const std::vector<Generation> recomputed = gen.generate(prompts, o);
      REQUIRE(cached.size() == 4);
      for (std::size_t i = 0; i < cached.size(); ++i) {
        INFO("prompt " << i);
        CHECK(cached[i].ids.size() == 24);
        CHECK(cached[i].ids == recomputed[i].ids);
        CHECK(cached[i].finish == FinishReason::length);
        CHECK(cached[i].prompt_tokens == static_cast<std::int64_t>(prompts[i].size()));
      }
    }
  }
}

TEST_CASE("Batched generation equals one prompt at a time, greedy and sampled", "[cpu][infer]") {
  for (const std::string& family : {"llama", "gpt2", "qwen3"}) {
    INFO(family);
    Model model = Model::load(kModels + family, DType::f64);
    Generator gen(model);
    const auto prompts = random_prompts({7, 2, 12, 4, 9}, model.info().vocab_size, 29);
    for (bool sampled : {false, true}) {
      INFO("sampled " << sampled);
      GenerateOptions o;
      o.max_new_tokens = 14;
      o.eos_ids = {5, 9};  // frequent enough in these tiny models to end some sequences early
      if (sampled) {
        o.sampling.temperature = 0.9;
        o.sampling.top_k = 30;
        o.sampling.top_p = 0.95;
        o.sampling.repetition_penalty = 1.2;
        o.sampling.seed = 77;
      }
      const std::vector<Generation> batch = gen.generate(prompts, o);
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        GenerateOptions one = o;
        one.stream_offset = i;
        const Generation alone = gen.generate({prompts[i]}, one)[0];
        INFO("prompt " << i);
        CHECK(batch[i].ids == alone.ids);
        CHECK(batch[i].finish == alone.finish);
      }
    }
  }
}

TEST_CASE("Sampling draws differ across seeds and repeat with the same seed", "[cpu][infer]") {
  Model model = Model::load(kModels + "llama", DType::f32);
  Generator gen(model);
  GenerateOptions o;
  o.max_new_tokens = 16;
  o.ignore_eos = true;
  o.sampling.temperature = 1.5;
  const auto prompts = random_prompts({4}, 96, 5);
  o.sampling.seed = 1;
  const auto a = gen.generate(prompts, o)[0].ids, b = gen.generate(prompts, o)[0].ids;
  o.sampling.seed = 2;
  const auto c = gen.generate(prompts, o)[0].ids;
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("KV-cache decoding equals recomputation with LoRA and prompt-tuning adapters", "[cpu][infer]") {
  for (const std::string& family : {"llama", "gpt2", "qwen2"}) {
    INFO(family);
    {
      Model model = Model::load(kModels + family, DType::f64, /*train_base=*/false);
      const auto prompts = random_prompts({4, 9, 2}, model.info().vocab_size, 41);
      auto before = infer::make_recompute_decoder(model.transformer())->prefill(prompts);
      LoraConfig lora;
      lora.r = 4;
      lora.alpha = 8;
      lora.target_modules = {"all-linear"};
      lora.init = LoraInit::none;  // B random too: the adapter changes the output
      lora.seed = 3;
      add_lora(model, lora);
      auto after = infer::make_recompute_decoder(model.transformer())->prefill(prompts);
      CHECK(test::compare(after, before, {1e-6, 1e-6}) != "");  // the adapter is in effect
      check_cache_equals_recompute(model.transformer(), prompts, 10, {1e-11, 1e-11});
    }
    {
      Model model = Model::load(kModels + family, DType::f64, /*train_base=*/false);
      PromptTuningConfig p;
      p.num_virtual_tokens = 5;
      p.seed = 9;
      add_prompt_tuning(model, p);
      const auto prompts = random_prompts({4, 9, 2}, model.info().vocab_size, 43);
      check_cache_equals_recompute(model.transformer(), prompts, 10, {1e-11, 1e-11});
      // The virtual tokens take positions: the context shrinks by their number.
      CHECK(infer::max_sequence_tokens(model.transformer()) == model.info().max_positions - 5);
    }
  }
}

TEST_CASE("Sliding-window decoding equals a windowed prefill of the whole sequence", "[cpu][infer]") {
  std::string config = read_text(kModels + "mistral/config.json");
  const std::string from = "\"sliding_window\": null";
  REQUIRE(config.find(from) != std::string::npos);
  config.replace(config.find(from), from.size(), "\"sliding_window\": 4");
  Model model = Model::from_config(config, 5, 0.2, DType::f64);
  REQUIRE(model.transformer().config().sliding_window == 4);
  auto dec = infer::make_cached_decoder(model.transformer());
  std::vector<std::vector<std::int32_t>> seqs = random_prompts({2, 6}, 96, 51);
  Tensor logits = dec->prefill(seqs);
  for (int t = 0; t < 8; ++t) {
    const std::vector<std::int32_t> next = argmax_rows(logits);
    for (std::size_t i = 0; i < seqs.size(); ++i) seqs[i].push_back(next[i]);
    logits = dec->step(next);
    // A fresh prefill attends with ops::attention_fwd's window over the whole sequence.
    const Tensor full = infer::make_cached_decoder(model.transformer())->prefill(seqs);
    INFO("step " << t);
    REQUIRE(test::compare(logits, full, {1e-11, 1e-11}) == "");
  }
  // The same weights without the window give other logits once sequences pass 4 tokens.
  Model plain = Model::from_config(read_text(kModels + "mistral/config.json"), 5, 0.2, DType::f64);
  REQUIRE(plain.transformer().config().sliding_window == 0);
  const Tensor windowed = infer::make_cached_decoder(model.transformer())->prefill(seqs);
  const Tensor unwindowed = infer::make_cached_decoder(plain.transformer())->prefill(seqs);
  CHECK(test::compare(windowed, unwindowed, {1e-6, 1e-6}) != "");
}

TEST_CASE("Generation refuses bad prompts and options by name", "[cpu][infer]") {
  Model model = Model::load(kModels + "llama", DType::f32);
  Generator gen(model);
  CHECK_THROWS_WITH(gen.generate({{}}), Catch::Contains("prompt 0 is empty"));
  CHECK_THROWS_WITH(gen.generate({{1, 200}}), Catch::Contains("token id 200 of prompt 0 is outside the vocabulary"));
  CHECK_THROWS_WITH(gen.generate({std::vector<std::int32_t>(64, 3)}), Catch::Contains("the model holds at most 64"));
  GenerateOptions o;
  o.sampling.top_p = 0;
  CHECK_THROWS_WITH(gen.generate({{1}}, o), Catch::Contains("top_p 0 must be in (0, 1]"));
  o = {};
  o.sampling.temperature = -1;
  CHECK_THROWS_WITH(gen.generate({{1}}, o), Catch::Contains("temperature -1"));
  o = {};
  o.stop = {"x"};
  CHECK_THROWS_WITH(gen.generate({{1}}, o), Catch::Contains("stop strings need a tokenizer"));
  // Near the context end a sequence stops with reason context.
  o = {};
  o.max_new_tokens = 10;
  o.ignore_eos = true;
  const Generation g = gen.generate({std::vector<std::int32_t>(60, 3)}, o)[0];
  CHECK(g.ids.size() == 4);
  CHECK(g.finish == FinishReason::context);
}

// LoRA: gradients against finite differences, the chain rule through the merged weights, the
// zero-B identity, merge/unmerge, target selection and the frozen base under training.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "hone/peft.h"
#include "hone/random.h"
#include "hone/safetensors.h"
#include "hone/trainer.h"
#include "model/transformer.h"
#include "ops/ops.h"
#include "peft/lora.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using model::Transformer;

namespace {

const std::string kModels = std::string(HONE_TEST_DATA_DIR) + "/models/";

// Two packed sequences (5 and 7 tokens): the adapter must see every token of both.
model::Batch packed_batch() {
  return {Tensor::from_vector<std::int64_t>({12}, {3, 17, 17, 80, 1, 44, 9, 9, 60, 2, 71, 5}),
          Tensor::from_vector<std::int64_t>({12}, {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6}),
          Tensor::from_vector<std::int32_t>({3}, {0, 5, 12})};
}

LoraConfig random_lora(std::vector<std::string> targets) {
  LoraConfig c;
  c.r = 3;
  c.alpha = 5;
  c.target_modules = std::move(targets);
  c.init = LoraInit::none;  // B random as well, so every path carries a gradient
  c.seed = 11;
  return c;
}

}  // namespace

TEST_CASE("LoRA gradients of A and B match finite differences", "[cpu][peft][fd]") {
  for (const std::string family : {"qwen3", "gpt2", "llama"}) {
    for (const bool dropout : {false, true}) {
      INFO(family << (dropout ? " with dropout" : ""));
      Model model = Model::load(kModels + family, DType::f64, false);
      LoraConfig c = random_lora({"all-linear"});
      c.use_rslora = family == "llama";
      c.dropout = dropout ? 0.3 : 0.0;
      add_lora(model, c);
      Transformer& t = model.transformer();
      const model::Batch batch = packed_batch();
      const Tensor g = test::random_tensor({12, t.config().vocab_size}, DType::f64, 5);
      // Training mode with a fixed stream: every forward draws the same dropout mask.
      t.adapter()->set_training(dropout, 7);
      t.forward(batch);
      t.backward(g);
      const Tensor analytic = t.adapter()->grads().clone();
      CHECK(ops::grad_norm({analytic}) > 1e-3);
      const std::string report = test::check_gradient(
          t.adapter()->params(), analytic, [&] { return test::dot(g, t.forward(batch)); }, 1e-6, 120);
      CHECK(report == "");
    }
  }
}

TEST_CASE("LoRA with B = 0 gives the base model's logits exactly", "[cpu][peft]") {
  for (const std::string family : {"llama", "gpt2"}) {
    INFO(family);
    Model base = Model::load(kModels + family, DType::f32, false);
    const model::Batch batch = packed_batch();
    const Tensor expected = base.transformer().forward(batch);
    LoraConfig c;
    c.target_modules = {"all-linear"};
    c.r = 4;
    c.alpha = 16;
    add_lora(base, c);  // PEFT's default init: A kaiming-uniform, B zero
    const auto* lora = dynamic_cast<const peft::LoraAdapter*>(base.transformer().adapter());
    REQUIRE(lora != nullptr);
    CHECK(lora->modules().size() == (family == "gpt2" ? 8u : 14u));
    const std::vector<double> a = lora->modules()[0].A.to_vector<double>();
    const double bound = 1.0 / std::sqrt(static_cast<double>(lora->modules()[0].in));
    CHECK(*std::max_element(a.begin(), a.end()) <= bound);
    CHECK(*std::max_element(a.begin(), a.end()) > 0.5 * bound);  // spread over the range
    CHECK(base.transformer().forward(batch).to_vector<float>() == expected.to_vector<float>());
  }
}

TEST_CASE("LoRA gradients equal the chain rule through the merged weight's gradient", "[cpu][peft]") {
  // With W' = W + s·B·A and G = dL/dW' of the merged model: dL/dB = s·G·Aᵀ, dL/dA = s·Bᵀ·G.
  for (const std::string family : {"llama", "gpt2"}) {
    INFO(family);
    Model model = Model::load(kModels + family, DType::f64, false);
    LoraConfig c = random_lora({"q_proj", "v_proj", "down_proj", "c_attn", "c_fc"});
    c.alpha = 7;
    add_lora(model, c);
    Transformer& t = model.transformer();
    const model::Batch batch = packed_batch();
    const Tensor g = test::random_tensor({12, t.config().vocab_size}, DType::f64, 8);
    t.forward(batch);
    t.backward(g);

    Transformer merged = Transformer::from_pretrained(kModels + family, DType::f64, true);
    const auto* lora = dynamic_cast<const peft::LoraAdapter*>(t.adapter());
    for (const peft::LoraModule& m : lora->modules()) {
      std::int64_t row = 0;
      for (std::size_t b = 0; b < m.projs.size(); ++b) {
        ops::matmul(m.B.slice(row, row + m.rows[b]), m.A, merged.weight(m.layer, m.projs[b]), {false, false, m.scale, 1.0});
        row += m.rows[b];
      }
    }
    merged.forward(batch);
    merged.backward(g);
    std::size_t checked = 0;
    for (const peft::LoraModule& m : lora->modules()) {
      INFO(m.key);
      // G of the whole module: its blocks' weight gradients stacked (c_attn: q | k | v).
      const Tensor G = Tensor::empty({m.out, m.in}, DType::f64);
      std::int64_t row = 0;
      for (std::size_t b = 0; b < m.projs.size(); ++b) {
        for (const auto& p : merged.named_params())
          if (p.value.raw() == merged.weight(m.layer, m.projs[b]).raw()) G.slice(row, row + m.rows[b]).copy_from(p.grad);
        row += m.rows[b];
      }
      const Tensor dB = Tensor::empty({m.out, m.r}, DType::f64), dA = Tensor::empty({m.r, m.in}, DType::f64);
      ops::matmul(G, m.A, dB, {false, true, m.scale, 0.0});
      ops::matmul(m.B, G, dA, {true, false, m.scale, 0.0});
      CHECK(test::compare(m.dB, dB, {1e-11, 1e-8}) == "");
      CHECK(test::compare(m.dA, dA, {1e-11, 1e-8}) == "");
      ++checked;
    }
    CHECK(checked == (family == "gpt2" ? 4u : 6u));
  }
}

TEST_CASE("merged forward equals the unmerged forward; unmerge restores the weights", "[cpu][peft]") {
  for (const std::string family : {"qwen2", "gpt2"}) {
    INFO(family);
    Model model = Model::load(kModels + family, DType::f64, false);
    add_lora(model, random_lora({"all-linear"}));
    Transformer& t = model.transformer();
    const std::vector<double> base = t.params().to_vector<double>();
    const model::Batch batch = packed_batch();
    const Tensor unmerged = t.forward(batch).clone();
    merge_adapter(model);
    CHECK(adapter_info(model).merged);
    CHECK(t.params().to_vector<double>() != base);
    const Tensor merged = t.forward(batch);
    CHECK(test::compare(merged, unmerged, {1e-11, 1e-9}) == "");
    CHECK_THROWS_WITH(merge_adapter(model), Catch::Contains("already merged"));
    CHECK_THROWS_WITH(t.backward(merged), Catch::Contains("unmerge it before training"));
    unmerge_adapter(model);
    CHECK(test::compare(t.params(), Tensor::from_vector<double>(t.params().shape(), base), {1e-14, 1e-12}) == "");
    CHECK(test::compare(t.forward(batch), unmerged, {1e-11, 1e-9}) == "");
  }
}

TEST_CASE("LoRA targets follow PEFT's matching: suffixes, regex, layers, rank and alpha patterns", "[cpu][peft]") {
  const auto gpt2 = model::TransformerConfig::from_file(kModels + "gpt2/config.json");
  const auto llama = model::TransformerConfig::from_file(kModels + "llama/config.json");
  auto keys = [](const std::vector<peft::LoraModule>& ms) {
    std::vector<std::string> k;
    for (const auto& m : ms) k.push_back(m.key);
    return k;
  };
  LoraConfig c;
  c.target_modules = {"c_proj"};  // both attn.c_proj and mlp.c_proj
  c.layers_to_transform = {1};
  CHECK(keys(peft::resolve_lora_modules(gpt2, c)) ==
        std::vector<std::string>{"transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"});
  c.target_modules = {"mlp.c_proj"};
  c.layers_to_transform = {};
  CHECK(keys(peft::resolve_lora_modules(gpt2, c)) ==
        std::vector<std::string>{"transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj"});
  CHECK_THROWS_WITH(peft::resolve_lora_modules(gpt2, LoraConfig{}),  // default q_proj, v_proj
                    Catch::Contains("selects no linear layer") && Catch::Contains("q_proj, v_proj") &&
                        Catch::Contains("transformer.h.0.attn.c_attn"));
  c = LoraConfig{};
  c.target_regex = R"(.*\.(q_proj|down_proj))";
  c.layers_to_transform = {0};  // ignored with a regex, as in PEFT
  c.rank_pattern = {{"down_proj", 2}};
  c.alpha_pattern = {{"layers.1.self_attn.q_proj", 6.0}};
  c.r = 4;
  c.alpha = 8;
  const auto ms = peft::resolve_lora_modules(llama, c);
  REQUIRE(keys(ms) == std::vector<std::string>{"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj",
                                               "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.down_proj"});
  CHECK(ms[0].r == 4);
  CHECK(ms[0].scale == 2.0);
  CHECK(ms[1].r == 2);
  CHECK(ms[1].scale == 4.0);
  CHECK(ms[1].in == 48);
  CHECK(ms[2].scale == 1.5);
  c.use_rslora = true;
  CHECK(peft::resolve_lora_modules(llama, c)[0].scale == 4.0);  // alpha / √r
  // Bad options are named.
  c = LoraConfig{};
  c.target_modules = {"lm_head"};
  CHECK_THROWS_WITH(peft::resolve_lora_modules(llama, c), Catch::Contains("lm_head") && Catch::Contains("not a linear layer of a block"));
  c.target_modules = {"q_proj"};
  c.r = 0;
  CHECK_THROWS_WITH(peft::resolve_lora_modules(llama, c), Catch::Contains("'r' is 0"));
  c.r = 2;
  c.layers_to_transform = {5};
  CHECK_THROWS_WITH(peft::resolve_lora_modules(llama, c), Catch::Contains("'layers_to_transform'") && Catch::Contains("block 5"));
  c.layers_to_transform = {};
  c.target_regex = "(q_proj";
  CHECK_THROWS_WITH(peft::resolve_lora_modules(llama, c), Catch::Contains("not a valid regular expression"));
  c.target_regex = "";
  c.exclude_modules = {"layers.0.self_attn.q_proj"};
  CHECK(keys(peft::resolve_lora_modules(llama, c)) == std::vector<std::string>{"model.layers.1.self_attn.q_proj"});
}

TEST_CASE("LoRA dropout is reproducible: the same stream draws the same mask", "[cpu][peft]") {
  Model model = Model::load(kModels + "llama", DType::f32, false);
  LoraConfig c = random_lora({"q_proj", "up_proj"});
  c.dropout = 0.5;
  add_lora(model, c);
  Transformer& t = model.transformer();
  const model::Batch batch = packed_batch();
  const std::vector<float> eval = t.forward(batch).to_vector<float>();
  t.adapter()->set_training(true, 3);
  const std::vector<float> a = t.forward(batch).to_vector<float>(), b = t.forward(batch).to_vector<float>();
  t.adapter()->set_training(true, 4);
  const std::vector<float> other = t.forward(batch).to_vector<float>();
  t.adapter()->set_training(false, 0);
  CHECK(a == b);
  CHECK(a != other);
  CHECK(a != eval);
  CHECK(t.forward(batch).to_vector<float>() == eval);  // no dropout outside training
}

// Prompt tuning: gradients against finite differences, positions as PEFT places them, the
// three initialisations, and training that leaves the base untouched.
#include <catch2/catch.hpp>

#include <cmath>

#include "hone/peft.h"
#include "hone/tokenizer.h"
#include "model/transformer.h"
#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using model::Transformer;

namespace {

const std::string kModels = std::string(HONE_TEST_DATA_DIR) + "/models/";

model::Batch packed_batch() {
  return {Tensor::from_vector<std::int64_t>({9}, {3, 17, 17, 80, 44, 9, 60, 2, 71}),
          Tensor::from_vector<std::int64_t>({9}, {0, 1, 2, 3, 0, 1, 2, 3, 4}),
          Tensor::from_vector<std::int32_t>({3}, {0, 4, 9})};
}

}  // namespace

TEST_CASE("prompt embedding gradients match finite differences", "[cpu][peft][fd]") {
  for (const std::string family : {"llama", "gpt2", "qwen3"}) {
    INFO(family);
    Model model = Model::load(kModels + family, DType::f64, false);
    PromptTuningConfig c;
    c.num_virtual_tokens = 4;
    c.seed = 2;
    add_prompt_tuning(model, c);
    Transformer& t = model.transformer();
    // RANDOM init is standard normal (PEFT's); scale it to the embeddings' size for a stable check.
    ops::scale_(t.adapter()->params(), 0.05);
    const model::Batch batch = packed_batch();
    const Tensor g = test::random_tensor({9, t.config().vocab_size}, DType::f64, 3);
    const Tensor logits = t.forward(batch);
    CHECK(logits.shape() == (Shape{9, t.config().vocab_size}));  // real tokens only
    t.backward(g);
    const Tensor analytic = t.adapter()->grads().clone();
    CHECK(ops::grad_norm({analytic}) > 1e-4);
    CHECK(test::check_gradient(t.adapter()->params(), analytic, [&] { return test::dot(g, t.forward(batch)); },
                               1e-6, 128) == "");
  }
}

TEST_CASE("virtual tokens take positions 0..Nv-1 and the sequence shifts by Nv, per sequence", "[cpu][peft]") {
  // The prompted run equals a plain run of the base on [virtual embeddings; tokens] with positions
  // 0…Nv+T−1: checked by splicing the prompt in as tokens whose embeddings are the prompt rows.
  for (const std::string family : {"llama", "gpt2"}) {
    INFO(family);
    Model model = Model::load(kModels + family, DType::f64, false);
    PromptTuningConfig c;
    c.num_virtual_tokens = 3;
    c.init = PromptInit::sample_vocab;  // the prompt rows are the embeddings of ids
    c.seed = 9;
    add_prompt_tuning(model, c);
    Transformer& t = model.transformer();
    const Tensor& embed = t.named_params().front().value;
    const Tensor prompt = t.adapter()->prompt();
    std::vector<std::int64_t> prompt_ids;
    for (std::int64_t i = 0; i < 3; ++i)
      for (std::int64_t v = 0; v < t.config().vocab_size; ++v)
        if (embed.select(v).to_vector<double>() == prompt.select(i).to_vector<double>()) {
          prompt_ids.push_back(v);
          break;
        }
    REQUIRE(prompt_ids.size() == 3);
    const Tensor prompted = t.forward(packed_batch());
    const std::vector<std::int64_t> seqs[2] = {{3, 17, 17, 80}, {44, 9, 60, 2, 71}};
    Transformer plain = Transformer::from_pretrained(kModels + family, DType::f64, false);
    std::int64_t row = 0;
    for (const auto& s : seqs) {
      std::vector<std::int64_t> ids = prompt_ids;
      ids.insert(ids.end(), s.begin(), s.end());
      const auto n = static_cast<std::int64_t>(ids.size());
      const Tensor full = plain.forward({Tensor::from_vector<std::int64_t>({1, n}, ids), {}, {}});
      CHECK(test::compare(prompted.slice(row, row + n - 3), full.slice(3, n), {1e-12, 1e-10}) == "");
      row += n - 3;
    }
  }
}

TEST_CASE("prompt tuning initialisations: random, from text, from sampled vocabulary", "[cpu][peft]") {
  const std::string config = R"({"model_type": "llama", "vocab_size": 264, "hidden_size": 16,
    "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
    "torch_dtype": "float32"})";
  const Tokenizer tok = Tokenizer::byte_level();
  Model model = Model::from_config(config, 1, 0.02, DType::f32, false);
  const Tensor& embed = model.transformer().named_params().front().value;
  PromptTuningConfig c;
  c.num_virtual_tokens = 7;
  c.init = PromptInit::text;
  c.init_text = "abc";
  add_prompt_tuning(model, c, &tok);
  const Tensor p = model.transformer().adapter()->prompt();
  const std::vector<std::int32_t> ids = tok.encode("abc");
  REQUIRE(!ids.empty());
  for (std::int64_t i = 0; i < 7; ++i)  // the text's ids repeated to fill
    CHECK(p.select(i).to_vector<float>() == embed.select(ids[static_cast<std::size_t>(i) % ids.size()]).to_vector<float>());
  c.init = PromptInit::random;
  add_prompt_tuning(model, c);
  const std::vector<float> r = model.transformer().adapter()->params().to_vector<float>();
  double sum = 0, sq = 0;
  for (float x : r) sum += x, sq += x * x;
  const double n = static_cast<double>(r.size()), mean = sum / n, var = sq / n - mean * mean;
  CHECK(std::abs(mean) < 0.25);
  CHECK(var == Approx(1.0).margin(0.3));  // standard normal, as PEFT's nn.Embedding
  CHECK_THROWS_WITH(add_prompt_tuning(model, [] {
                      PromptTuningConfig t;
                      t.init = PromptInit::text;
                      t.init_text = "x";
                      return t;
                    }()),
                    Catch::Contains("needs the model's tokenizer"));
  c.num_virtual_tokens = 0;
  CHECK_THROWS_WITH(add_prompt_tuning(model, c), Catch::Contains("'num_virtual_tokens' is 0"));
  c.num_virtual_tokens = 32;
  CHECK_THROWS_WITH(add_prompt_tuning(model, c), Catch::Contains("max_position_embeddings 32"));
}

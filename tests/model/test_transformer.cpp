// Transformer families against transformers itself: logits, loss and every parameter gradient
// of tiny random checkpoints (tests/data/models, made by its make_fixtures.py), plus save/load
// round trips, packed sequences and finite differences.
#include <catch2/catch.hpp>

#include <filesystem>

#include "model/transformer.h"
#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using namespace hone::model;

namespace {

const std::string kModels = std::string(HONE_TEST_DATA_DIR) + "/models/";

// Mean next-token cross entropy over each row (labels = ids shifted by one), as transformers
// computes it with labels = input_ids; returns the loss and fills dlogits.
double causal_lm_loss(const Tensor& logits, const Tensor& ids, Tensor& dlogits) {
  const std::int64_t B = ids.size(0), T = ids.size(1), N = B * T;
  std::vector<std::int64_t> targets(static_cast<std::size_t>(N), -100);
  const auto v = ids.to_vector<std::int64_t>();
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t + 1 < T; ++t) targets[b * T + t] = v[b * T + t + 1];
  const Tensor tg = Tensor::from_vector<std::int64_t>({N}, targets);
  const DType dt = logits.dtype();
  const Tensor losses = Tensor::empty({N}, dt), lse = Tensor::empty({N}, dt);
  ops::cross_entropy_fwd(logits, tg, {}, losses, lse);
  const double count = static_cast<double>(B * (T - 1));
  double total = 0;
  for (double l : losses.to_vector<double>()) total += l;
  dlogits = Tensor::empty(logits.shape(), dt);
  ops::cross_entropy_bwd(Tensor::full({N}, 1.0 / count, dt), logits, tg, lse, {}, dlogits);
  return total / count;
}

void check_family(const std::string& family, DType dtype, test::Tolerance tol) {
  INFO(family << " " << dtype_name(dtype));
  Transformer m = Transformer::from_pretrained(kModels + family, dtype);
  const SafetensorsFile ref = SafetensorsFile::open(kModels + family + "/reference.safetensors");
  const Tensor ids = ref.load("input_ids", DType::i64);
  const Tensor logits = m.forward({ids, {}, {}});
  const Tensor expected = ref.load("logits", DType::f64);
  CHECK(test::compare(logits, expected.view(logits.shape()), tol) == "");
  Tensor dlogits;
  const double loss = causal_lm_loss(logits, ids, dlogits);
  CHECK(loss == Approx(ref.load("loss").item()).epsilon(tol.rtol * 10).margin(tol.atol));
  m.backward(dlogits);
  std::size_t compared = 0;
  for (const auto& [name, g] : m.hf_state(true, DType::f64)) {
    const SafetensorsEntry* e = ref.find("grad." + name);
    INFO(name);
    REQUIRE(e != nullptr);
    CHECK(test::compare(g, ref.load("grad." + name, DType::f64), tol) == "");
    ++compared;
  }
  CHECK(compared == m.hf_state(true).size());
}

// transformers computes RoPE's cos and sin in float32 even in a double model, so the RoPE
// families agree with the double reference to ~1e-7 relative; GPT-2 (no RoPE) to ~1e-12.
constexpr test::Tolerance kRopeFamilies{1e-7, 1e-5};
constexpr test::Tolerance kExact{1e-10, 1e-8};

}  // namespace

TEST_CASE("transformer matches transformers for llama", "[cpu][model]") {
  check_family("llama", DType::f64, kRopeFamilies);
  check_family("llama", DType::f32, {2e-5, 2e-3});
}
TEST_CASE("transformer matches transformers for mistral", "[cpu][model]") {
  check_family("mistral", DType::f64, kRopeFamilies);
}
TEST_CASE("transformer matches transformers for qwen2", "[cpu][model]") {
  check_family("qwen2", DType::f64, kRopeFamilies);
}
TEST_CASE("transformer matches transformers for qwen3", "[cpu][model]") {
  check_family("qwen3", DType::f64, kRopeFamilies);
  check_family("qwen3", DType::f32, {2e-5, 2e-3});
}
TEST_CASE("transformer matches transformers for gpt2", "[cpu][model]") {
  check_family("gpt2", DType::f64, kExact);
}

TEST_CASE("transformer configs read the families and their defaults", "[cpu][model]") {
  const TransformerConfig l = TransformerConfig::from_file(kModels + "llama/config.json");
  CHECK(l.family == Family::llama);
  CHECK(l.num_kv_heads == 2);
  CHECK(l.rope.scaling.kind == ops::RopeScaling::Kind::llama3);
  CHECK(l.rope.scaling.original_max_position == 16);
  CHECK(l.eos_token_ids == std::vector<std::int64_t>{2});
  const TransformerConfig q = TransformerConfig::from_file(kModels + "qwen3/config.json");
  CHECK(q.head_dim == 16);
  CHECK(q.qk_norm);
  CHECK(q.tie_word_embeddings);
  CHECK(q.rope.theta == 1e6);
  const TransformerConfig g = TransformerConfig::from_file(kModels + "gpt2/config.json");
  CHECK(g.intermediate_size == 128);
  CHECK(g.head_dim == 8);
  CHECK_THROWS_WITH(TransformerConfig::from_json_text(R"({"model_type": "bert"})", "x.json"),
                    Catch::Contains("x.json") && Catch::Contains("'bert'"));
  CHECK_THROWS_WITH(TransformerConfig::from_json_text(R"({"model_type": "llama", "vocab_size": 8})", "c.json"),
                    Catch::Contains("c.json") && Catch::Contains("\"hidden_size\""));
  CHECK_THROWS_WITH(TransformerConfig::from_json_text(
                        R"({"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,)"
                        R"( "num_hidden_layers": 1, "num_attention_heads": 3, "num_key_value_heads": 2})", "c.json"),
                    Catch::Contains("not a multiple"));
  // The written config reads back to the same architecture.
  const TransformerConfig back = TransformerConfig::from_json_text(l.to_json_text(), "back");
  CHECK(back.hidden_size == l.hidden_size);
  CHECK(back.rope.scaling.factor == l.rope.scaling.factor);
  CHECK(back.tie_word_embeddings == l.tie_word_embeddings);
}

TEST_CASE("transformer save and load round trip every family", "[cpu][model]") {
  for (const std::string family : {"llama", "qwen2", "qwen3", "gpt2"}) {
    INFO(family);
    const Transformer m = Transformer::from_pretrained(kModels + family, DType::f32);
    const std::string dir = (std::filesystem::temp_directory_path() / ("hone_model_" + family)).string();
    m.save_pretrained(dir);
    const Transformer back = Transformer::from_pretrained(dir, DType::f32);
    CHECK(back.params().to_vector<float>() == m.params().to_vector<float>());
    // Byte-for-byte the same tensors as the original checkpoint.
    const SafetensorsCheckpoint orig = SafetensorsCheckpoint::open(kModels + family);
    for (const auto& [name, t] : back.hf_state()) {
      INFO(name);
      CHECK(orig.load(name).to_vector<float>() == t.to_vector<float>());
    }
  }
}

TEST_CASE("transformer rejects checkpoints that do not fit the config", "[cpu][model]") {
  Transformer m(TransformerConfig::from_file(kModels + "llama/config.json"), DType::f32);
  CHECK_THROWS_WITH(m.load(SafetensorsCheckpoint::open(kModels + "qwen2")),
                    Catch::Contains("lm_head.weight"));
  TransformerConfig wide = TransformerConfig::from_file(kModels + "qwen2/config.json");
  wide.intermediate_size = 64;
  Transformer w(wide, DType::f32);
  CHECK_THROWS_WITH(w.load(SafetensorsCheckpoint::open(kModels + "qwen2")),
                    Catch::Contains("mlp.gate_proj.weight") && Catch::Contains("(48, 32)") &&
                        Catch::Contains("(64, 32)"));
}

TEST_CASE("transformer packed sequences equal separate runs", "[cpu][model]") {
  Transformer m = Transformer::from_pretrained(kModels + "qwen3", DType::f64);
  const std::vector<std::int64_t> a = {5, 9, 13, 2, 40}, b = {7, 7, 1, 90, 3, 60, 11};
  std::vector<std::int64_t> packed = a, pos;
  packed.insert(packed.end(), b.begin(), b.end());
  for (std::size_t i = 0; i < a.size(); ++i) pos.push_back(static_cast<std::int64_t>(i));
  for (std::size_t i = 0; i < b.size(); ++i) pos.push_back(static_cast<std::int64_t>(i));
  const Tensor logits = m.forward({Tensor::from_vector<std::int64_t>({12}, packed),
                                   Tensor::from_vector<std::int64_t>({12}, pos),
                                   Tensor::from_vector<std::int32_t>({3}, {0, 5, 12})});
  const Tensor la = m.forward({Tensor::from_vector<std::int64_t>({1, 5}, a), {}, {}});
  const Tensor lb = m.forward({Tensor::from_vector<std::int64_t>({1, 7}, b), {}, {}});
  CHECK(test::compare(logits.slice(0, 5), la) == "");
  CHECK(test::compare(logits.slice(5, 12), lb) == "");
}

TEST_CASE("transformer backward matches finite differences", "[cpu][model][fd]") {
  for (const std::string family : {"qwen3", "gpt2"}) {
    INFO(family);
    Transformer m = Transformer::from_pretrained(kModels + family, DType::f64);
    const Tensor ids = Tensor::from_vector<std::int64_t>({1, 6}, {3, 17, 17, 80, 1, 44});
    const Tensor g = test::random_tensor({6, m.config().vocab_size}, DType::f64, 5);
    m.forward({ids, {}, {}});
    m.backward(g);
    const Tensor analytic = m.grads().clone();
    const std::string report = test::check_gradient(
        m.params(), analytic, [&] { return test::dot(g, m.forward({ids, {}, {}})); }, 1e-6, 200);
    CHECK(report == "");
  }
}

TEST_CASE("transformer saves shards with an index and a chosen dtype", "[cpu][model]") {
  const Transformer m = Transformer::from_pretrained(kModels + "llama", DType::f32);
  const std::string dir = (std::filesystem::temp_directory_path() / "hone_model_sharded").string();
  std::filesystem::remove_all(dir);
  m.save_pretrained(dir, DType::bf16, 20'000);  // ~43 KB of bf16 weights → several shards
  CHECK(std::filesystem::exists(dir + "/model.safetensors.index.json"));
  CHECK_FALSE(std::filesystem::exists(dir + "/model.safetensors"));
  CHECK(std::filesystem::exists(dir + "/model-00001-of-00003.safetensors"));
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(dir);
  CHECK(c.load("model.norm.weight").dtype() == DType::bf16);
  CHECK(TransformerConfig::from_file(dir + "/config.json").torch_dtype == "bfloat16");
  const Transformer back = Transformer::from_pretrained(dir, DType::f32);
  const auto orig = m.params().to_vector<float>(), loaded = back.params().to_vector<float>();
  REQUIRE(orig.size() == loaded.size());
  for (std::size_t i = 0; i < orig.size(); ++i)
    REQUIRE(loaded[i] == from_bf16(to_bf16(orig[i])));  // exactly the bf16 rounding
  // Default: the checkpoint's own dtype (float32 here).
  const std::string dir2 = dir + "_default";
  m.save_pretrained(dir2);
  CHECK(SafetensorsCheckpoint::open(dir2).load("model.norm.weight").dtype() == DType::f32);
}

TEST_CASE("a random model gives identical logits after save and load", "[cpu][model]") {
  TransformerConfig c = TransformerConfig::from_file(kModels + "llama/config.json");
  Transformer m(c, DType::f32);
  m.init_random(42);
  const Tensor ids = Tensor::from_vector<std::int64_t>({1, 8}, {1, 5, 9, 33, 2, 70, 70, 4});
  const Tensor before = m.forward({ids, {}, {}});
  const std::string dir = (std::filesystem::temp_directory_path() / "hone_model_init").string();
  m.save_pretrained(dir);
  Transformer back = Transformer::from_pretrained(dir, DType::f32);
  CHECK(back.forward({ids, {}, {}}).to_vector<float>() == before.to_vector<float>());
}

// The memory-saving paths of the model: the chunked loss (no N × V logits) and activation
// checkpointing give the results of the plain path; backward writes the gradients without
// clearing the slab first; the sliding window matches transformers.
#include <catch2/catch.hpp>
#include <cmath>

#include "model/transformer.h"
#include "ops/ops.h"
#include "support/tolerance.h"

using namespace hone;
using namespace hone::model;

namespace {

const std::string kModels = std::string(HONE_TEST_DATA_DIR) + "/models/";
const std::vector<std::string> kFamilies = {"llama", "mistral", "qwen2", "qwen3", "gpt2", "mistral_window"};

// Next-token targets of (B, T) ids, flattened; the last token of each row is ignored.
Tensor targets_of(const Tensor& ids) {
  const std::int64_t B = ids.size(0), T = ids.size(1);
  const auto v = ids.to_vector<std::int64_t>();
  std::vector<std::int64_t> t(static_cast<std::size_t>(B * T), -100);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i + 1 < T; ++i) t[b * T + i] = v[b * T + i + 1];
  return Tensor::from_vector<std::int64_t>({B * T}, t);
}

// A family's tiny checkpoint with its reference file, input ids and next-token targets.
struct Fixture {
  Transformer model;
  SafetensorsFile ref;
  Tensor ids, targets;
};
Fixture load_fixture(const std::string& family, DType dtype) {
  Fixture f{Transformer::from_pretrained(kModels + family, dtype),
            SafetensorsFile::open(kModels + family + "/reference.safetensors"), Tensor(), Tensor()};
  f.ids = f.ref.load("input_ids", DType::i64);
  f.targets = targets_of(f.ids);
  return f;
}

Tensor ops_scaled(const Tensor& t, double factor) {
  Tensor out = t.clone();
  ops::scale_(out, factor);
  return out;
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double scale = 0, diff = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    scale = std::max(scale, std::abs(y[i]));
    diff = std::max(diff, std::abs(x[i] - y[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

}  // namespace

TEST_CASE("the chunked loss equals the logits path, loss and gradients, for every family", "[cpu][model]") {
  for (const std::string& family : kFamilies) {
    INFO(family);
    Fixture f = load_fixture(family, DType::f64);
    Transformer& m = f.model;
    const Tensor &ids = f.ids, &targets = f.targets;
    const std::int64_t N = ids.numel();
    const double scale = 1.0 / static_cast<double>(ids.size(0) * (ids.size(1) - 1));
    // The plain path: all logits, cross-entropy, backward.
    const Tensor logits = m.forward({ids, {}, {}});
    const Tensor losses = Tensor::empty({N}, DType::f64), lse = Tensor::empty({N}, DType::f64);
    ops::cross_entropy_fwd(logits, targets, {}, losses, lse);
    double plain = 0;
    for (double l : losses.to_vector<double>()) plain += scale * l;
    const Tensor dlogits = Tensor::empty(logits.shape(), DType::f64);
    ops::cross_entropy_bwd(Tensor::full({N}, scale, DType::f64), logits, targets, lse, {}, dlogits);
    m.backward(dlogits);
    const Tensor plain_grads = m.grads().clone();
    CHECK(plain == Approx(f.ref.load("loss").item()).epsilon(1e-6));
    for (std::int64_t chunk : {std::int64_t{1}, std::int64_t{5}, N, 4 * N}) {
      INFO("chunk " << chunk);
      CHECK(m.loss({ids, {}, {}}, targets, scale, false, false, -100, chunk) == Approx(plain).epsilon(1e-13));
      CHECK(m.loss({ids, {}, {}}, targets, scale, true, false, -100, chunk) == Approx(plain).epsilon(1e-13));
      CHECK(max_rel_diff(m.grads(), plain_grads) < 1e-12);
    }
    // Accumulating twice doubles the gradients.
    m.loss({ids, {}, {}}, targets, scale, true, true, -100, 7);
    CHECK(max_rel_diff(m.grads(), ops_scaled(plain_grads, 2.0)) < 1e-12);
  }
}

TEST_CASE("backward writes every gradient whatever the slab held before", "[cpu][model]") {
  // The first op producing a gradient writes it instead of adding to a cleared slab: stale
  // values, even NaN, must leave no trace, on both the loss and the logits paths (including
  // GPT-2's tied embedding, written by the head and then added to by the lookup).
  for (const std::string& family : kFamilies) {
    INFO(family);
    Fixture f = load_fixture(family, DType::f32);
    Transformer& m = f.model;
    const Tensor &ids = f.ids, &targets = f.targets;
    const double loss = m.loss({ids, {}, {}}, targets, 0.05, true, false, -100, 5);
    const std::vector<float> clean = m.grads().to_vector<float>();
    m.grads().fill(NAN);
    CHECK(m.loss({ids, {}, {}}, targets, 0.05, true, false, -100, 5) == loss);
    CHECK(m.grads().to_vector<float>() == clean);
    // Accumulating adds onto what is there (to rounding: sums split over depth blocks and
    // rows add in a different order).
    m.loss({ids, {}, {}}, targets, 0.05, true, true, -100, 5);
    const Tensor first = Tensor::from_vector<float>(m.grads().shape(), clean);
    CHECK(max_rel_diff(m.grads(), ops_scaled(first, 2.0)) < 1e-6);
    const Tensor logits = m.forward({ids, {}, {}});
    const Tensor dlogits = Tensor::full(logits.shape(), 1e-3, DType::f32);
    m.backward(dlogits);
    const std::vector<float> via_logits = m.grads().to_vector<float>();
    m.grads().fill(NAN);
    m.forward({ids, {}, {}});
    m.backward(dlogits);
    CHECK(m.grads().to_vector<float>() == via_logits);
  }
}

TEST_CASE("activation checkpointing gives bitwise the same loss and gradients", "[cpu][model]") {
  for (const std::string& family : kFamilies) {
    INFO(family);
    Fixture f = load_fixture(family, DType::f32);
    Transformer& m = f.model;
    const Tensor &ids = f.ids, &targets = f.targets;
    const double plain = m.loss({ids, {}, {}}, targets, 0.05, true);
    const std::vector<float> plain_grads = m.grads().to_vector<float>();
    m.set_activation_checkpointing(true);
    CHECK(m.activation_checkpointing());
    CHECK(m.loss({ids, {}, {}}, targets, 0.05, true) == plain);
    CHECK(m.grads().to_vector<float>() == plain_grads);
    // The logits path checkpoints too: the same logits and gradients either way.
    const Tensor logits = m.forward({ids, {}, {}});
    m.backward(Tensor::full(logits.shape(), 1e-3, DType::f32));
    const std::vector<float> g_ckpt = m.grads().to_vector<float>();
    m.set_activation_checkpointing(false);
    const Tensor logits2 = m.forward({ids, {}, {}});
    m.backward(Tensor::full(logits.shape(), 1e-3, DType::f32));
    CHECK(logits.to_vector<float>() == logits2.to_vector<float>());
    CHECK(m.grads().to_vector<float>() == g_ckpt);
    CHECK(g_ckpt != plain_grads);  // a different upstream gradient than the loss's
  }
}

TEST_CASE("Mistral's sliding window matches transformers", "[cpu][model]") {
  Transformer m = Transformer::from_pretrained(kModels + "mistral_window", DType::f64);
  CHECK(m.config().sliding_window == 5);
  const SafetensorsFile ref = SafetensorsFile::open(kModels + "mistral_window/reference.safetensors");
  const Tensor ids = ref.load("input_ids", DType::i64);
  const Tensor logits = m.forward({ids, {}, {}});
  const Tensor expected = ref.load("logits", DType::f64).view(logits.shape());
  CHECK(max_rel_diff(logits, expected) < 1e-6);  // transformers' RoPE tables are f32
  CHECK(max_rel_diff(logits, ref.load("logits_without_window", DType::f64).view(logits.shape())) > 1e-2);
  const double scale = 1.0 / static_cast<double>(ids.size(0) * (ids.size(1) - 1));
  CHECK(m.loss({ids, {}, {}}, targets_of(ids), scale, true) == Approx(ref.load("loss").item()).epsilon(1e-6));
  for (const auto& [name, g] : m.hf_state(true, DType::f64)) {
    INFO(name);
    CHECK(max_rel_diff(g, ref.load("grad." + name, DType::f64)) < 1e-5);
  }
}

// hone::Model (include/hone/model.h): the public face of model::Transformer.
#include "hone/model.h"

#include <algorithm>
#include <memory>

#include "hone/error.h"
#include "model/transformer.h"

namespace hone {

Model Model::load(const std::string& dir, DType dtype, bool train_base, Device device) {
  return Model(std::make_shared<model::Transformer>(model::Transformer::from_pretrained(dir, dtype, train_base, device)));
}

Model Model::from_config(const std::string& config_json, std::uint64_t seed, double std, DType dtype, bool train_base,
                         Device device) {
  auto t = std::make_shared<model::Transformer>(
      model::TransformerConfig::from_json_text(config_json, "config.json"), dtype, train_base, device);
  t->init_random(seed, std);
  return Model(std::move(t));
}

void Model::save(const std::string& dir, std::optional<DType> storage) const {
  impl_->save_pretrained(dir, storage);
}

ModelInfo Model::info() const {
  const model::TransformerConfig& c = impl_->config();
  ModelInfo i;
  i.family = c.model_type;
  i.parameters = impl_->params().numel();
  i.vocab_size = c.vocab_size;
  i.hidden_size = c.hidden_size;
  i.layers = c.num_layers;
  i.max_positions = c.max_position_embeddings;
  return i;
}

DType Model::dtype() const { return impl_->dtype(); }
Device Model::device() const { return impl_->device(); }

std::vector<float> Model::next_token_logits(const std::vector<std::int32_t>& ids) {
  HONE_CHECK(!ids.empty(), "next_token_logits", "the sequence is empty");
  const auto n = static_cast<std::int64_t>(ids.size());
  const std::int64_t max_pos = impl_->config().max_position_embeddings;
  HONE_CHECK(max_pos <= 0 || n <= max_pos, "next_token_logits", "sequence of ", n,
             " tokens is longer than the model's max_position_embeddings ", max_pos);
  model::Batch b;
  b.ids = Tensor::empty({1, n}, DType::i64);
  for (std::int64_t i = 0; i < n; ++i) b.ids.data<std::int64_t>()[i] = ids[static_cast<std::size_t>(i)];
  const Tensor logits = impl_->forward(b);
  const std::int64_t V = logits.size(1);
  const Tensor last = logits.slice(n - 1, n).host().to(DType::f32);
  return std::vector<float>(last.data<float>(), last.data<float>() + V);
}

std::vector<std::int32_t> Model::greedy(const std::vector<std::int32_t>& prompt, std::int64_t max_new_tokens,
                                        const std::vector<std::int32_t>& stop_ids) {
  std::vector<std::int32_t> ids = prompt, out;
  const std::int64_t max_pos = impl_->config().max_position_embeddings;
  for (std::int64_t i = 0; i < max_new_tokens; ++i) {
    if (max_pos > 0 && static_cast<std::int64_t>(ids.size()) >= max_pos)
      ids.erase(ids.begin());  // keep the newest max_pos - 1 tokens as context
    const std::vector<float> logits = next_token_logits(ids);
    const auto next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    ids.push_back(next);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
  }
  return out;
}

}  // namespace hone

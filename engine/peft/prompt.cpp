// Prompt tuning's embeddings and PEFT's three ways of initialising them.
#include "peft/prompt.h"

#include <cmath>

#include "hone/error.h"
#include "hone/random.h"
#include "hone/tokenizer.h"
#include "ops/ops.h"

namespace hone::peft {

namespace {
constexpr const char* kOp = "prompt-tuning";
}

PromptAdapter::PromptAdapter(const model::Transformer& base, const PromptTuningConfig& config) : config_(config) {
  const std::int64_t nv = config.num_virtual_tokens, D = base.config().hidden_size;
  HONE_CHECK(nv >= 1, kOp, "'num_virtual_tokens' is ", nv, "; it must be at least 1");
  HONE_CHECK(nv < base.config().max_position_embeddings, kOp, "'num_virtual_tokens' ", nv,
             " leaves no position for real tokens (max_position_embeddings ", base.config().max_position_embeddings, ")");
  params_ = Tensor::zeros({nv * D}, base.dtype(), base.device());
  grads_ = Tensor::zeros({nv * D}, base.grad_dtype(), base.device());
  named_.push_back({"prompt_embeddings", params_.view({nv, D}), grads_.view({nv, D})});
  if (grads_.dtype() != params_.dtype()) {
    std::vector<std::int64_t> rows(static_cast<std::size_t>(nv));
    for (std::int64_t i = 0; i < nv; ++i) rows[static_cast<std::size_t>(i)] = i;
    rows_ = Tensor::from_vector<std::int64_t>({nv}, rows).to(base.device());
  }
}

void PromptAdapter::init(const model::Transformer& base, const Tokenizer* tokenizer) {
  const std::int64_t nv = config_.num_virtual_tokens, V = base.config().vocab_size;
  const Tensor& embed = base.named_params().front().value;  // "embed" (V, D) comes first in the slab
  const Tensor& out = named_[0].value;
  std::vector<std::int64_t> ids;
  switch (config_.init) {
    case PromptInit::random: {  // standard normal, as torch's nn.Embedding starts
      const Tensor u = Tensor::empty({out.numel() * 2}, DType::f64);
      ops::uniform_(u, config_.seed, 0);
      const std::vector<double> w = u.to_vector<double>();
      std::vector<double> v(static_cast<std::size_t>(out.numel()));
      for (std::size_t i = 0; i < v.size(); ++i)  // Box–Muller
        v[i] = std::sqrt(-2.0 * std::log(1.0 - w[2 * i])) * std::cos(2 * M_PI * w[2 * i + 1]);
      out.copy_from(Tensor::from_vector<double>(out.shape(), v).to(out.dtype()));
      return;
    }
    case PromptInit::text: {
      HONE_CHECK(tokenizer != nullptr, kOp, "prompt_tuning_init TEXT needs the model's tokenizer");
      HONE_CHECK(!config_.init_text.empty(), kOp, "prompt_tuning_init TEXT needs 'prompt_tuning_init_text'");
      // PEFT tokenizes with the tokenizer's special tokens, then repeats the ids to fill (or cuts).
      const std::vector<std::int32_t> text = tokenizer->encode(config_.init_text);
      HONE_CHECK(!text.empty(), kOp, "'prompt_tuning_init_text' \"", config_.init_text, "\" has no tokens");
      for (std::int64_t i = 0; i < nv; ++i) ids.push_back(text[static_cast<std::size_t>(i) % text.size()]);
      break;
    }
    case PromptInit::sample_vocab:
      for (std::int64_t i = 0; i < nv; ++i) {
        const Philox4 r = philox_block(config_.seed, static_cast<std::uint64_t>(i));
        ids.push_back(static_cast<std::int64_t>(((static_cast<std::uint64_t>(r.x[0]) << 32) | r.x[1]) %
                                                static_cast<std::uint64_t>(V)));
      }
      break;
  }
  for (std::int64_t id : ids)
    HONE_CHECK(id >= 0 && id < V, kOp, "token id ", id, " of the initial prompt is outside the vocabulary of ", V);
  ops::embedding_fwd(Tensor::from_vector<std::int64_t>({nv}, ids).to(embed.device()), embed, out);
}

void PromptAdapter::prompt_bwd(const Tensor& dprompt) {
  const Tensor& grad = named_[0].grad;
  if (dprompt.dtype() == grad.dtype()) {
    ops::add_(grad, dprompt);
  } else {
    // bf16 rows into the f32 gradient on the device: row i of dprompt adds to row i (the add_
    // op takes one dtype; the embedding gradient takes bf16 rows into an f32 table, exactly).
    ops::embedding_bwd(rows_, dprompt, grad);
  }
}

}  // namespace hone::peft

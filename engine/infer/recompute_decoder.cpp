// The recompute decoder: every call runs Transformer::forward over all tokens of every live
// sequence (packed end to end) and keeps the last position's logits. Quadratic in the length,
// it is the reference the KV-cache decoder must reproduce.
#include <algorithm>

#include "hone/error.h"
#include "infer/decoder.h"

namespace hone::infer {

namespace {

constexpr const char* kOp = "generate";

class RecomputeDecoder final : public Decoder {
 public:
  explicit RecomputeDecoder(model::Transformer& m) : m_(m) {}

  Tensor prefill(const std::vector<std::vector<std::int32_t>>& prompts) override {
    HONE_CHECK(!prompts.empty(), kOp, "no prompts");
    for (std::size_t i = 0; i < prompts.size(); ++i) HONE_CHECK(!prompts[i].empty(), kOp, "prompt ", i, " is empty");
    seqs_ = prompts;
    return run();
  }

  Tensor step(const std::vector<std::int32_t>& next) override {
    HONE_CHECK(next.size() == seqs_.size(), kOp, next.size(), " tokens for ", seqs_.size(), " live sequences");
    for (std::size_t i = 0; i < next.size(); ++i) seqs_[i].push_back(next[i]);
    return run();
  }

  void retain(const std::vector<std::int64_t>& rows) override {
    std::vector<std::vector<std::int32_t>> kept;
    for (std::int64_t r : rows) {
      HONE_CHECK(r >= 0 && r < static_cast<std::int64_t>(seqs_.size()), kOp, "row ", r, " of ", seqs_.size());
      kept.push_back(std::move(seqs_[static_cast<std::size_t>(r)]));
    }
    seqs_ = std::move(kept);
  }

  std::vector<std::int64_t> lengths() const override {
    std::vector<std::int64_t> out;
    for (const auto& s : seqs_) out.push_back(static_cast<std::int64_t>(s.size()));
    return out;
  }

 private:
  // Logits of the last token of every live sequence, from one forward over all of them.
  Tensor run() {
    std::vector<std::int64_t> ids, pos;
    std::vector<std::int32_t> cu = {0};
    for (const auto& s : seqs_) {
      for (std::size_t i = 0; i < s.size(); ++i) {
        ids.push_back(s[i]);
        pos.push_back(static_cast<std::int64_t>(i));
      }
      cu.push_back(static_cast<std::int32_t>(ids.size()));
    }
    const auto N = static_cast<std::int64_t>(ids.size());
    const auto S = static_cast<std::int64_t>(seqs_.size());
    model::Batch b;
    b.ids = Tensor::from_vector<std::int64_t>({N}, ids);
    b.positions = Tensor::from_vector<std::int64_t>({N}, pos);
    b.cu_seqlens = Tensor::from_vector<std::int32_t>({S + 1}, cu);
    const Tensor logits = m_.forward(b);
    Tensor last = Tensor::empty({S, logits.size(1)}, logits.dtype(), logits.device());
    for (std::int64_t s = 0; s < S; ++s) last.slice(s, s + 1).copy_from(logits.slice(cu[s + 1] - 1, cu[s + 1]));
    return last;
  }

  model::Transformer& m_;
  std::vector<std::vector<std::int32_t>> seqs_;
};

}  // namespace

std::unique_ptr<Decoder> make_recompute_decoder(model::Transformer& model) {
  return std::make_unique<RecomputeDecoder>(model);
}

std::int64_t max_sequence_tokens(const model::Transformer& model) {
  const model::Adapter* a = model.adapter();
  const Tensor prompt = a ? a->prompt() : Tensor();
  const std::int64_t nv = prompt.defined() ? prompt.size(0) : 0;
  return std::max<std::int64_t>(0, model.config().max_position_embeddings - nv);
}

}  // namespace hone::infer

// The KV-cache decoder. Prefill runs the prompts through the same ops as Transformer::forward
// (the training attention over packed sequences) and keeps every layer's keys (after q/k-norm
// and RoPE) and values; each step then runs one token per sequence and attends to the cache
// (ops::attention_decode). The per-family math follows engine/model/transformer.cpp op for op —
// RMSNorm/LayerNorm, q/k/v biases, Qwen3's per-head norms, RoPE or GPT-2's learned positions,
// SwiGLU/GELU, tied heads — and an attached adapter acts as it does there: LoRA through
// Adapter::linear_fwd on every linear layer, prompt tuning as virtual tokens at positions
// 0…Nv−1 before each sequence.
//
// On a CUDA model the caches and activations are bf16 on the device and the norm/attention
// statistics f32 (Transformer::stat_dtype()); each call uploads one small i32 tensor (ids,
// positions and sequence offsets or cache lengths) and returns the logits on the device.
#include <algorithm>
#include <functional>
#include <map>
#include <tuple>
#include <utility>

#include "hone/error.h"
#include "infer/decoder.h"
#include "ops/ops.h"

namespace hone::infer {

namespace {

constexpr const char* kOp = "generate";
const ops::MatmulArgs kLinear{false, true};  // y = x · Wᵀ, W stored (out, in)
using model::Proj;

class CachedDecoder final : public Decoder {
 public:
  explicit CachedDecoder(model::Transformer& m)
      : m_(m), c_(m.config()), dt_(m.dtype()), st_(m.stat_dtype()), dev_(m.device()) {
    for (const model::Param& p : m.named_params()) params_[p.name] = p.value;
  }

  Tensor prefill(const std::vector<std::vector<std::int32_t>>& prompts) override {
    HONE_CHECK(!prompts.empty(), kOp, "no prompts");
    adapter_ = m_.adapter();
    if (adapter_) adapter_->set_training(false, 0);  // no LoRA dropout while generating
    prompt_ = adapter_ ? adapter_->prompt() : Tensor();
    nv_ = prompt_.defined() ? prompt_.size(0) : 0;
    const std::int64_t D = c_.hidden_size;
    if (prompt_.defined())
      HONE_CHECK(prompt_.ndim() == 2 && prompt_.size(1) == D && prompt_.dtype() == dt_ && prompt_.device() == dev_,
                 kOp, "the adapter's prompt is ", prompt_.str(), "; expected (Nv, ", D, ") ", dtype_name(dt_), " on ",
                 dev_.str());
    const auto B = static_cast<std::int64_t>(prompts.size());
    // Host indices, uploaded at once: ids (N) | positions (M) | cu_seqlens (B + 1) | each
    // sequence's last row (B). i32 throughout (the ops take i32 or i64 indices).
    std::vector<std::int32_t> ids, pos, cu = {0}, last_rows;
    len_.clear();
    for (std::int64_t s = 0; s < B; ++s) {
      const auto& p = prompts[static_cast<std::size_t>(s)];
      HONE_CHECK(!p.empty(), kOp, "prompt ", s, " is empty");
      const std::int64_t run = nv_ + static_cast<std::int64_t>(p.size());
      check_length(s, run);
      for (std::int64_t i = 0; i < run; ++i) pos.push_back(static_cast<std::int32_t>(i));
      for (std::int32_t id : p) {
        HONE_CHECK(id >= 0 && id < c_.vocab_size, kOp, "token id ", id, " of prompt ", s, " is outside [0, ",
                   c_.vocab_size, ")");
        ids.push_back(id);
      }
      cu.push_back(static_cast<std::int32_t>(cu.back() + run));
      last_rows.push_back(cu.back() - 1);
      len_.push_back(run);
    }
    const auto N = static_cast<std::int64_t>(ids.size()), M = static_cast<std::int64_t>(pos.size());
    const Tensor index = upload({ids, pos, cu, last_rows});
    const Tensor token_ids = index.slice(0, N), positions = index.slice(N, N + M);
    const Tensor cu_seqlens = index.slice(N + M, N + M + B + 1);
    const Tensor last_index = index.slice(N + M + B + 1, N + M + 2 * B + 1);
    const std::int64_t longest = *std::max_element(len_.begin(), len_.end());
    allocate(B, longest);

    // Embeddings, with the virtual tokens spliced in before each sequence.
    Tensor x = act({M, D});
    Tensor real = nv_ > 0 ? act({N, D}) : x;
    ops::embedding_fwd(token_ids, param("embed"), real);
    if (nv_ > 0) {
      std::int64_t at_real = 0;
      for (std::int64_t s = 0; s < B; ++s) {
        const std::int64_t at = cu[s], n = len_[s] - nv_;
        x.slice(at, at + nv_).copy_from(prompt_);
        x.slice(at + nv_, at + nv_ + n).copy_from(real.slice(at_real, at_real + n));
        at_real += n;
      }
    }
    ops::AttentionArgs attn{0.0, true, cu_seqlens, c_.sliding_window};
    attn.max_seqlen = longest;  // known here: spares the op a look at cu_seqlens on the host
    x = blocks(x, positions, nullptr,
               [&](std::int64_t l, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) {
                 ops::attention_fwd(q, k, v, attn, o, stat({c_.num_heads, M}));
                 for (std::int64_t s = 0; s < B; ++s) {
                   k_[l].select(s).slice(0, len_[s]).copy_from(k.slice(cu[s], cu[s + 1]));
                   v_[l].select(s).slice(0, len_[s]).copy_from(v.slice(cu[s], cu[s + 1]));
                 }
               });
    // Each sequence's last hidden state: a row gather, which is what the embedding op does.
    Tensor last = act({B, D});
    ops::embedding_fwd(last_index, x, last);
    return head(last);
  }

  Tensor step(const std::vector<std::int32_t>& next) override {
    const auto B = static_cast<std::int64_t>(len_.size());
    HONE_CHECK(static_cast<std::int64_t>(next.size()) == B, kOp, next.size(), " tokens for ", B, " live sequences");
    HONE_CHECK(B > 0, kOp, "step without live sequences (prefill first)");
    // Uploaded at once: ids (B) | positions (B) | cache lengths after this token (B).
    std::vector<std::int32_t> ids, pos, seen;
    std::int64_t longest = 0;
    for (std::int64_t s = 0; s < B; ++s) {
      const std::int32_t id = next[static_cast<std::size_t>(s)];
      HONE_CHECK(id >= 0 && id < c_.vocab_size, kOp, "token id ", id, " of sequence ", s, " is outside [0, ",
                 c_.vocab_size, ")");
      check_length(s, len_[s] + 1);
      ids.push_back(id);
      pos.push_back(static_cast<std::int32_t>(len_[s]));
      seen.push_back(static_cast<std::int32_t>(len_[s] + 1));  // the new token's key and value are read too
      longest = std::max(longest, len_[s] + 1);
    }
    grow(longest);
    const Tensor index = upload({ids, pos, seen});
    const Tensor positions = index.slice(B, 2 * B), cache_seqlens = index.slice(2 * B, 3 * B);
    Tensor x = act({B, c_.hidden_size});
    ops::embedding_fwd(index.slice(0, B), param("embed"), x);
    const ops::AttentionArgs attn{0.0, true, Tensor(), c_.sliding_window};
    const Shape one_token = {B, 1, c_.num_heads, c_.head_dim};
    // One sequence: its cache row is contiguous, so the key and value projections (and RoPE,
    // in place) write straight into the cache. Several: each row is copied in.
    KvPlace place;
    if (B == 1)
      place = [&](std::int64_t l) {
        return std::make_pair(k_[l].select(0).slice(len_[0], len_[0] + 1), v_[l].select(0).slice(len_[0], len_[0] + 1));
      };
    x = blocks(x, positions, place,
               [&](std::int64_t l, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) {
                 if (B > 1)
                   for (std::int64_t s = 0; s < B; ++s) {
                     k_[l].select(s).slice(len_[s], len_[s] + 1).copy_from(k.slice(s, s + 1));
                     v_[l].select(s).slice(len_[s], len_[s] + 1).copy_from(v.slice(s, s + 1));
                   }
                 // The cache keeps rows of retired sequences past B (retain moves rows down only).
                 ops::attention_decode(q.view(one_token), k_[l].slice(0, B), v_[l].slice(0, B), cache_seqlens, attn,
                                       o.view(one_token));
               });
    for (auto& n : len_) ++n;
    return head(x);
  }

  void retain(const std::vector<std::int64_t>& rows) override {
    std::vector<std::int64_t> kept;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const std::int64_t r = rows[i];
      HONE_CHECK(r >= 0 && r < static_cast<std::int64_t>(len_.size()) && (i == 0 || r > rows[i - 1]), kOp,
                 "rows to keep must increase within [0, ", len_.size(), "); got ", r);
      const auto to = static_cast<std::int64_t>(i);
      if (r != to)  // rows only move down, onto rows already dropped or moved
        for (std::size_t l = 0; l < k_.size(); ++l) {
          k_[l].select(to).slice(0, len_[r]).copy_from(k_[l].select(r).slice(0, len_[r]));
          v_[l].select(to).slice(0, len_[r]).copy_from(v_[l].select(r).slice(0, len_[r]));
        }
      kept.push_back(len_[r]);
    }
    len_ = std::move(kept);
  }

  std::vector<std::int64_t> lengths() const override {
    std::vector<std::int64_t> out(len_);
    for (auto& n : out) n -= nv_;
    return out;
  }

 private:
  using Attend = std::function<void(std::int64_t layer, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& o)>;
  // Where a layer's keys and values (M, KV, hd) are written; empty: fresh tensors.
  using KvPlace = std::function<std::pair<Tensor, Tensor>(std::int64_t layer)>;

  Tensor act(const Shape& s) const { return Tensor::empty(s, dt_, dev_); }
  Tensor stat(const Shape& s) const { return Tensor::empty(s, st_, dev_); }
  // The parts concatenated into one i32 tensor on the model's device (one upload per call).
  Tensor upload(const std::vector<std::vector<std::int32_t>>& parts) const {
    std::vector<std::int32_t> all;
    for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
    const Tensor host = Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(all.size())}, all);
    return dev_.is_cpu() ? host : host.to(dev_);
  }
  const Tensor& param(const std::string& name) const {
    const auto it = params_.find(name);
    HONE_CHECK(it != params_.end(), kOp, "the model has no parameter '", name, "'");
    return it->second;
  }
  bool gpt2() const { return c_.family == model::Family::gpt2; }

  void check_length(std::int64_t s, std::int64_t run) const {
    HONE_CHECK(run <= c_.max_position_embeddings, kOp, "sequence ", s, " would hold ", run,
               " tokens", nv_ ? cat(" (", nv_, " virtual)") : std::string(), ", more than the model's ",
               "max_position_embeddings ", c_.max_position_embeddings);
  }

  // Caches for B sequences of up to `longest` tokens, with room to grow.
  void allocate(std::int64_t B, std::int64_t longest) {
    cap_ = std::min(c_.max_position_embeddings, std::max<std::int64_t>(longest + 64, longest * 5 / 4));
    k_.assign(static_cast<std::size_t>(c_.num_layers), Tensor());
    v_.assign(static_cast<std::size_t>(c_.num_layers), Tensor());
    for (std::size_t l = 0; l < k_.size(); ++l) {
      k_[l] = act({B, cap_, c_.num_kv_heads, c_.head_dim});
      v_[l] = act({B, cap_, c_.num_kv_heads, c_.head_dim});
    }
  }
  // Doubles the capacity (up to max_position_embeddings) when a sequence needs more.
  void grow(std::int64_t need) {
    if (need <= cap_) return;
    const std::int64_t cap = std::min(c_.max_position_embeddings, std::max(need, 2 * cap_));
    const std::int64_t B = k_.empty() ? 0 : k_[0].size(0);
    for (std::size_t l = 0; l < k_.size(); ++l)
      for (Tensor* t : {&k_[l], &v_[l]}) {
        Tensor bigger = act({B, cap, c_.num_kv_heads, c_.head_dim});
        for (std::size_t s = 0; s < len_.size(); ++s) {
          const auto b = static_cast<std::int64_t>(s);
          bigger.select(b).slice(0, len_[s]).copy_from(t->select(b).slice(0, len_[s]));
        }
        *t = bigger;
      }
    cap_ = cap;
  }

  // outs[j] = x · W_jᵀ + b_j, then the adapter's term (Transformer::linear_fwd).
  void linear(std::int64_t l, const std::vector<Proj>& projs, const Tensor& x, const std::vector<Tensor>& outs) {
    for (std::size_t j = 0; j < projs.size(); ++j) {
      ops::matmul(x, m_.weight(l, projs[j]), outs[j], kLinear);
      const Tensor b = m_.bias(l, projs[j]);
      if (b.defined()) ops::bias_add_(outs[j], b);
    }
    if (adapter_) adapter_->linear_fwd(l, projs, x, outs);
  }

  Tensor norm(const Tensor& in, const std::string& w) const {
    const std::int64_t rows = in.numel() / in.size(-1);
    Tensor out = act(in.shape()), rstd = stat({rows});
    if (gpt2())
      ops::layernorm_fwd(in, param(w), param(w + "_b"), c_.norm_eps, out, stat({rows}), rstd);
    else
      ops::rmsnorm_fwd(in, param(w), c_.norm_eps, out, rstd);
    return out;
  }

  // Every block over x (M, D) at `positions` (M); attend(l, q, k, v, o) fills o from the
  // layer's q (M, H, hd), k and v (M, KV, hd) and updates the cache; k and v are where
  // place(l) puts them when place is set.
  Tensor blocks(Tensor x, const Tensor& positions, const KvPlace& place, const Attend& attend) {
    const std::int64_t M = x.size(0), D = c_.hidden_size, F = c_.intermediate_size;
    const std::int64_t H = c_.num_heads, KV = c_.num_kv_heads, hd = c_.head_dim;
    if (gpt2()) {
      Tensor pe = act({M, D});
      ops::embedding_fwd(positions, param("pos_embed"), pe);
      ops::add_(x, pe);
    }
    for (std::int64_t l = 0; l < c_.num_layers; ++l) {
      const std::string p = "layers." + std::to_string(l) + ".";
      const Tensor h1 = norm(x, p + "norm1");
      Tensor q = act({M, H, hd}), k, v;
      if (place) {
        std::tie(k, v) = place(l);
      } else {
        k = act({M, KV, hd});
        v = act({M, KV, hd});
      }
      // Qwen3 normalises each head's hd values before RoPE: project into scratch, norm into q, k.
      const Tensor q_proj = c_.qk_norm ? act({M, H, hd}) : q, k_proj = c_.qk_norm ? act({M, KV, hd}) : k;
      linear(l, {Proj::q, Proj::k, Proj::v}, h1,
             {q_proj.view({M, H * hd}), k_proj.view({M, KV * hd}), v.view({M, KV * hd})});
      if (c_.qk_norm) {
        ops::rmsnorm_fwd(q_proj.view({M * H, hd}), param(p + "q_norm"), c_.norm_eps, q.view({M * H, hd}),
                         stat({M * H}));
        ops::rmsnorm_fwd(k_proj.view({M * KV, hd}), param(p + "k_norm"), c_.norm_eps, k.view({M * KV, hd}),
                         stat({M * KV}));
      }
      if (!gpt2()) {
        ops::rope_fwd(q, positions, c_.rope, q);
        ops::rope_fwd(k, positions, c_.rope, k);
      }
      Tensor o = act({M, H, hd});
      attend(l, q, k, v, o);
      // Residuals: the forward's x.clone() += t as t += x (the same sums: addition commutes),
      // which spares a copy of the hidden states per residual.
      const Tensor x1 = act({M, D});
      linear(l, {Proj::o}, o.view({M, H * hd}), {x1});
      ops::add_(x1, x);
      const Tensor h2 = norm(x1, p + "norm2");
      Tensor u = act({M, F}), s = act({M, F});
      if (gpt2()) {
        linear(l, {Proj::up}, h2, {u});
        ops::gelu_fwd(u, s);
      } else {
        Tensor g = act({M, F});
        linear(l, {Proj::gate, Proj::up}, h2, {g, u});
        ops::swiglu_fwd(g, u, s);
      }
      x = act({M, D});
      linear(l, {Proj::down}, s, {x});
      ops::add_(x, x1);
    }
    return x;
  }

  // Logits (R, V) of final hidden states h (R, D).
  Tensor head(const Tensor& h) const {
    const Tensor hn = norm(h, "final_norm");
    Tensor logits = act({h.size(0), c_.vocab_size});
    ops::matmul(hn, param(c_.tie_word_embeddings ? "embed" : "lm_head"), logits, kLinear);
    return logits;
  }

  model::Transformer& m_;
  const model::TransformerConfig& c_;
  DType dt_, st_;  // activations and caches; norm and attention statistics
  Device dev_;
  std::map<std::string, Tensor> params_;
  model::Adapter* adapter_ = nullptr;  // as attached at prefill
  Tensor prompt_;                      // the adapter's virtual tokens (Nv, D), or undefined
  std::int64_t nv_ = 0;
  std::vector<Tensor> k_, v_;          // per layer (B, cap, KV, hd)
  std::int64_t cap_ = 0;
  std::vector<std::int64_t> len_;      // tokens cached per live sequence, virtual ones included
};

}  // namespace

std::unique_ptr<Decoder> make_cached_decoder(model::Transformer& model) {
  return std::make_unique<CachedDecoder>(model);
}

}  // namespace hone::infer

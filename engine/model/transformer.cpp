// Transformer forward and backward, op by op, for the Llama-style and GPT-2 families. Every
// linear layer goes through linear_fwd/linear_bwd, where an adapter (LoRA) adds its term and a
// frozen base skips its weight gradients; a prompt adapter's virtual tokens are spliced in
// before each sequence.
#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "hone/random.h"
#include "ops/ops.h"

namespace hone::model {

namespace {
constexpr const char* kOp = "model";
const ops::MatmulArgs kLinear{false, true};  // y = x · Wᵀ, W stored (out, in)
bool is_gpt2(const TransformerConfig& c) { return c.family == Family::gpt2; }
}  // namespace

// Saved activations of one layer (N tokens).
struct Transformer::Layer {
  Tensor x, h1, mean1, rstd1, q_raw, k_raw, rstd_q, rstd_k, q, k, v, o, lse, x1, h2, mean2, rstd2, g, u, s;
  void keep_input_only() { *this = Layer{x, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}}; }
};
struct Transformer::Acts {
  Tensor ids, positions, cu_seqlens;  // as run: with virtual tokens when there is a prompt
  std::int64_t max_seqlen = 0;        // the longest sequence run (bounds the attention grid)
  std::vector<Layer> layers;
  Tensor x_final, h_final, mean_final, rstd_final;
  // Prompt tuning: Nv virtual tokens before each non-empty sequence s, whose real tokens
  // [cu[s], cu[s + 1]) sit at rows [cu_run[s] + Nv, cu_run[s + 1]) of the run.
  std::int64_t n_virtual = 0;
  std::vector<std::int64_t> cu, cu_run;
  Tensor real_ids, h_real;  // the real tokens' ids (N) and final hidden states (N, D)
};
void Transformer::ActsDeleter::operator()(Acts* a) const { delete a; }

Transformer::Transformer(TransformerConfig config, DType dtype, bool train_base, Device device)
    : config_(std::move(config)), dtype_(dtype), device_(device) {
  if (device.is_cpu())
    HONE_CHECK(dtype == DType::f32 || dtype == DType::f64, kOp, "parameters must be f32 or f64 on the CPU, got ",
               dtype_name(dtype));
  else
    HONE_CHECK(dtype == DType::bf16, kOp, "parameters must be bf16 on ", device.str(), ", got ", dtype_name(dtype));
  // Refused here rather than at the first forward: the attention kernels' head dims.
  const std::int64_t hd = config_.head_dim;
  HONE_CHECK(device.is_cpu() || hd == 32 || hd == 64 || hd == 96 || hd == 128, kOp, "this ",
             family_name(config_.family), " model has head dim ", hd, ", which ", device.str(),
             " does not run: the attention kernels take head dims 32, 64, 96 or 128 (run this model on the CPU)");
  build_views(train_base);
}

void Transformer::build_views(bool train_base) {
  const TransformerConfig& c = config_;
  const std::int64_t D = c.hidden_size, F = c.intermediate_size, hd = c.head_dim;
  std::vector<std::pair<std::string, Shape>> layout;
  auto add = [&](const std::string& name, Shape s) { layout.emplace_back(name, std::move(s)); };
  add("embed", {c.vocab_size, D});
  if (is_gpt2(c)) add("pos_embed", {c.max_position_embeddings, D});
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "norm1", {D});
    if (is_gpt2(c)) add(p + "norm1_b", {D});
    add(p + "wq", {c.q_dim(), D});
    add(p + "wk", {c.kv_dim(), D});
    add(p + "wv", {c.kv_dim(), D});
    if (c.attention_bias) {
      add(p + "bq", {c.q_dim()});
      add(p + "bk", {c.kv_dim()});
      add(p + "bv", {c.kv_dim()});
    }
    if (c.qk_norm) {
      add(p + "q_norm", {hd});
      add(p + "k_norm", {hd});
    }
    add(p + "wo", {D, c.q_dim()});
    if (c.o_bias) add(p + "bo", {D});
    add(p + "norm2", {D});
    if (is_gpt2(c)) add(p + "norm2_b", {D});
    if (!is_gpt2(c)) add(p + "wg", {F, D});
    add(p + "wu", {F, D});  // GPT-2: c_fc
    add(p + "wd", {D, F});  // GPT-2: c_proj of the MLP
    if (c.mlp_bias) {
      if (!is_gpt2(c)) add(p + "bg", {F});
      add(p + "bu", {F});
      add(p + "bd", {D});
    }
  }
  add("final_norm", {D});
  if (is_gpt2(c)) add("final_norm_b", {D});
  if (!c.tie_word_embeddings) add("lm_head", {c.vocab_size, D});

  std::int64_t total = 0;
  for (const auto& [name, s] : layout) total += shape_numel(s);
  params_ = Tensor::zeros({total}, dtype_, device_);
  named_.clear();
  std::int64_t at = 0;
  for (const auto& [name, s] : layout) {
    const std::int64_t n = shape_numel(s);
    named_.push_back({name, params_.slice(at, at + n).view(s), {}});
    at += n;
  }
  set_train_base(train_base);
}

void Transformer::set_train_base(bool train) {
  if (train == train_base()) return;
  HONE_CHECK(!(train && adapter_), kOp, "the base cannot be trained while an adapter is attached");
  grads_ = train ? Tensor::zeros(params_.shape(), grad_dtype(), device_) : Tensor();
  std::int64_t at = 0;
  for (Param& p : named_) {
    const std::int64_t n = p.value.numel();
    p.grad = train ? grads_.slice(at, at + n).view(p.value.shape()) : Tensor();
    at += n;
  }
}

void Transformer::set_adapter(std::shared_ptr<Adapter> adapter) {
  HONE_CHECK(!adapter || !train_base(), kOp, "freeze the base (set_train_base(false)) before attaching an adapter");
  adapter_ = std::move(adapter);
  acts_.reset();  // a backward must follow a forward with the same adapter
}

const Tensor& Transformer::trainable_params() const {
  if (adapter_) return adapter_->params();
  HONE_CHECK(train_base(), kOp, "nothing to train: the base is frozen and no adapter is attached");
  return params_;
}
const Tensor& Transformer::trainable_grads() const {
  if (adapter_) return adapter_->grads();
  HONE_CHECK(train_base(), kOp, "nothing to train: the base is frozen and no adapter is attached");
  return grads_;
}
const std::vector<Param>& Transformer::trainable_named() const {
  if (adapter_) return adapter_->named_params();
  HONE_CHECK(train_base(), kOp, "nothing to train: the base is frozen and no adapter is attached");
  return named_;
}

namespace {
// Internal parameter names of a projection's weight and bias.
const char* weight_name(Proj p) {
  switch (p) {
    case Proj::q: return "wq";
    case Proj::k: return "wk";
    case Proj::v: return "wv";
    case Proj::o: return "wo";
    case Proj::gate: return "wg";
    case Proj::up: return "wu";
    case Proj::down: return "wd";
  }
  return "";
}
const char* bias_name(Proj p) {
  switch (p) {
    case Proj::q: return "bq";
    case Proj::k: return "bk";
    case Proj::v: return "bv";
    case Proj::o: return "bo";
    case Proj::gate: return "bg";
    case Proj::up: return "bu";
    case Proj::down: return "bd";
  }
  return "";
}
bool has_bias(const TransformerConfig& c, Proj p) {
  switch (p) {
    case Proj::q:
    case Proj::k:
    case Proj::v: return c.attention_bias;
    case Proj::o: return c.o_bias;
    default: return c.mlp_bias;
  }
}
std::string layer_prefix(std::int64_t l) { return "layers." + std::to_string(l) + "."; }
}  // namespace

const Tensor& Transformer::weight(std::int64_t layer, Proj proj) const {
  HONE_CHECK(layer >= 0 && layer < config_.num_layers, kOp, "layer ", layer, " of a model with ", config_.num_layers);
  HONE_CHECK(!(is_gpt2(config_) && proj == Proj::gate), kOp, "GPT-2 has no gate projection");
  return param(layer_prefix(layer) + weight_name(proj));
}
Tensor Transformer::bias(std::int64_t layer, Proj proj) const {
  if (!has_bias(config_, proj)) return {};
  return param(layer_prefix(layer) + bias_name(proj));
}

// outs[j] = x · W_jᵀ + b_j, then the adapter's term.
void Transformer::linear_fwd(std::int64_t layer, const std::vector<Proj>& projs, const Tensor& x,
                             const std::vector<Tensor>& outs) {
  for (std::size_t j = 0; j < projs.size(); ++j) {
    ops::matmul(x, weight(layer, projs[j]), outs[j], kLinear);
    if (has_bias(config_, projs[j])) ops::bias_add_(outs[j], bias(layer, projs[j]));
  }
  if (adapter_) adapter_->linear_fwd(layer, projs, x, outs);
}

// din += Σ_j dout_j · W_j (din = with din_fresh); with a trainable base dW_j = or += dout_jᵀ · x
// (see begin_grads) and db_j += Σ_n dout_j.
void Transformer::linear_bwd(std::int64_t layer, const std::vector<Proj>& projs, const Tensor& x,
                             const std::vector<Tensor>& douts, const Tensor& din, bool din_fresh) {
  const bool train = train_base();
  const std::string p = layer_prefix(layer);
  for (std::size_t j = 0; j < projs.size(); ++j) {
    const std::string w = p + weight_name(projs[j]);
    const Tensor dw = train ? grad(w) : Tensor();
    const bool write_dw = train && take_fresh(w);
    ops::matmul_bwd(x, weight(layer, projs[j]), douts[j], din, dw, kLinear, {!(din_fresh && j == 0), !write_dw});
    if (train && has_bias(config_, projs[j])) ops::bias_bwd(douts[j], grad_to_add(p + bias_name(projs[j])));
  }
  if (adapter_) adapter_->linear_bwd(layer, projs, x, douts, din);
}

std::size_t Transformer::param_index(const std::string& name) const {
  for (std::size_t i = 0; i < named_.size(); ++i)
    if (named_[i].name == name) return i;
  fail(kOp, cat("no parameter '", name, "'"));
}
const Tensor& Transformer::param(const std::string& name) const { return named_[param_index(name)].value; }
const Tensor& Transformer::grad(const std::string& name) const { return named_[param_index(name)].grad; }

void Transformer::begin_grads(bool accumulate) {
  grad_fresh_.assign(named_.size(), train_base() && !accumulate ? 1 : 0);
  if (adapter_ && !accumulate) adapter_->grads().fill(0.0);
}
bool Transformer::take_fresh(const std::string& name) { return take_fresh(param_index(name)); }
bool Transformer::take_fresh(std::size_t i) {
  const bool fresh = i < grad_fresh_.size() && grad_fresh_[i];
  if (fresh) grad_fresh_[i] = 0;
  return fresh;
}
const Tensor& Transformer::grad_to_add(const std::string& name) {
  const std::size_t i = param_index(name);
  if (take_fresh(i)) named_[i].grad.fill(0.0);
  return named_[i].grad;
}
void Transformer::finish_grads() {
  for (std::size_t i = 0; i < grad_fresh_.size(); ++i)
    if (grad_fresh_[i]) named_[i].grad.fill(0.0);
  grad_fresh_.clear();
}

void Transformer::init_random(std::uint64_t seed, double std) {
  std::uint64_t offset = 0;
  for (const Param& p : named_) {
    const std::string& n = p.name;
    const std::string last = n.substr(n.rfind('.') + 1);
    const bool bias = (last.size() == 2 && last[0] == 'b') || (n.size() > 2 && n.compare(n.size() - 2, 2, "_b") == 0);
    if (bias) {
      p.value.fill(0.0);
    } else if (last.find("norm") != std::string::npos) {
      p.value.copy_from(Tensor::full(p.value.shape(), 1.0, dtype_, device_));
    } else if (std == 0.0) {
      p.value.fill(0.0);  // the same values, without the draws' temporary memory
    } else {
      // Box–Muller on Philox uniforms.
      const std::vector<double> u = [&] {
        const Tensor t = Tensor::empty({p.value.numel() * 2}, DType::f64);
        ops::uniform_(t, seed, offset);
        offset += static_cast<std::uint64_t>(t.numel() + 3) / 4;
        return t.to_vector<double>();
      }();
      std::vector<double> v(static_cast<std::size_t>(p.value.numel()));
      for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = std * std::sqrt(-2.0 * std::log(1.0 - u[2 * i])) * std::cos(2 * M_PI * u[2 * i + 1]);
      p.value.copy_from(Tensor::from_vector<double>(p.value.shape(), v).to(dtype_));
    }
  }
}

Tensor Transformer::forward(const Batch& batch) {
  forward_trunk(batch);
  const Acts& a = *acts_;
  Tensor logits = Tensor::empty({a.h_real.size(0), config_.vocab_size}, dtype_, device_);
  ops::matmul(a.h_real, param(config_.tie_word_embeddings ? "embed" : "lm_head"), logits, kLinear);
  return logits;
}

void Transformer::norm_fwd(const Tensor& in, const std::string& w, Tensor& out, Tensor& mean, Tensor& rstd) const {
  const std::int64_t rows = in.numel() / in.size(-1);
  out = Tensor::empty(in.shape(), dtype_, device_);
  rstd = Tensor::empty({rows}, stat_dtype(), device_);
  if (is_gpt2(config_)) {
    mean = Tensor::empty({rows}, stat_dtype(), device_);
    ops::layernorm_fwd(in, param(w), param(w + "_b"), config_.norm_eps, out, mean, rstd);
  } else {
    ops::rmsnorm_fwd(in, param(w), config_.norm_eps, out, rstd);
  }
}

void Transformer::forward_trunk(const Batch& batch) {
  const TransformerConfig& c = config_;
  HONE_CHECK(batch.ids.defined() && batch.ids.dtype() == DType::i64 && (batch.ids.ndim() == 1 || batch.ids.ndim() == 2),
             kOp, "ids must be i64 (N) or (B, T); got ", batch.ids.str());
  acts_.reset(new Acts);
  Acts& a = *acts_;
  a.ids = batch.ids.view({-1}).host();
  const std::int64_t N = a.ids.numel();
  if (batch.ids.ndim() == 2 && !batch.cu_seqlens.defined()) {
    const std::int64_t B = batch.ids.size(0), T = batch.ids.size(1);
    std::vector<std::int32_t> cu;
    std::vector<std::int64_t> pos;
    for (std::int64_t b = 0; b <= B; ++b) cu.push_back(static_cast<std::int32_t>(b * T));
    for (std::int64_t i = 0; i < N; ++i) pos.push_back(i % T);
    a.cu_seqlens = Tensor::from_vector<std::int32_t>({B + 1}, cu);
    a.positions = batch.positions.defined() ? batch.positions.view({-1}).host()
                                            : Tensor::from_vector<std::int64_t>({N}, pos);
  } else {
    HONE_CHECK(batch.cu_seqlens.defined() && batch.positions.defined(), kOp,
               "packed ids (N) need cu_seqlens and positions");
    a.cu_seqlens = batch.cu_seqlens.host();
    a.positions = batch.positions.view({-1}).host();
  }
  HONE_CHECK(a.positions.numel() == N, kOp, "positions has ", a.positions.numel(), " entries for ", N, " tokens");

  // Prompt tuning: Nv virtual tokens before every sequence, the sequence's positions shifted by Nv.
  const Tensor prompt = adapter_ ? adapter_->prompt() : Tensor();
  const std::int64_t D = c.hidden_size;
  if (prompt.defined()) {
    HONE_CHECK(prompt.ndim() == 2 && prompt.size(1) == D && prompt.dtype() == dtype_ && prompt.device() == device_,
               kOp, "the prompt is ", prompt.str(), "; expected (Nv, ", D, ") ", dtype_name(dtype_), " on ",
               device_.str());
    a.n_virtual = prompt.size(0);
    a.real_ids = a.ids;
    a.cu = a.cu_seqlens.to_vector<std::int64_t>();
    const auto real_pos = a.positions.to_vector<std::int64_t>();
    std::vector<std::int64_t> pos;
    std::vector<std::int32_t> cu_run = {0};
    a.cu_run = {0};
    for (std::size_t s = 1; s < a.cu.size(); ++s) {
      const std::int64_t len = a.cu[s] - a.cu[s - 1], nv = len > 0 ? a.n_virtual : 0;
      for (std::int64_t i = 0; i < nv; ++i) pos.push_back(i);
      for (std::int64_t i = a.cu[s - 1]; i < a.cu[s]; ++i) pos.push_back(real_pos[static_cast<std::size_t>(i)] + nv);
      a.cu_run.push_back(a.cu_run.back() + nv + len);
      cu_run.push_back(static_cast<std::int32_t>(a.cu_run.back()));
    }
    a.positions = Tensor::from_vector<std::int64_t>({static_cast<std::int64_t>(pos.size())}, pos);
    a.cu_seqlens = Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(cu_run.size())}, cu_run);
  }
  const std::int64_t M = a.positions.numel();  // tokens run: N plus the virtual ones
  {
    // Checked here, on the host: the device kernels would give an out-of-range id a zero row.
    const Tensor& real = a.n_virtual > 0 ? a.real_ids : a.ids;
    const std::int64_t* id = real.data<std::int64_t>();
    for (std::int64_t i = 0; i < real.numel(); ++i)
      HONE_CHECK(id[i] >= 0 && id[i] < c.vocab_size, kOp, "token id ", id[i], " at position ", i,
                 " is outside the model's vocabulary [0, ", c.vocab_size, ")");
  }
  const auto pos = a.positions.to_vector<std::int64_t>();
  for (std::int64_t i = 0; i < M; ++i)
    HONE_CHECK(pos[i] >= 0 && pos[i] < c.max_position_embeddings, kOp, "position ", pos[i], " of token ", i,
               " is outside [0, ", c.max_position_embeddings, ")",
               a.n_virtual ? cat(" (", a.n_virtual, " virtual tokens come first)") : std::string());

  {
    const auto cu_run = a.cu_seqlens.to_vector<std::int64_t>();
    for (std::size_t s = 1; s < cu_run.size(); ++s) a.max_seqlen = std::max(a.max_seqlen, cu_run[s] - cu_run[s - 1]);
  }
  if (device_.is_cuda()) {  // the ops read ids, positions and sequence offsets on the device
    a.ids = a.ids.to(device_);
    a.positions = a.positions.to(device_);
    a.cu_seqlens = a.cu_seqlens.to(DType::i32).to(device_);
    if (a.real_ids.defined()) a.real_ids = a.real_ids.to(device_);
  }
  auto act = [&](const Shape& s) { return Tensor::empty(s, dtype_, device_); };

  Tensor x = act({M, D});
  if (a.n_virtual == 0) {
    ops::embedding_fwd(a.ids, param("embed"), x);
  } else {
    Tensor real = act({N, D});
    ops::embedding_fwd(a.real_ids, param("embed"), real);
    for (std::size_t s = 1; s < a.cu.size(); ++s) {
      if (a.cu[s] == a.cu[s - 1]) continue;
      const std::int64_t at = a.cu_run[s - 1];
      x.slice(at, at + a.n_virtual).copy_from(prompt);
      x.slice(at + a.n_virtual, a.cu_run[s]).copy_from(real.slice(a.cu[s - 1], a.cu[s]));
    }
  }
  if (is_gpt2(c)) {
    Tensor pe = act({M, D});
    ops::embedding_fwd(a.positions, param("pos_embed"), pe);
    ops::add_(x, pe);
  }
  a.layers.resize(static_cast<std::size_t>(c.num_layers));
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    Layer& s = a.layers[static_cast<std::size_t>(l)];
    s.x = x;
    block_fwd(l, s, x);
    if (checkpointing_) s.keep_input_only();  // recomputed in backward
  }
  a.x_final = x;
  norm_fwd(x, "final_norm", a.h_final, a.mean_final, a.rstd_final);
  a.h_real = a.h_final;
  if (a.n_virtual > 0) {  // the head runs on the real tokens only
    a.h_real = act({N, D});
    for (std::size_t s = 1; s < a.cu.size(); ++s)
      if (a.cu[s] > a.cu[s - 1])
        a.h_real.slice(a.cu[s - 1], a.cu[s]).copy_from(a.h_final.slice(a.cu_run[s - 1] + a.n_virtual, a.cu_run[s]));
  }
}

// One block: s.x in, every intermediate the backward needs in s, the block's output in x_out.
void Transformer::block_fwd(std::int64_t l, Layer& s, Tensor& x_out) {
  const TransformerConfig& c = config_;
  const Acts& a = *acts_;
  const std::int64_t M = a.positions.numel(), D = c.hidden_size, F = c.intermediate_size;
  const std::int64_t H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim;
  auto act = [&](const Shape& sh) { return Tensor::empty(sh, dtype_, device_); };
  auto stat = [&](const Shape& sh) { return Tensor::empty(sh, stat_dtype(), device_); };
  ops::AttentionArgs attn{0.0, true, a.cu_seqlens};
  attn.window = c.sliding_window;
  attn.max_seqlen = a.max_seqlen;
  const std::string p = layer_prefix(l);
  norm_fwd(s.x, p + "norm1", s.h1, s.mean1, s.rstd1);
  s.q = act({M, H, hd});
  s.k = act({M, KV, hd});
  s.v = act({M, KV, hd});
  linear_fwd(l, {Proj::q, Proj::k, Proj::v}, s.h1,
             {s.q.view({M, H * hd}), s.k.view({M, KV * hd}), s.v.view({M, KV * hd})});
  if (c.qk_norm) {  // Qwen3: RMSNorm over each head's hd values before RoPE
    s.q_raw = s.q.clone();
    s.k_raw = s.k.clone();
    s.rstd_q = stat({M * H});
    s.rstd_k = stat({M * KV});
    ops::rmsnorm_fwd(s.q_raw.view({M * H, hd}), param(p + "q_norm"), c.norm_eps, s.q.view({M * H, hd}), s.rstd_q);
    ops::rmsnorm_fwd(s.k_raw.view({M * KV, hd}), param(p + "k_norm"), c.norm_eps, s.k.view({M * KV, hd}), s.rstd_k);
  }
  if (!is_gpt2(c)) {
    ops::rope_fwd(s.q, a.positions, c.rope, s.q);
    ops::rope_fwd(s.k, a.positions, c.rope, s.k);
  }
  s.o = act({M, H, hd});
  s.lse = stat({H, M});
  ops::attention_fwd(s.q, s.k, s.v, attn, s.o, s.lse);
  s.x1 = s.x.clone();
  Tensor t = act({M, D});
  linear_fwd(l, {Proj::o}, s.o.view({M, H * hd}), {t});
  ops::add_(s.x1, t);
  norm_fwd(s.x1, p + "norm2", s.h2, s.mean2, s.rstd2);
  s.u = act({M, F});
  s.s = act({M, F});
  if (is_gpt2(c)) {
    linear_fwd(l, {Proj::up}, s.h2, {s.u});
    ops::gelu_fwd(s.u, s.s);
  } else {
    s.g = act({M, F});
    linear_fwd(l, {Proj::gate, Proj::up}, s.h2, {s.g, s.u});
    ops::swiglu_fwd(s.g, s.u, s.s);
  }
  x_out = s.x1.clone();
  linear_fwd(l, {Proj::down}, s.s, {t});
  ops::add_(x_out, t);
}

void Transformer::backward(const Tensor& dlogits, bool accumulate) {
  HONE_CHECK(acts_ != nullptr, kOp, "backward without a forward");
  const TransformerConfig& c = config_;
  const Acts& a = *acts_;
  const std::int64_t N = a.h_real.size(0);
  HONE_CHECK(dlogits.shape() == (Shape{N, c.vocab_size}) && dlogits.dtype() == dtype_, kOp, "dlogits is ",
             dlogits.str(), "; expected (", N, ", ", c.vocab_size, ") ", dtype_name(dtype_));
  HONE_CHECK(train_base() || adapter_, kOp, "backward with a frozen base and no adapter: nothing to train");
  const std::string head = c.tie_word_embeddings ? "embed" : "lm_head";
  HONE_CHECK(dlogits.device() == device_, kOp, "dlogits is on ", dlogits.device().str(), "; the model is on ",
             device_.str());
  begin_grads(accumulate);
  Tensor dh = Tensor::empty({N, c.hidden_size}, dtype_, device_);
  const bool write_dw = train_base() && take_fresh(head);
  ops::matmul_bwd(a.h_real, param(head), dlogits, dh, train_base() ? grad(head) : Tensor(), kLinear,
                  {false, !write_dw});
  backward_trunk(dh);
}

double Transformer::loss(const Batch& batch, const Tensor& targets, double scale, bool backward, bool accumulate,
                         std::int64_t ignore_index, std::int64_t chunk) {
  const TransformerConfig& c = config_;
  HONE_CHECK(chunk >= 1, kOp, "loss chunk is ", chunk, "; it must be positive");
  HONE_CHECK(!backward || train_base() || adapter_, kOp, "backward with a frozen base and no adapter: nothing to train");
  forward_trunk(batch);
  const Acts& a = *acts_;
  const std::int64_t N = a.h_real.size(0), V = c.vocab_size;
  HONE_CHECK(targets.defined() && targets.numel() == N && (targets.dtype() == DType::i64 || targets.dtype() == DType::i32),
             kOp, "targets must be i32/i64 with one entry per token (", N, "); got ", targets.defined() ? targets.str() : "none");
  if (backward) begin_grads(accumulate);
  const std::string head = c.tie_word_embeddings ? "embed" : "lm_head";
  const Tensor& w = param(head);
  const Tensor dw = backward && train_base() ? grad(head) : Tensor();
  // Each chunk writes its rows of dh; the head's gradient is written by the first chunk when
  // this pass has not produced it yet, then added to.
  Tensor dh = backward ? Tensor::empty({N, c.hidden_size}, dtype_, device_) : Tensor();
  ops::CrossEntropyArgs ce;
  ce.ignore_index = ignore_index;
  {
    // As for ids: the device's cross-entropy would turn a bad target into NaN, not an error.
    const auto t = targets.view({N}).to_vector<std::int64_t>();
    for (std::size_t i = 0; i < t.size(); ++i)
      HONE_CHECK(t[i] == ignore_index || (t[i] >= 0 && t[i] < V), kOp, "target ", t[i], " of token ", i,
                 " is outside [0, ", V, ") and is not the ignore index ", ignore_index);
  }
  const Tensor all_targets = targets.view({N}).to(device_);
  double total = 0;  // over chunks in order, each summed in order: deterministic
  for (std::int64_t r0 = 0; r0 < N; r0 += chunk) {
    const std::int64_t r1 = std::min(N, r0 + chunk), n = r1 - r0;
    const Tensor h = a.h_real.slice(r0, r1), t = all_targets.slice(r0, r1);
    const Tensor logits = Tensor::empty({n, V}, dtype_, device_),
                 losses = Tensor::empty({n}, stat_dtype(), device_), lse = Tensor::empty({n}, stat_dtype(), device_);
    ops::matmul(h, w, logits, kLinear);
    // With backward, the gradient for the scaled loss is written with the forward, in place of
    // the logits: one pass over them and one (n, V) buffer per chunk.
    const Tensor& dlogits = logits;
    if (backward) ops::cross_entropy_fwd_bwd(logits, t, ce, scale, losses, lse, dlogits);
    else ops::cross_entropy_fwd(logits, t, ce, losses, lse);
    const std::vector<double> l64 = losses.to_vector<double>();
    double sum = 0;
    for (std::int64_t i = 0; i < n; ++i) sum += l64[static_cast<std::size_t>(i)];
    total += scale * sum;
    if (backward) {
      const bool write_dw = dw.defined() && take_fresh(head);
      ops::matmul_bwd(h, w, dlogits, dh.slice(r0, r1), dw, kLinear, {false, !write_dw});
    }
  }
  if (backward) backward_trunk(dh);
  return total;
}

void Transformer::backward_trunk(Tensor dh) {
  const TransformerConfig& c = config_;
  Acts& a = *acts_;
  const std::int64_t N = a.h_real.size(0), M = a.positions.numel(), D = c.hidden_size, F = c.intermediate_size;
  const std::int64_t H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim;
  const bool train = train_base();
  auto act = [&](const Shape& s) { return Tensor::empty(s, dtype_, device_); };
  auto zeros = [&](const Shape& s) { return Tensor::zeros(s, dtype_, device_); };
  // The gradient of a parameter for an op that adds to it (see begin_grads); undefined while the
  // base is frozen: the ops skip it.
  auto grad_of = [&](const std::string& name) { return train ? grad_to_add(name) : Tensor(); };
  ops::AttentionArgs attn{0.0, true, a.cu_seqlens};
  attn.window = c.sliding_window;
  attn.max_seqlen = a.max_seqlen;

  // Norm backward: dx (=) from dy; weight (and GPT-2 bias) gradients (+=).
  auto norm_bwd = [&](const Tensor& dy, const Tensor& x, const std::string& w, const Tensor& mean,
                      const Tensor& rstd, const Tensor& dx) {
    if (is_gpt2(c))
      ops::layernorm_bwd(dy, x, param(w), mean, rstd, dx, grad_of(w), grad_of(w + "_b"));
    else
      ops::rmsnorm_bwd(dy, x, param(w), rstd, dx, grad_of(w));
  };

  if (a.n_virtual > 0) {  // virtual tokens have no logits: zero gradient at their rows
    Tensor dh_run = zeros({M, D});
    for (std::size_t s = 1; s < a.cu.size(); ++s)
      if (a.cu[s] > a.cu[s - 1])
        dh_run.slice(a.cu_run[s - 1] + a.n_virtual, a.cu_run[s]).copy_from(dh.slice(a.cu[s - 1], a.cu[s]));
    dh = dh_run;
  }
  Tensor dx = act({M, D});
  norm_bwd(dh, a.x_final, "final_norm", a.mean_final, a.rstd_final, dx);

  for (std::int64_t l = c.num_layers - 1; l >= 0; --l) {
    const std::string p = layer_prefix(l);
    Layer& s = a.layers[static_cast<std::size_t>(l)];
    if (checkpointing_) {  // the block's intermediates again, from its saved input
      Tensor unused;
      block_fwd(l, s, unused);
    }
    // MLP: x2 = x1 + down(act(h2)), h2 = norm2(x1).
    Tensor ds = act({M, F}), du = act({M, F}), dh2 = act({M, D});
    linear_bwd(l, {Proj::down}, s.s, {dx}, ds, true);
    if (is_gpt2(c)) {
      ops::gelu_bwd(ds, s.u, du);
      linear_bwd(l, {Proj::up}, s.h2, {du}, dh2, true);
    } else {
      Tensor dg = act({M, F});
      ops::swiglu_bwd(ds, s.g, s.u, dg, du);
      linear_bwd(l, {Proj::gate, Proj::up}, s.h2, {dg, du}, dh2, true);
    }
    Tensor dx1 = act({M, D});
    norm_bwd(dh2, s.x1, p + "norm2", s.mean2, s.rstd2, dx1);
    ops::add_(dx1, dx);  // residual
    // Attention: x1 = x + o(attention(rope(norm_q(q)), rope(norm_k(k)), v)), q/k/v = lin(h1).
    Tensor d_o = act({M, H, hd});
    linear_bwd(l, {Proj::o}, s.o.view({M, H * hd}), {dx1}, d_o.view({M, H * hd}), true);
    Tensor dq = act({M, H, hd}), dk = act({M, KV, hd}), dv = act({M, KV, hd});
    ops::attention_bwd(d_o, s.q, s.k, s.v, s.o, s.lse, attn, dq, dk, dv);
    if (!is_gpt2(c)) {
      ops::rope_bwd(dq, a.positions, c.rope, dq);
      ops::rope_bwd(dk, a.positions, c.rope, dk);
    }
    if (c.qk_norm) {
      Tensor dq_raw = act({M, H, hd}), dk_raw = act({M, KV, hd});
      ops::rmsnorm_bwd(dq.view({M * H, hd}), s.q_raw.view({M * H, hd}), param(p + "q_norm"), s.rstd_q,
                       dq_raw.view({M * H, hd}), grad_of(p + "q_norm"));
      ops::rmsnorm_bwd(dk.view({M * KV, hd}), s.k_raw.view({M * KV, hd}), param(p + "k_norm"), s.rstd_k,
                       dk_raw.view({M * KV, hd}), grad_of(p + "k_norm"));
      dq = dq_raw;
      dk = dk_raw;
    }
    Tensor dh1 = act({M, D});
    linear_bwd(l, {Proj::q, Proj::k, Proj::v}, s.h1,
               {dq.view({M, H * hd}), dk.view({M, KV * hd}), dv.view({M, KV * hd})}, dh1, true);
    Tensor dx0 = act({M, D});
    norm_bwd(dh1, s.x, p + "norm1", s.mean1, s.rstd1, dx0);
    ops::add_(dx0, dx1);  // residual
    dx = dx0;
    if (checkpointing_) s.keep_input_only();
  }
  if (a.n_virtual == 0) {
    if (train) ops::embedding_bwd(a.ids, dx, grad_to_add("embed"));
  } else {
    Tensor dreal = train ? act({N, D}) : Tensor();
    for (std::size_t s = 1; s < a.cu.size(); ++s) {  // sequences in order: deterministic sums
      if (a.cu[s] == a.cu[s - 1]) continue;
      const std::int64_t at = a.cu_run[s - 1];
      // Straight into the adapter's gradient (f32 on CUDA), not through a bf16 partial sum.
      adapter_->prompt_bwd(dx.slice(at, at + a.n_virtual));
      if (train) dreal.slice(a.cu[s - 1], a.cu[s]).copy_from(dx.slice(at + a.n_virtual, a.cu_run[s]));
    }
    if (train) ops::embedding_bwd(a.real_ids, dreal, grad_to_add("embed"));
  }
  if (is_gpt2(c) && train) ops::embedding_bwd(a.positions, dx, grad_to_add("pos_embed"));
  finish_grads();
}

}  // namespace hone::model

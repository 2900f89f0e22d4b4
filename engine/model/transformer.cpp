// Transformer forward and backward, op by op, for the Llama-style and GPT-2 families.
#include "model/transformer.h"

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
};
struct Transformer::Acts {
  Tensor ids, positions, cu_seqlens;
  std::vector<Layer> layers;
  Tensor x_final, h_final, mean_final, rstd_final;
};
void Transformer::ActsDeleter::operator()(Acts* a) const { delete a; }

Transformer::Transformer(TransformerConfig config, DType dtype) : config_(std::move(config)), dtype_(dtype) {
  HONE_CHECK(dtype == DType::f32 || dtype == DType::f64, kOp, "parameters must be f32 or f64 on the CPU, got ",
             dtype_name(dtype));
  build_views();
}

void Transformer::build_views() {
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
  params_ = Tensor::zeros({total}, dtype_);
  grads_ = Tensor::zeros({total}, dtype_);
  named_.clear();
  std::int64_t at = 0;
  for (const auto& [name, s] : layout) {
    const std::int64_t n = shape_numel(s);
    named_.push_back({name, params_.slice(at, at + n).view(s), grads_.slice(at, at + n).view(s)});
    at += n;
  }
}

const Tensor& Transformer::param(const std::string& name) const {
  for (const Param& p : named_)
    if (p.name == name) return p.value;
  fail(kOp, cat("no parameter '", name, "'"));
}
const Tensor& Transformer::grad(const std::string& name) const {
  for (const Param& p : named_)
    if (p.name == name) return p.grad;
  fail(kOp, cat("no parameter '", name, "'"));
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
      p.value.fill(1.0);
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
  const TransformerConfig& c = config_;
  HONE_CHECK(batch.ids.defined() && batch.ids.dtype() == DType::i64 && (batch.ids.ndim() == 1 || batch.ids.ndim() == 2),
             kOp, "ids must be i64 (N) or (B, T); got ", batch.ids.str());
  acts_.reset(new Acts);
  Acts& a = *acts_;
  a.ids = batch.ids.view({-1});
  const std::int64_t N = a.ids.numel();
  if (batch.ids.ndim() == 2 && !batch.cu_seqlens.defined()) {
    const std::int64_t B = batch.ids.size(0), T = batch.ids.size(1);
    std::vector<std::int32_t> cu;
    std::vector<std::int64_t> pos;
    for (std::int64_t b = 0; b <= B; ++b) cu.push_back(static_cast<std::int32_t>(b * T));
    for (std::int64_t i = 0; i < N; ++i) pos.push_back(i % T);
    a.cu_seqlens = Tensor::from_vector<std::int32_t>({B + 1}, cu);
    a.positions = batch.positions.defined() ? batch.positions.view({-1}) : Tensor::from_vector<std::int64_t>({N}, pos);
  } else {
    HONE_CHECK(batch.cu_seqlens.defined() && batch.positions.defined(), kOp,
               "packed ids (N) need cu_seqlens and positions");
    a.cu_seqlens = batch.cu_seqlens;
    a.positions = batch.positions.view({-1});
  }
  HONE_CHECK(a.positions.numel() == N, kOp, "positions has ", a.positions.numel(), " entries for ", N, " tokens");
  const auto cu = a.cu_seqlens.to_vector<std::int64_t>();
  for (std::size_t s = 1; s < cu.size(); ++s) {
    const std::int64_t len = cu[s] - cu[s - 1];
    HONE_CHECK(c.sliding_window == 0 || len <= c.sliding_window, kOp, "sequence ", s - 1, " has ", len,
               " tokens, more than the sliding window ", c.sliding_window, " (windowed attention is not supported yet)");
  }
  const auto pos = a.positions.to_vector<std::int64_t>();
  for (std::int64_t i = 0; i < N; ++i)
    HONE_CHECK(pos[i] >= 0 && pos[i] < c.max_position_embeddings, kOp, "position ", pos[i], " of token ", i,
               " is outside [0, ", c.max_position_embeddings, ")");

  const std::int64_t D = c.hidden_size, F = c.intermediate_size, H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim;
  auto act = [&](const Shape& s) { return Tensor::empty(s, dtype_); };
  const ops::AttentionArgs attn{0.0, true, a.cu_seqlens};

  Tensor x = act({N, D});
  ops::embedding_fwd(a.ids, param("embed"), x);
  if (is_gpt2(c)) {
    Tensor pe = act({N, D});
    ops::embedding_fwd(a.positions, param("pos_embed"), pe);
    ops::add_(x, pe);
  }
  auto norm = [&](const Tensor& in, const std::string& w, Tensor& out, Tensor& mean, Tensor& rstd) {
    const std::int64_t rows = in.numel() / in.size(-1);
    out = act(in.shape());
    rstd = act({rows});
    if (is_gpt2(c)) {
      mean = act({rows});
      ops::layernorm_fwd(in, param(w), param(w + "_b"), c.norm_eps, out, mean, rstd);
    } else {
      ops::rmsnorm_fwd(in, param(w), c.norm_eps, out, rstd);
    }
  };

  a.layers.resize(static_cast<std::size_t>(c.num_layers));
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    auto lin = [&](const Tensor& in, const char* w, const char* b, bool has_bias, const Tensor& out) {
      ops::matmul(in, param(p + w), out, kLinear);
      if (has_bias) ops::bias_add_(out, param(p + b));
    };
    Layer& s = a.layers[static_cast<std::size_t>(l)];
    s.x = x;
    norm(s.x, p + "norm1", s.h1, s.mean1, s.rstd1);
    s.q = act({N, H, hd});
    s.k = act({N, KV, hd});
    s.v = act({N, KV, hd});
    lin(s.h1, "wq", "bq", c.attention_bias, s.q.view({N, H * hd}));
    lin(s.h1, "wk", "bk", c.attention_bias, s.k.view({N, KV * hd}));
    lin(s.h1, "wv", "bv", c.attention_bias, s.v.view({N, KV * hd}));
    if (c.qk_norm) {  // Qwen3: RMSNorm over each head's hd values before RoPE
      s.q_raw = s.q.clone();
      s.k_raw = s.k.clone();
      s.rstd_q = act({N * H});
      s.rstd_k = act({N * KV});
      ops::rmsnorm_fwd(s.q_raw.view({N * H, hd}), param(p + "q_norm"), c.norm_eps, s.q.view({N * H, hd}), s.rstd_q);
      ops::rmsnorm_fwd(s.k_raw.view({N * KV, hd}), param(p + "k_norm"), c.norm_eps, s.k.view({N * KV, hd}), s.rstd_k);
    }
    if (!is_gpt2(c)) {
      ops::rope_fwd(s.q, a.positions, c.rope, s.q);
      ops::rope_fwd(s.k, a.positions, c.rope, s.k);
    }
    s.o = act({N, H, hd});
    s.lse = act({H, N});
    ops::attention_fwd(s.q, s.k, s.v, attn, s.o, s.lse);
    s.x1 = s.x.clone();
    Tensor t = act({N, D});
    lin(s.o.view({N, H * hd}), "wo", "bo", c.o_bias, t);
    ops::add_(s.x1, t);
    norm(s.x1, p + "norm2", s.h2, s.mean2, s.rstd2);
    s.u = act({N, F});
    s.s = act({N, F});
    lin(s.h2, "wu", "bu", c.mlp_bias, s.u);
    if (is_gpt2(c)) {
      ops::gelu_fwd(s.u, s.s);
    } else {
      s.g = act({N, F});
      lin(s.h2, "wg", "bg", c.mlp_bias, s.g);
      ops::swiglu_fwd(s.g, s.u, s.s);
    }
    x = s.x1.clone();
    lin(s.s, "wd", "bd", c.mlp_bias, t);
    ops::add_(x, t);
  }
  a.x_final = x;
  norm(x, "final_norm", a.h_final, a.mean_final, a.rstd_final);
  Tensor logits = act({N, c.vocab_size});
  ops::matmul(a.h_final, param(c.tie_word_embeddings ? "embed" : "lm_head"), logits, kLinear);
  return logits;
}

void Transformer::backward(const Tensor& dlogits, bool accumulate) {
  HONE_CHECK(acts_ != nullptr, kOp, "backward without a forward");
  const TransformerConfig& c = config_;
  const Acts& a = *acts_;
  const std::int64_t N = a.ids.numel(), D = c.hidden_size, F = c.intermediate_size;
  const std::int64_t H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim;
  HONE_CHECK(dlogits.shape() == (Shape{N, c.vocab_size}) && dlogits.dtype() == dtype_, kOp, "dlogits is ",
             dlogits.str(), "; expected (", N, ", ", c.vocab_size, ") ", dtype_name(dtype_));
  auto act = [&](const Shape& s) { return Tensor::empty(s, dtype_); };
  auto zeros = [&](const Shape& s) { return Tensor::zeros(s, dtype_); };
  const ops::AttentionArgs attn{0.0, true, a.cu_seqlens};
  if (!accumulate) grads_.fill(0.0);  // parameter gradients accumulate (+=) below

  // Norm backward: dx (=) from dy; weight (and GPT-2 bias) gradients (+=).
  auto norm_bwd = [&](const Tensor& dy, const Tensor& x, const std::string& w, const Tensor& mean,
                      const Tensor& rstd, const Tensor& dx) {
    if (is_gpt2(c))
      ops::layernorm_bwd(dy, x, param(w), mean, rstd, dx, grad(w), grad(w + "_b"));
    else
      ops::rmsnorm_bwd(dy, x, param(w), rstd, dx, grad(w));
  };

  Tensor dh = zeros({N, D});
  const std::string head = c.tie_word_embeddings ? "embed" : "lm_head";
  ops::matmul_bwd(a.h_final, param(head), dlogits, dh, grad(head), kLinear);
  Tensor dx = act({N, D});
  norm_bwd(dh, a.x_final, "final_norm", a.mean_final, a.rstd_final, dx);

  for (std::int64_t l = c.num_layers - 1; l >= 0; --l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const Layer& s = a.layers[static_cast<std::size_t>(l)];
    // Linear backward: din (+=), dW (+=), db (+=).
    auto lin_bwd = [&](const Tensor& in, const char* w, const char* b, bool has_bias, const Tensor& dout,
                       const Tensor& din) {
      ops::matmul_bwd(in, param(p + w), dout, din, grad(p + w), kLinear);
      if (has_bias) ops::bias_bwd(dout, grad(p + b));
    };
    // MLP: x2 = x1 + down(act(h2)), h2 = norm2(x1).
    Tensor ds = zeros({N, F}), du = act({N, F}), dh2 = zeros({N, D});
    lin_bwd(s.s, "wd", "bd", c.mlp_bias, dx, ds);
    if (is_gpt2(c)) {
      ops::gelu_bwd(ds, s.u, du);
    } else {
      Tensor dg = act({N, F});
      ops::swiglu_bwd(ds, s.g, s.u, dg, du);
      lin_bwd(s.h2, "wg", "bg", c.mlp_bias, dg, dh2);
    }
    lin_bwd(s.h2, "wu", "bu", c.mlp_bias, du, dh2);
    Tensor dx1 = act({N, D});
    norm_bwd(dh2, s.x1, p + "norm2", s.mean2, s.rstd2, dx1);
    ops::add_(dx1, dx);  // residual
    // Attention: x1 = x + o(attention(rope(norm_q(q)), rope(norm_k(k)), v)), q/k/v = lin(h1).
    Tensor d_o = zeros({N, H, hd});
    lin_bwd(s.o.view({N, H * hd}), "wo", "bo", c.o_bias, dx1, d_o.view({N, H * hd}));
    Tensor dq = act({N, H, hd}), dk = act({N, KV, hd}), dv = act({N, KV, hd});
    ops::attention_bwd(d_o, s.q, s.k, s.v, s.o, s.lse, attn, dq, dk, dv);
    if (!is_gpt2(c)) {
      ops::rope_bwd(dq, a.positions, c.rope, dq);
      ops::rope_bwd(dk, a.positions, c.rope, dk);
    }
    if (c.qk_norm) {
      Tensor dq_raw = act({N, H, hd}), dk_raw = act({N, KV, hd});
      ops::rmsnorm_bwd(dq.view({N * H, hd}), s.q_raw.view({N * H, hd}), param(p + "q_norm"), s.rstd_q,
                       dq_raw.view({N * H, hd}), grad(p + "q_norm"));
      ops::rmsnorm_bwd(dk.view({N * KV, hd}), s.k_raw.view({N * KV, hd}), param(p + "k_norm"), s.rstd_k,
                       dk_raw.view({N * KV, hd}), grad(p + "k_norm"));
      dq = dq_raw;
      dk = dk_raw;
    }
    Tensor dh1 = zeros({N, D});
    lin_bwd(s.h1, "wq", "bq", c.attention_bias, dq.view({N, H * hd}), dh1);
    lin_bwd(s.h1, "wk", "bk", c.attention_bias, dk.view({N, KV * hd}), dh1);
    lin_bwd(s.h1, "wv", "bv", c.attention_bias, dv.view({N, KV * hd}), dh1);
    Tensor dx0 = act({N, D});
    norm_bwd(dh1, s.x, p + "norm1", s.mean1, s.rstd1, dx0);
    ops::add_(dx0, dx1);  // residual
    dx = dx0;
  }
  ops::embedding_bwd(a.ids, dx, grad("embed"));
  if (is_gpt2(c)) ops::embedding_bwd(a.positions, dx, grad("pos_embed"));
}

}  // namespace hone::model

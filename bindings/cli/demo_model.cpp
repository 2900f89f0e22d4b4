// Forward and backward of the demo language model, written out op by op.
#include "demo_model.h"

#include <cmath>

#include "ops/ops.h"

namespace hone::demo {

namespace {

// Hands out consecutive views of a 1-D slab.
class Carver {
 public:
  explicit Carver(const Tensor& slab) : slab_(slab) {}
  Tensor take(const Shape& shape) {
    const std::int64_t n = shape_numel(shape);
    Tensor t = slab_.slice(used_, used_ + n).view(shape);
    used_ += n;
    return t;
  }
  std::int64_t used() const { return used_; }

 private:
  Tensor slab_;
  std::int64_t used_ = 0;
};

std::int64_t count_params(const DemoConfig& c) {
  const std::int64_t q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  const std::int64_t layer = 2 * c.dim + q * c.dim + 2 * kv * c.dim + c.dim * q + 3 * c.ffn * c.dim;
  return c.vocab * c.dim + c.dim + c.layers * layer;
}

Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype(), t.device()); }

}  // namespace

DemoModel::Weights DemoModel::carve(const Tensor& slab) const {
  const DemoConfig& c = config_;
  Carver cv(slab);
  Weights w;
  w.embed = cv.take({c.vocab, c.dim});
  w.final_norm = cv.take({c.dim});
  for (std::int64_t l = 0; l < c.layers; ++l) {
    Weights::Layer L;
    L.attn_norm = cv.take({c.dim});
    L.wq = cv.take({c.heads * c.head_dim, c.dim});
    L.wk = cv.take({c.kv_heads * c.head_dim, c.dim});
    L.wv = cv.take({c.kv_heads * c.head_dim, c.dim});
    L.wo = cv.take({c.dim, c.heads * c.head_dim});
    L.mlp_norm = cv.take({c.dim});
    L.wg = cv.take({c.ffn, c.dim});
    L.wu = cv.take({c.ffn, c.dim});
    L.wd = cv.take({c.dim, c.ffn});
    w.layers.push_back(L);
  }
  HONE_CHECK(cv.used() == slab.numel(), "demo", "parameter layout covers ", cv.used(), " of ",
             slab.numel());
  return w;
}

DemoModel::DemoModel(const DemoConfig& config, DType dtype, std::uint64_t seed)
    : config_(config), dtype_(dtype) {
  const std::int64_t n = count_params(config);
  params_ = Tensor::empty({n}, dtype);
  grads_ = Tensor::zeros({n}, dtype);
  w_ = carve(params_);
  dw_ = carve(grads_);
  // Uniform(−a, a) with a = sqrt(3)·std: std 0.02 for embeddings, 1/sqrt(fan_in) otherwise;
  // norms start at one. Each tensor draws from its own Philox offset range.
  std::uint64_t offset = 0;
  auto init = [&](const Tensor& t, double std) {
    ops::uniform_(t, seed, offset);
    offset += static_cast<std::uint64_t>(t.numel() + 3) / 4;
    const double a = std::sqrt(3.0) * std;
    ops::scale_(t, 2 * a);
    ops::add_(t, Tensor::full(t.shape(), -a, dtype), 1.0);
  };
  init(w_.embed, 0.02);
  w_.final_norm.fill(1.0);
  for (auto& L : w_.layers) {
    L.attn_norm.fill(1.0);
    L.mlp_norm.fill(1.0);
    for (Tensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.wg, &L.wu, &L.wd})
      init(*t, 1.0 / std::sqrt(static_cast<double>(t->size(1))));
  }
}

void DemoModel::forward(const Tensor& inputs) {
  const DemoConfig& c = config_;
  const std::int64_t B = inputs.size(0), T = inputs.size(1), N = B * T;
  const std::int64_t dq = c.heads * c.head_dim, dkv = c.kv_heads * c.head_dim;
  Acts& a = acts_;
  a.batch = B;
  a.time = T;
  std::vector<std::int64_t> pos(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) pos[i] = i % T;
  a.positions = Tensor::from_vector<std::int64_t>({B, T}, pos);
  const ops::RopeArgs rope{c.rope_theta, {}};
  const ops::MatmulArgs linear{false, true};  // y = x · Wᵀ, W stored (out, in)
  auto act = [&](const Shape& s) { return Tensor::empty(s, dtype_); };

  Tensor x = act({N, c.dim});
  ops::embedding_fwd(inputs.view({N}), w_.embed, x);
  a.layers.resize(c.layers);
  for (std::int64_t l = 0; l < c.layers; ++l) {
    const auto& W = w_.layers[l];
    LayerActs& s = a.layers[l];
    s.x = x;
    s.h1 = act({N, c.dim});
    s.rstd1 = act({N});
    ops::rmsnorm_fwd(s.x, W.attn_norm, c.norm_eps, s.h1, s.rstd1);
    s.q = act({B, T, c.heads, c.head_dim});
    s.k = act({B, T, c.kv_heads, c.head_dim});
    s.v = act({B, T, c.kv_heads, c.head_dim});
    ops::matmul(s.h1, W.wq, s.q.view({N, dq}), linear);
    ops::matmul(s.h1, W.wk, s.k.view({N, dkv}), linear);
    ops::matmul(s.h1, W.wv, s.v.view({N, dkv}), linear);
    ops::rope_fwd(s.q, a.positions, rope, s.q);
    ops::rope_fwd(s.k, a.positions, rope, s.k);
    s.o = act({B, T, c.heads, c.head_dim});
    s.lse = act({B, c.heads, T});
    ops::attention_fwd(s.q, s.k, s.v, {}, s.o, s.lse);
    s.x1 = s.x.clone();
    Tensor attn_out = act({N, c.dim});
    ops::matmul(s.o.view({N, dq}), W.wo, attn_out, linear);
    ops::add_(s.x1, attn_out);
    s.h2 = act({N, c.dim});
    s.rstd2 = act({N});
    ops::rmsnorm_fwd(s.x1, W.mlp_norm, c.norm_eps, s.h2, s.rstd2);
    s.g = act({N, c.ffn});
    s.u = act({N, c.ffn});
    s.s = act({N, c.ffn});
    ops::matmul(s.h2, W.wg, s.g, linear);
    ops::matmul(s.h2, W.wu, s.u, linear);
    ops::swiglu_fwd(s.g, s.u, s.s);
    x = s.x1.clone();
    Tensor mlp_out = act({N, c.dim});
    ops::matmul(s.s, W.wd, mlp_out, linear);
    ops::add_(x, mlp_out);
  }
  a.x_final = x;
  a.h_final = act({N, c.dim});
  a.rstd_final = act({N});
  ops::rmsnorm_fwd(x, w_.final_norm, c.norm_eps, a.h_final, a.rstd_final);
  a.logits = act({N, c.vocab});
  ops::matmul(a.h_final, w_.embed, a.logits, linear);  // tied output projection
}

double DemoModel::forward_backward(const Tensor& tokens, bool backward) {
  HONE_CHECK(tokens.dtype() == DType::i64 && tokens.ndim() == 2 && tokens.size(1) >= 2, "demo",
             "tokens must be i64 (B, T + 1); got ", tokens.str());
  const std::int64_t B = tokens.size(0), T = tokens.size(1) - 1, N = B * T;
  Tensor inputs = Tensor::empty({B, T}, DType::i64), targets = Tensor::empty({B, T}, DType::i64);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < T; ++t) {
      inputs.data<std::int64_t>()[b * T + t] = tokens.data<std::int64_t>()[b * (T + 1) + t];
      targets.data<std::int64_t>()[b * T + t] = tokens.data<std::int64_t>()[b * (T + 1) + t + 1];
    }
  forward(inputs);
  acts_.lse_ce = Tensor::empty({N}, dtype_);
  acts_.losses = Tensor::empty({N}, dtype_);
  ops::cross_entropy_fwd(acts_.logits, targets.view({N}), {}, acts_.losses, acts_.lse_ce);
  double total = 0;
  for (double l : acts_.losses.to_vector<double>()) total += l;
  if (backward) this->backward(inputs, targets);
  return total / static_cast<double>(N);
}

void DemoModel::backward(const Tensor& inputs, const Tensor& targets) {
  const DemoConfig& c = config_;
  const Acts& a = acts_;
  const std::int64_t B = a.batch, T = a.time, N = B * T;
  const std::int64_t dq = c.heads * c.head_dim, dkv = c.kv_heads * c.head_dim;
  const ops::RopeArgs rope{c.rope_theta, {}};
  const ops::MatmulArgs linear{false, true};
  auto act = [&](const Shape& s) { return Tensor::empty(s, dtype_); };
  grads_.fill(0.0);  // parameter gradients accumulate (+=) below

  // loss = mean over the N tokens.
  Tensor dlogits = act({N, c.vocab});
  ops::cross_entropy_bwd(Tensor::full({N}, 1.0 / static_cast<double>(N), dtype_), a.logits,
                         targets.view({N}), a.lse_ce, {}, dlogits);
  Tensor dh = Tensor::zeros({N, c.dim}, dtype_);
  ops::matmul_bwd(a.h_final, w_.embed, dlogits, dh, dw_.embed, linear);
  Tensor dx = act({N, c.dim});
  ops::rmsnorm_bwd(dh, a.x_final, w_.final_norm, a.rstd_final, dx, dw_.final_norm);

  for (std::int64_t l = c.layers - 1; l >= 0; --l) {
    const auto& W = w_.layers[l];
    const auto& G = dw_.layers[l];
    const LayerActs& s = a.layers[l];
    // MLP: x2 = x1 + (swiglu(h2 Wgᵀ, h2 Wuᵀ)) Wdᵀ, h2 = rmsnorm(x1).
    Tensor ds = Tensor::zeros({N, c.ffn}, dtype_);
    ops::matmul_bwd(s.s, W.wd, dx, ds, G.wd, linear);
    Tensor dg = act({N, c.ffn}), du = act({N, c.ffn});
    ops::swiglu_bwd(ds, s.g, s.u, dg, du);
    Tensor dh2 = Tensor::zeros({N, c.dim}, dtype_);
    ops::matmul_bwd(s.h2, W.wg, dg, dh2, G.wg, linear);
    ops::matmul_bwd(s.h2, W.wu, du, dh2, G.wu, linear);
    Tensor dx1 = act({N, c.dim});
    ops::rmsnorm_bwd(dh2, s.x1, W.mlp_norm, s.rstd2, dx1, G.mlp_norm);
    ops::add_(dx1, dx);  // residual
    // Attention: x1 = x + attention(rope(h1 Wqᵀ), rope(h1 Wkᵀ), h1 Wvᵀ) Woᵀ, h1 = rmsnorm(x).
    Tensor d_o = Tensor::zeros({B, T, c.heads, c.head_dim}, dtype_);
    ops::matmul_bwd(s.o.view({N, dq}), W.wo, dx1, d_o.view({N, dq}), G.wo, linear);
    Tensor dq_t = act({B, T, c.heads, c.head_dim});
    Tensor dk_t = act({B, T, c.kv_heads, c.head_dim});
    Tensor dv_t = act({B, T, c.kv_heads, c.head_dim});
    ops::attention_bwd(d_o, s.q, s.k, s.v, s.o, s.lse, {}, dq_t, dk_t, dv_t);
    ops::rope_bwd(dq_t, a.positions, rope, dq_t);
    ops::rope_bwd(dk_t, a.positions, rope, dk_t);
    Tensor dh1 = Tensor::zeros({N, c.dim}, dtype_);
    ops::matmul_bwd(s.h1, W.wq, dq_t.view({N, dq}), dh1, G.wq, linear);
    ops::matmul_bwd(s.h1, W.wk, dk_t.view({N, dkv}), dh1, G.wk, linear);
    ops::matmul_bwd(s.h1, W.wv, dv_t.view({N, dkv}), dh1, G.wv, linear);
    Tensor dx0 = act({N, c.dim});
    ops::rmsnorm_bwd(dh1, s.x, W.attn_norm, s.rstd1, dx0, G.attn_norm);
    ops::add_(dx0, dx1);  // residual
    dx = dx0;
  }
  ops::embedding_bwd(inputs.view({N}), dx, dw_.embed);
}

std::vector<float> DemoModel::next_logits(const std::vector<std::int64_t>& context) {
  HONE_CHECK(!context.empty(), "demo", "next_logits needs at least one context token");
  const auto T = static_cast<std::int64_t>(context.size());
  forward(Tensor::from_vector<std::int64_t>({1, T}, context));
  const std::vector<float> all = acts_.logits.to_vector<float>();
  return std::vector<float>(all.end() - config_.vocab, all.end());
}

}  // namespace hone::demo

// LoRA: which linear layers a config selects (PEFT's matching rules), PEFT's initialisation,
// the forward and backward around each adapted layer, and merging into the base weights.
#include "peft/lora.h"

#include <algorithm>
#include <cmath>
#include <regex>

#include "hone/error.h"
#include "ops/ops.h"

namespace hone::peft {

using model::Proj;
using model::TransformerConfig;

namespace {

constexpr const char* kOp = "lora";
const ops::MatmulArgs kLinear{false, true};  // y = x · Wᵀ

struct Candidate {
  std::string key;
  std::int64_t layer;
  std::vector<Proj> projs;
};

std::vector<Candidate> candidates(const TransformerConfig& c) {
  std::vector<Candidate> out;
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    const std::string n = std::to_string(l);
    if (c.family == model::Family::gpt2) {
      const std::string h = "transformer.h." + n + ".";
      out.push_back({h + "attn.c_attn", l, {Proj::q, Proj::k, Proj::v}});
      out.push_back({h + "attn.c_proj", l, {Proj::o}});
      out.push_back({h + "mlp.c_fc", l, {Proj::up}});
      out.push_back({h + "mlp.c_proj", l, {Proj::down}});
    } else {
      const std::string h = "model.layers." + n + ".";
      out.push_back({h + "self_attn.q_proj", l, {Proj::q}});
      out.push_back({h + "self_attn.k_proj", l, {Proj::k}});
      out.push_back({h + "self_attn.v_proj", l, {Proj::v}});
      out.push_back({h + "self_attn.o_proj", l, {Proj::o}});
      out.push_back({h + "mlp.gate_proj", l, {Proj::gate}});
      out.push_back({h + "mlp.up_proj", l, {Proj::up}});
      out.push_back({h + "mlp.down_proj", l, {Proj::down}});
    }
  }
  return out;
}

// Modules of the model that are not linear layers of a block: LoRA on them is not implemented.
std::vector<std::string> unsupported_modules(const TransformerConfig& c) {
  if (c.family == model::Family::gpt2) return {"lm_head", "transformer.wte", "transformer.wpe"};
  return {"lm_head", "model.embed_tokens"};
}

bool suffix_match(const std::string& key, const std::string& name) {
  return key == name || (key.size() > name.size() && key.compare(key.size() - name.size(), name.size(), name) == 0 &&
                         key[key.size() - name.size() - 1] == '.');
}
bool list_match(const std::string& key, const std::vector<std::string>& names) {
  for (const std::string& n : names)
    if (suffix_match(key, n)) return true;
  return false;
}
std::regex compile(const std::string& pattern, const char* field) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail(kOp, cat("'", field, "' pattern \"", pattern, "\" is not a valid regular expression (", e.what(), ")"));
  }
}
// PEFT's rank_pattern / alpha_pattern lookup: the first key k with (.*\.)?(k) matching the name.
template <class V>
const V* pattern_value(const std::map<std::string, V>& patterns, const std::string& key, const char* field) {
  for (const auto& [pattern, value] : patterns)
    if (std::regex_match(key, compile("(.*\\.)?(" + pattern + ")", field))) return &value;
  return nullptr;
}

std::int64_t out_features(const TransformerConfig& c, Proj p) {
  switch (p) {
    case Proj::q: return c.q_dim();
    case Proj::k:
    case Proj::v: return c.kv_dim();
    case Proj::gate:
    case Proj::up: return c.intermediate_size;
    default: return c.hidden_size;
  }
}
std::int64_t in_features(const TransformerConfig& c, Proj p) {
  if (p == Proj::o) return c.q_dim();
  if (p == Proj::down) return c.intermediate_size;
  return c.hidden_size;
}

// t ⊙ mask (dropout_mask's: t's shape and device) as a new tensor in t's dtype. On a device
// t is bf16 and the mask f32: the product is fp32, rounded once, all without leaving the device.
Tensor masked(const Tensor& t, const Tensor& mask) {
  const Tensor out = t.clone();
  ops::mul_(out, mask);
  return out;
}

// Uniform in [lo, hi) from Philox (seed, offset), in t's dtype.
void fill_uniform(const Tensor& t, double lo, double hi, std::uint64_t seed, std::uint64_t offset) {
  const Tensor u = Tensor::empty({t.numel()}, DType::f64);
  ops::uniform_(u, seed, offset);
  std::vector<double> v = u.to_vector<double>();
  for (double& x : v) x = lo + (hi - lo) * x;
  t.copy_from(Tensor::from_vector<double>(t.shape(), v).to(t.dtype()));
}
void fill_normal(const Tensor& t, double std, std::uint64_t seed, std::uint64_t offset) {
  const Tensor u = Tensor::empty({t.numel() * 2}, DType::f64);
  ops::uniform_(u, seed, offset);
  const std::vector<double> w = u.to_vector<double>();
  std::vector<double> v(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < v.size(); ++i)  // Box–Muller
    v[i] = std * std::sqrt(-2.0 * std::log(1.0 - w[2 * i])) * std::cos(2 * M_PI * w[2 * i + 1]);
  t.copy_from(Tensor::from_vector<double>(t.shape(), v).to(t.dtype()));
}

}  // namespace

std::vector<std::string> lora_candidate_names(const TransformerConfig& model) {
  std::vector<std::string> names;
  for (const Candidate& c : candidates(model)) names.push_back(c.key);
  return names;
}

std::vector<LoraModule> resolve_lora_modules(const TransformerConfig& model, const LoraConfig& config) {
  HONE_CHECK(config.r >= 1, kOp, "'r' is ", config.r, "; it must be at least 1");
  HONE_CHECK(config.dropout >= 0 && config.dropout < 1, kOp, "'lora_dropout' is ", config.dropout, "; expected [0, 1)");
  for (const auto& [k, r] : config.rank_pattern)
    HONE_CHECK(r >= 1, kOp, "'rank_pattern' gives \"", k, "\" rank ", r, "; it must be at least 1");
  for (std::int64_t l : config.layers_to_transform)
    HONE_CHECK(l >= 0 && l < model.num_layers, kOp, "'layers_to_transform' names block ", l, " of a model with ",
               model.num_layers, " blocks");
  const bool regex = !config.target_regex.empty();
  const bool all_linear = !regex && config.target_modules.size() == 1 && config.target_modules[0] == "all-linear";
  HONE_CHECK(regex || !config.target_modules.empty(), kOp, "'target_modules' is empty");
  std::regex target;
  if (regex) target = compile(config.target_regex, "target_modules");
  for (const std::string& m : unsupported_modules(model)) {
    const bool hit = regex ? std::regex_match(m, target) : !all_linear && list_match(m, config.target_modules);
    HONE_CHECK(!hit, kOp, "'target_modules' selects ", m, ", which is not a linear layer of a block; hone puts LoRA ",
               "on the attention and MLP projections only");
  }
  std::vector<LoraModule> out;
  for (const Candidate& c : candidates(model)) {
    if (list_match(c.key, config.exclude_modules)) continue;
    const bool hit = regex ? std::regex_match(c.key, target) : all_linear || list_match(c.key, config.target_modules);
    if (!hit) continue;
    // PEFT applies layers_to_transform to list targets only.
    if (!regex && !config.layers_to_transform.empty() &&
        std::find(config.layers_to_transform.begin(), config.layers_to_transform.end(), c.layer) ==
            config.layers_to_transform.end())
      continue;
    LoraModule m;
    m.key = c.key;
    m.layer = c.layer;
    m.projs = c.projs;
    m.in = in_features(model, c.projs[0]);
    for (Proj p : c.projs) m.rows.push_back(out_features(model, p));
    for (std::int64_t r : m.rows) m.out += r;
    const std::int64_t* r = pattern_value(config.rank_pattern, c.key, "rank_pattern");
    const double* alpha = pattern_value(config.alpha_pattern, c.key, "alpha_pattern");
    m.r = r ? *r : config.r;
    m.alpha = alpha ? *alpha : config.alpha;
    m.scale = config.use_rslora ? m.alpha / std::sqrt(static_cast<double>(m.r)) : m.alpha / static_cast<double>(m.r);
    out.push_back(std::move(m));
  }
  if (out.empty()) {
    std::string what = regex ? "\"" + config.target_regex + "\"" : "";
    for (std::size_t i = 0; !regex && i < config.target_modules.size(); ++i) what += (i ? ", " : "") + config.target_modules[i];
    const auto names = lora_candidate_names(model);
    fail(kOp, cat("'target_modules' (", what, ") selects no linear layer of this ", model::family_name(model.family),
                  " model; its layers are named like ", names.size() > 3 ? names[0] + ", " + names[3] : names[0]));
  }
  return out;
}

LoraAdapter::LoraAdapter(const model::Transformer& base, const LoraConfig& config)
    : config_(config),
      dtype_(base.dtype()),
      device_(base.device()),
      gpt2_(base.config().family == model::Family::gpt2) {
  modules_ = resolve_lora_modules(base.config(), config);
  std::int64_t total = 0;
  for (const LoraModule& m : modules_) total += m.r * (m.in + m.out);
  // On a device: bf16 values (the compute copy of the trainer's fp32 master weights) and f32
  // gradients, which the ops accumulate from bf16 activations without rounding to bf16.
  params_ = Tensor::zeros({total}, dtype_, device_);
  grads_ = Tensor::zeros({total}, base.grad_dtype(), device_);
  by_layer_.resize(static_cast<std::size_t>(base.config().num_layers));
  std::int64_t at = 0;
  for (std::size_t i = 0; i < modules_.size(); ++i) {
    LoraModule& m = modules_[i];
    auto take = [&](Shape s, Tensor& value, Tensor& grad, const char* which) {
      const std::int64_t n = shape_numel(s);
      value = params_.slice(at, at + n).view(s);
      grad = grads_.slice(at, at + n).view(s);
      named_.push_back({"base_model.model." + m.key + "." + which + ".weight", value, grad});
      at += n;
    };
    take({m.r, m.in}, m.A, m.dA, "lora_A");
    take({m.out, m.r}, m.B, m.dB, "lora_B");
    by_layer_[static_cast<std::size_t>(m.layer)].push_back(i);
  }
  saved_.resize(modules_.size());
}

void LoraAdapter::init() {
  for (std::size_t i = 0; i < modules_.size(); ++i) {
    const LoraModule& m = modules_[i];
    const std::uint64_t a_offset = static_cast<std::uint64_t>(2 * i) << 32, b_offset = a_offset + (1ull << 32);
    // kaiming_uniform_(a = √5) on an (r, in) weight: bound = √(2 / (1 + 5)) · √(3 / in) = 1 / √in.
    const double bound = 1.0 / std::sqrt(static_cast<double>(m.in));
    if (config_.init == LoraInit::gaussian)
      fill_normal(m.A, 1.0 / static_cast<double>(m.r), config_.seed, a_offset);
    else
      fill_uniform(m.A, -bound, bound, config_.seed, a_offset);
    if (config_.init == LoraInit::none) {  // B as nn.Linear's default: bound 1 / √r
      const double b = 1.0 / std::sqrt(static_cast<double>(m.r));
      fill_uniform(m.B, -b, b, config_.seed, b_offset);
    } else {
      m.B.fill(0.0);
    }
  }
}

void LoraAdapter::set_training(bool training, std::uint64_t stream) {
  training_ = training;
  stream_ = stream;
}

Tensor LoraAdapter::dropout_mask(std::size_t m, std::int64_t rows) const {
  const LoraModule& mod = modules_[m];
  // Drawn where the model is: Philox gives the same uniforms in f32, f64 and on every device,
  // and dropout_mask_ compares them with p exactly, so a device model drops what the CPU model
  // does. The device takes f32 uniforms; the CPU the model's dtype.
  const DType dtype = device_.is_cpu() ? dtype_ : DType::f32;
  const Tensor u = Tensor::empty({rows, mod.in}, dtype, device_);
  // Each (forward, module) pair reads its own range of Philox blocks.
  const std::uint64_t offset = (stream_ * modules_.size() + m) << 32;
  ops::uniform_(u, config_.seed ^ 0xd5a7c0de5eedull, offset);
  ops::dropout_mask_(u, config_.dropout);
  return u;
}

namespace {
// Index in `projs` of each of the module's blocks; empty when the module belongs to another group.
std::vector<std::size_t> blocks_in(const LoraModule& m, const std::vector<Proj>& projs) {
  std::vector<std::size_t> where;
  for (Proj p : m.projs) {
    const auto it = std::find(projs.begin(), projs.end(), p);
    if (it == projs.end()) return {};
    where.push_back(static_cast<std::size_t>(it - projs.begin()));
  }
  return where;
}
}  // namespace

// u = dropout(x) · Aᵀ; out_b += scale · u · B_bᵀ for each output block b.
void LoraAdapter::linear_fwd(std::int64_t layer, const std::vector<Proj>& projs, const Tensor& x,
                             const std::vector<Tensor>& outs) {
  if (merged_) return;  // the term is in the base weights
  const std::int64_t N = x.size(0);
  for (std::size_t i : by_layer_[static_cast<std::size_t>(layer)]) {
    const LoraModule& m = modules_[i];
    const std::vector<std::size_t> where = blocks_in(m, projs);
    if (where.empty()) continue;
    Saved& s = saved_[i];
    s.xd = Tensor();
    if (training_ && config_.dropout > 0) s.xd = masked(x, dropout_mask(i, N));
    s.u = Tensor::empty({N, m.r}, dtype_, device_);
    ops::matmul(s.xd.defined() ? s.xd : x, m.A, s.u, kLinear);
    std::int64_t row = 0;
    for (std::size_t b = 0; b < where.size(); ++b) {
      ops::matmul(s.u, m.B.slice(row, row + m.rows[b]), outs[where[b]], {false, true, m.scale, 1.0});
      row += m.rows[b];
    }
  }
}

// du = scale · Σ_b dout_b · B_b;  dB_b += scale · dout_bᵀ · u;  dA += duᵀ · xd;
// din += (du · A) ⊙ mask (the mask is 1 without dropout).
void LoraAdapter::linear_bwd(std::int64_t layer, const std::vector<Proj>& projs, const Tensor& x,
                             const std::vector<Tensor>& douts, const Tensor& din) {
  HONE_CHECK(!merged_, kOp, "the adapter is merged into the base weights; unmerge it before training");
  const std::int64_t N = x.size(0);
  for (std::size_t i : by_layer_[static_cast<std::size_t>(layer)]) {
    const LoraModule& m = modules_[i];
    const std::vector<std::size_t> where = blocks_in(m, projs);
    if (where.empty()) continue;
    const Saved& s = saved_[i];
    HONE_CHECK(s.u.defined() && s.u.size(0) == N, kOp, "backward of ", m.key, " without its forward");
    const Tensor du = Tensor::zeros({N, m.r}, dtype_, device_);  // an activation gradient: x's dtype
    std::int64_t row = 0;
    for (std::size_t b = 0; b < where.size(); ++b) {
      ops::matmul_bwd(s.u, m.B.slice(row, row + m.rows[b]), douts[where[b]], du, m.dB.slice(row, row + m.rows[b]),
                      {false, true, m.scale, 0.0});
      row += m.rows[b];
    }
    if (s.xd.defined()) {
      const Tensor dxd = Tensor::zeros({N, m.in}, dtype_, device_);
      ops::matmul_bwd(s.xd, m.A, du, dxd, m.dA, kLinear);
      ops::mul_(dxd, dropout_mask(i, N));
      ops::add_(din, dxd);
    } else {
      ops::matmul_bwd(x, m.A, du, din, m.dA, kLinear);
    }
  }
}

void LoraAdapter::fold(model::Transformer& base, double sign) {
  HONE_CHECK(base.device() == device_ && base.dtype() == dtype_, kOp, "the adapter was made for a ",
             dtype_name(dtype_), " model on ", device_.str(), "; this model is ", dtype_name(base.dtype()), " on ",
             base.device().str());
  for (const LoraModule& m : modules_) {
    std::int64_t row = 0;
    for (std::size_t b = 0; b < m.projs.size(); ++b) {
      // (rows_b, in), written in place; on CUDA bf16 with beta = 1, summed in fp32 and rounded once.
      const Tensor& w = base.weight(m.layer, m.projs[b]);
      ops::matmul(m.B.slice(row, row + m.rows[b]), m.A, w, {false, false, sign * m.scale, 1.0});
      row += m.rows[b];
    }
  }
}

void LoraAdapter::merge(model::Transformer& base) {
  HONE_CHECK(!merged_, kOp, "the adapter is already merged");
  fold(base, 1.0);
  merged_ = true;
}

void LoraAdapter::unmerge(model::Transformer& base) {
  HONE_CHECK(merged_, kOp, "the adapter is not merged");
  fold(base, -1.0);
  merged_ = false;
}

}  // namespace hone::peft

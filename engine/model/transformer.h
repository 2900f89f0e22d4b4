// Transformer: a decoder-only model of any supported family (model/config.h) with its
// parameters in one slab, an explicit forward and backward over packed sequences, and
// Hugging Face checkpoint loading and saving (names, layouts, tied embeddings). The base can be
// frozen (no gradient slab; backward still carries input gradients through it) with an Adapter
// (engine/peft: LoRA, prompt tuning) holding what is trained instead.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hone/safetensors.h"
#include "hone/tensor.h"
#include "model/config.h"

namespace hone::model {

// Tokens to run: ids (N) i64 with cu_seqlens (S + 1) i32 and positions (N) i64 — several
// sequences packed end to end — or ids (B, T), which means B sequences of length T.
struct Batch {
  Tensor ids;
  Tensor positions;   // optional with (B, T) ids: 0..T−1 in every row
  Tensor cu_seqlens;  // optional with (B, T) ids
};

// The linear layers of a block, in Hugging Face terms. GPT-2: q, k, v are the three column
// blocks of attn.c_attn, o is attn.c_proj, up is mlp.c_fc and down is mlp.c_proj.
enum class Proj { q, k, v, o, gate, up, down };

// A named tensor and its gradient (undefined while it is frozen).
struct Param {
  std::string name;
  Tensor value, grad;
};

// Where a named view (a Param's value) starts in the slab it views, in elements: the same offset
// holds the tensor's moments and master weights in slabs of that shape.
inline std::int64_t offset_in(const Tensor& view, const Tensor& slab) {
  return (static_cast<const char*>(view.raw()) - static_cast<const char*>(slab.raw())) /
         static_cast<std::int64_t>(dtype_size(slab.dtype()));
}

// What an adapter adds to the model. Every linear layer goes through linear_fwd/linear_bwd
// (projections that read the same input come as one group, so a fused layer such as GPT-2's
// c_attn sees all of its outputs at once); prompt() is prepended to every sequence.
class Adapter {
 public:
  virtual ~Adapter() = default;
  // The trained tensors: one slab (P) in the model's dtype on its device, its gradient slab (the
  // model's grad_dtype(): f32 on CUDA), named views.
  virtual const Tensor& params() const = 0;
  virtual const Tensor& grads() const = 0;
  virtual const std::vector<Param>& named_params() const = 0;
  // Projections `projs` of block `layer` all read x (N, in); outs[j] (N, out_j) already hold
  // the base layer's output and receive the adapter's term. Keeps what linear_bwd needs.
  virtual void linear_fwd(std::int64_t layer, const std::vector<Proj>& projs, const Tensor& x,
                          const std::vector<Tensor>& outs) {}
  // Given douts of the same group: din (+=) the input gradient, adapter gradients (+=).
  virtual void linear_bwd(std::int64_t layer, const std::vector<Proj>& projs, const Tensor& x,
                          const std::vector<Tensor>& douts, const Tensor& din) {}
  // Virtual token embeddings (Nv, D) placed before every sequence; undefined for none.
  virtual Tensor prompt() const { return {}; }
  // The gradient of prompt() summed over the sequences of the last forward (+=).
  virtual void prompt_bwd(const Tensor& dprompt) {}
  // Training mode (dropout on); `stream` keys this forward's random numbers (the trainer passes
  // the step and micro-batch, so a resumed run draws the same).
  virtual void set_training(bool training, std::uint64_t stream) {}
};

class Transformer {
 public:
  using Param = model::Param;
  // Parameters in `dtype` on `device`, zero until loaded or initialised: f32 or f64 on the CPU,
  // bf16 on CUDA (activations in the same dtype; gradients, norm and attention statistics and
  // losses in f32 there: grad_dtype(), stat_dtype()). With train_base false no gradient slab
  // exists (see set_train_base).
  Transformer(TransformerConfig config, DType dtype, bool train_base = true, Device device = Device::cpu());
  static Transformer from_pretrained(const std::string& dir, DType dtype, bool train_base = true,
                                     Device device = Device::cpu());

  // Reads every parameter from a checkpoint with Hugging Face names (converted to `dtype`);
  // a missing or wrongly shaped tensor is an error naming it; tensors the model does not use
  // are listed in the returned vector.
  std::vector<std::string> load(const SafetensorsCheckpoint& checkpoint);
  // The parameters (or their gradients) under Hugging Face names and layouts, in `as`.
  std::vector<std::pair<std::string, Tensor>> hf_state(bool gradients = false, DType as = DType::f32) const;
  // Writes config.json and the weights (Hugging Face names and layouts) into `dir`, in
  // `storage` (default: the checkpoint's own dtype from config.json): model.safetensors, or
  // shards of at most `max_shard_bytes` with model.safetensors.index.json.
  void save_pretrained(const std::string& dir, std::optional<DType> storage = std::nullopt,
                       std::uint64_t max_shard_bytes = 5'000'000'000ull) const;
  // Normal(0, std) weights from Philox (seed), norms at one, biases at zero (std = 0: zero
  // weights, with no temporary memory).
  void init_random(std::uint64_t seed, double std = 0.02);

  // Logits (N, V) for every token, in dtype() on device() (batch tensors may be on the host or
  // the device); keeps what backward needs. With an adapter's prompt, its Nv
  // virtual tokens precede every sequence at positions 0…Nv−1 and the sequence's own positions
  // shift by Nv (as PEFT does); only the real tokens get logits.
  Tensor forward(const Batch& batch);
  // The trainable gradients = d(Σ dlogits ⊙ logits)/d(trainable) for the last forward:
  // overwritten, or added to those already there with `accumulate`. A frozen base computes
  // input gradients only (no weight gradient is formed).
  void backward(const Tensor& dlogits, bool accumulate = false);
  // The next-token loss without materialising all logits: Σ_n scale · CE(logits[n], targets[n])
  // over the tokens whose target is not `ignore_index`, the logits formed `chunk` rows at a time.
  // With `backward`, the gradients too (those of backward() with dlogits = scale · (softmax −
  // onehot) on the counted rows), overwritten or accumulated. Equals forward + cross-entropy
  // (+ backward) up to rounding; memory holds one chunk of logits instead of N × V.
  double loss(const Batch& batch, const Tensor& targets, double scale, bool backward, bool accumulate = false,
              std::int64_t ignore_index = -100, std::int64_t chunk = 1024);
  // Activation checkpointing: forward keeps only each block's input and backward recomputes the
  // block before differentiating it — activation memory of L·N·D instead of all the blocks'
  // intermediates, for one more forward of the blocks. The results are bitwise the same.
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }
  bool activation_checkpointing() const { return checkpointing_; }

  // Frozen (false): the gradient slab is released and backward forms no weight gradient;
  // trainable (true): a zero gradient slab is allocated.
  void set_train_base(bool train);
  bool train_base() const { return grads_.defined(); }
  // Attaches an adapter (nullptr detaches it). The base must be frozen first.
  void set_adapter(std::shared_ptr<Adapter> adapter);
  Adapter* adapter() const { return adapter_.get(); }
  // What an optimizer updates: the adapter's tensors when one is attached, else the base's
  // parameters (an error when the base is frozen and no adapter is attached).
  const Tensor& trainable_params() const;
  const Tensor& trainable_grads() const;
  const std::vector<Param>& trainable_named() const;

  const TransformerConfig& config() const { return config_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  // The gradient slab's dtype: the parameters' on the CPU, f32 on CUDA (bf16 weights, f32
  // gradients, so accumulation over micro-batches does not round to bf16 at every step).
  DType grad_dtype() const { return device_.is_cuda() ? DType::f32 : dtype_; }
  // Saved statistics (norm rstd/mean, attention lse) and per-token losses: f32 on CUDA.
  DType stat_dtype() const { return device_.is_cuda() ? DType::f32 : dtype_; }
  const Tensor& params() const { return params_; }  // (P)
  const Tensor& grads() const { return grads_; }    // (P); undefined while the base is frozen
  // Internal name (e.g. "layers.0.wq") → parameter view and gradient view (undefined while
  // frozen). Matrices are (out, in) for every family; GPT-2's Conv1D layout and fused c_attn
  // exist only in checkpoints (hf_io).
  const std::vector<Param>& named_params() const { return named_; }
  // The weight (out, in) of a projection of block `layer`, and its bias (undefined if none).
  const Tensor& weight(std::int64_t layer, Proj proj) const;
  Tensor bias(std::int64_t layer, Proj proj) const;
  // The Hugging Face tensor that holds internal parameter `internal` (e.g. "layers.0.wq" →
  // "model.layers.0.self_attn.q_proj.weight"); `internal` itself when none does.
  std::string hf_name(const std::string& internal) const;

 private:
  struct Layer;
  struct Acts;
  void forward_trunk(const Batch& batch);            // up to the final hidden states (h_real)
  void block_fwd(std::int64_t l, Layer& s, Tensor& x_out);  // s.x is the block's input
  void norm_fwd(const Tensor& in, const std::string& w, Tensor& out, Tensor& mean, Tensor& rstd) const;
  // Parameter gradients of one backward pass. With accumulate, every op adds to the gradients
  // already there. Otherwise the first op producing a parameter's gradient writes it (take_fresh
  // says whether this one is the first) and later ops add to it; an op that can only add gets the
  // gradient zeroed first (grad_to_add); finish_grads zeroes whatever no op produced. The slab is
  // never cleared as a whole, and the first write does not read it.
  void begin_grads(bool accumulate);
  bool take_fresh(const std::string& name);
  bool take_fresh(std::size_t index);  // by position in named_
  const Tensor& grad_to_add(const std::string& name);
  void finish_grads();
  void backward_trunk(Tensor dh);                    // from d(h_real)
  bool checkpointing_ = false;
  void build_views(bool train_base);
  const Tensor& param(const std::string& name) const;
  const Tensor& grad(const std::string& name) const;
  void linear_fwd(std::int64_t layer, const std::vector<Proj>& projs, const Tensor& x,
                  const std::vector<Tensor>& outs);
  // din += the input gradient of every projection, or, with din_fresh, din = their sum (din's
  // old values are not read).
  void linear_bwd(std::int64_t layer, const std::vector<Proj>& projs, const Tensor& x,
                  const std::vector<Tensor>& douts, const Tensor& din, bool din_fresh);
  std::size_t param_index(const std::string& name) const;

  TransformerConfig config_;
  DType dtype_;
  Device device_;
  Tensor params_, grads_;
  std::vector<Param> named_;
  std::vector<char> grad_fresh_;  // per named_: not yet produced in this backward pass
  std::shared_ptr<Adapter> adapter_;
  struct ActsDeleter {
    void operator()(Acts* a) const;
  };
  std::unique_ptr<Acts, ActsDeleter> acts_;
};

}  // namespace hone::model

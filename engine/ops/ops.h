// Every op the models use, named once. Each function validates its arguments (shape, dtype,
// device; errors name the op and the argument) and dispatches on the device: the CPU reference
// in engine/cpu, the CUDA kernels in kernels/ once they exist.
//
// Conventions. Tensors are contiguous and row-major. Inputs are `const Tensor&`; outputs are
// also `const Tensor&` (a Tensor is a handle; the op writes through it) and must be allocated
// by the caller with the documented shape and the inputs' dtype. The CPU reference supports
// f32 and f64. Every backward says whether it overwrites (=) or accumulates (+=) each
// gradient: activation gradients overwrite, parameter gradients accumulate. An undefined
// gradient output (Tensor{}) is skipped. Outputs must not overlap inputs unless the op says
// so (rope allows y = x; the norms and activations read each element before writing it).
// Statistics saved for a backward (rstd, mean, lse) are in the inputs' dtype on the CPU and f32
// on CUDA. On CUDA each family takes the dtypes its "CUDA:" line lists (parameter gradients may
// be f32 for bf16 activations); ops enqueue on the device's current stream and return without
// waiting, except those that return a host value (grad_norm, clip_grad_norm). Ids and targets
// on a device are not range-checked (that would need a host wait).
#pragma once
#include <cstdint>
#include <vector>

#include "hone/tensor.h"

namespace hone::ops {

// ---------------------------------------------------------------- matmul
// c = alpha · op(a) · op(b) + beta · c, op(x) = xᵀ when trans_x.
// a: (M, K) or (B, M, K) — (K, M) / (B, K, M) when trans_a; b: (K, N) or (B, K, N) — (N, K) /
// (B, N, K) when trans_b; c: (M, N), or (B, M, N) when a or b is batched. A 2-D operand is
// shared across the batch. beta = 0 ignores c's prior contents (NaN-safe).
struct MatmulArgs {
  bool trans_a = false;
  bool trans_b = false;
  double alpha = 1.0;
  double beta = 0.0;
};
void matmul(const Tensor& a, const Tensor& b, const Tensor& c, const MatmulArgs& args = {});
// Gradients of c = alpha · op(a) · op(b) (args.beta is ignored): da += alpha · dc · op(b)ᵀ
// (transposed back when trans_a), db += alpha · op(a)ᵀ · dc; a 2-D operand of a batched
// product receives the sum over the batch. da/db accumulate (+=) by default; grads.da = false
// (grads.db = false) writes da (db) instead, never reading its old values.
struct MatmulGradAccumulate {
  bool da = true, db = true;
};
void matmul_bwd(const Tensor& a, const Tensor& b, const Tensor& dc, const Tensor& da,
                const Tensor& db, const MatmulArgs& args = {}, MatmulGradAccumulate grads = {});

// ---------------------------------------------------------------- norms
// x: (..., D) viewed as (N, D). rstd, mean: (N).
// CUDA: x, w, b, y, dy, dx bf16 with D ≤ 16384; rstd, mean f32; dw, db f32 or bf16 (one dtype),
// summed deterministically.
// RMSNorm: y = x · rstd · w, rstd = 1 / sqrt(mean(x²) + eps).
void rmsnorm_fwd(const Tensor& x, const Tensor& w, double eps, const Tensor& y, const Tensor& rstd);
// dx (=), dw (+=).
void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                 const Tensor& dx, const Tensor& dw);
// LayerNorm: y = (x − mean) · rstd · w + b, rstd = 1 / sqrt(var(x) + eps) (biased variance).
void layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, double eps, const Tensor& y,
                   const Tensor& mean, const Tensor& rstd);
// dx (=), dw (+=), db (+=).
void layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                   const Tensor& rstd, const Tensor& dx, const Tensor& dw, const Tensor& db);

// ---------------------------------------------------------------- RoPE
// Rotary position embedding, Hugging Face's rotate-half pairing: for i < hd/2 the pair is
// (x[i], x[i + hd/2]) rotated by angle pos · inv_freq[i].
// CUDA: x, y, dy, dx bf16, hd ≤ 8192; positions on the device (the table is copied there once).
struct RopeScaling {
  enum class Kind { none, llama3 };
  Kind kind = Kind::none;
  double factor = 8.0;             // llama3
  double low_freq_factor = 1.0;    // llama3
  double high_freq_factor = 4.0;   // llama3
  double original_max_position = 8192;  // llama3: original_max_position_embeddings
};
struct RopeArgs {
  double theta = 10000.0;
  RopeScaling scaling;
};
// inv_freq[i] = theta^(−2i/hd), i < hd/2, then the scaling rule.
std::vector<double> rope_inv_freq(std::int64_t head_dim, const RopeArgs& args);
// x: (..., H, hd), hd even; positions: i32/i64 with shape x.shape[:-2]. y like x; y may be x.
void rope_fwd(const Tensor& x, const Tensor& positions, const RopeArgs& args, const Tensor& y);
// dx (=): the inverse rotation of dy. dx may be dy.
void rope_bwd(const Tensor& dy, const Tensor& positions, const RopeArgs& args, const Tensor& dx);

// ---------------------------------------------------------------- activations
// CUDA: every tensor bf16.
// out = silu(gate) · up, silu(g) = g · sigmoid(g). All the same shape.
void swiglu_fwd(const Tensor& gate, const Tensor& up, const Tensor& out);
// dgate (=), dup (=).
void swiglu_bwd(const Tensor& dout, const Tensor& gate, const Tensor& up, const Tensor& dgate,
                const Tensor& dup);
// GELU, tanh approximation: y = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
void gelu_fwd(const Tensor& x, const Tensor& y);
// dx (=).
void gelu_bwd(const Tensor& dy, const Tensor& x, const Tensor& dx);

// ---------------------------------------------------------------- elementwise
// CUDA: f32 or bf16 (alpha applied in f32); bias_bwd's db f32, or bf16 for a bf16 dy; mul_'s x
// and m each f32 or bf16, in any mix (fp32 product, x rounded once); dropout_mask_'s u f32.
// dst += alpha · src (residual connections, gradient accumulation). Same shape and dtype.
void add_(const Tensor& dst, const Tensor& src, double alpha = 1.0);
// x *= alpha.
void scale_(const Tensor& x, double alpha);
// x *= m element by element (a dropout mask). Same shape; on the CPU the same dtype. m may be x.
void mul_(const Tensor& x, const Tensor& m);
// Dropout's keep mask from uniforms u in [0, 1) (ops::uniform_), in place: u = 1 / (1 − p) where
// u ≥ p, else 0; p in [0, 1). The comparison is exact (u against p as a double) on every device.
void dropout_mask_(const Tensor& u, double p);
// x[n, :] += b for x (..., F) viewed as (N, F), b (F): a linear layer's bias.
void bias_add_(const Tensor& x, const Tensor& b);
// db (+=) = Σ_n dy[n, :], summed in fixed row chunks (deterministic).
void bias_bwd(const Tensor& dy, const Tensor& db);

// ---------------------------------------------------------------- embedding
// ids: i32/i64 (...), each in [0, V); table: (V, D); out: (..., D).
// CUDA: table, out bf16 or f32; dout bf16 with dtable f32 or bf16 (summed in token order). An
// id outside [0, V) gives a zero row forward and is skipped backward.
void embedding_fwd(const Tensor& ids, const Tensor& table, const Tensor& out);
// dtable (+=): dtable[ids[n]] += dout[n], summed in token order (deterministic).
void embedding_bwd(const Tensor& ids, const Tensor& dout, const Tensor& dtable);

// ---------------------------------------------------------------- attention
// Scaled dot-product attention with grouped-query heads (query head h reads key/value head
// h / (Hq / Hkv)). Padded layout: q (B, T, Hq, hd), k/v (B, T, Hkv, hd), out like q,
// lse (B, Hq, T). Packed variable-length layout (cu_seqlens defined, i32 (S + 1), cumulative
// sequence lengths starting at 0 and ending at N): q (N, Hq, hd), k/v (N, Hkv, hd),
// lse (Hq, N); tokens attend only within their own sequence. lse is the natural-log
// log-sum-exp of the scaled scores of each query row. Query i of a sequence sees key j when
// (!causal or j ≤ i) and (window = 0 or i − j < window): a window of W keeps the W most recent
// keys, the query's own included (Mistral's sliding window).
// CUDA: q, k, v, out, dout, dq, dk, dv bf16, lse f32, hd 32, 64, 96 or 128; cu_seqlens and
// cache_seqlens i32 on q's device (their values are checked on the host only). The kernels size
// their grid by the longest sequence: give max_seqlen when you know it (it is trusted on CUDA and
// checked on the CPU); without it the op bounds it by N when S ≤ 4 (at most 4× the blocks, the
// extra ones exit at once) and otherwise copies cu_seqlens to the host, which waits for the
// stream. dq, dk and dv are computed together (undefined ones go to scratch memory).
struct AttentionArgs {
  double scale = 0.0;   // 0 → 1/sqrt(hd)
  bool causal = true;
  Tensor cu_seqlens;    // undefined → padded layout
  std::int64_t window = 0;  // ≥ 0; 0 → no sliding window
  // Packed layout: 0, or at least the longest sequence (cu_seqlens[s + 1] − cu_seqlens[s]).
  std::int64_t max_seqlen = 0;
};
void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args,
                   const Tensor& out, const Tensor& lse);
// dq (=), dk (=), dv (=); dk/dv sum over the query heads of their group.
void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                   const Tensor& out, const Tensor& lse, const AttentionArgs& args,
                   const Tensor& dq, const Tensor& dk, const Tensor& dv);
// Decode: the newest Tq tokens of each of B sequences against its KV cache. q (B, Tq, Hq, hd);
// k/v (B, C, Hkv, hd) whose first cache_seqlens[b] rows are sequence b's keys and values, the new
// tokens' included (Tq ≤ cache_seqlens[b] ≤ C); cache_seqlens i32 (B) on q's device, or
// undefined when every sequence holds C rows. Query t of sequence b is at position
// cache_seqlens[b] − Tq + t and sees key j by the rule above (args.scale, causal, window;
// args.cu_seqlens must be undefined), so out (=, like q) and lse (=, optional: (B, Hq, Tq)) are
// the last Tq rows of attention_fwd over the whole sequence.
void attention_decode(const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& cache_seqlens, const AttentionArgs& args, const Tensor& out,
                      const Tensor& lse = Tensor{});

// ---------------------------------------------------------------- loss
// logits (N, V); targets i32/i64 (N) in [0, V) or == ignore_index.
// losses[n] = w[n] · (lse[n] − logits[n, t[n]]), 0 where ignored; lse (N).
// CUDA: logits, dlogits bf16 or f32; weights, losses, lse, dlosses f32. A target outside
// [0, V) that is not ignore_index gives a NaN loss and gradient row.
struct CrossEntropyArgs {
  std::int64_t ignore_index = -100;
  Tensor weights;  // optional per-token weights (N), logits' dtype
};
void cross_entropy_fwd(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                       const Tensor& losses, const Tensor& lse);
// dlogits (=) = dlosses[n] · w[n] · (softmax(logits[n]) − onehot(t[n])); zero rows where ignored.
// dlogits may be logits itself: the gradient then replaces the logits, in place.
void cross_entropy_bwd(const Tensor& dlosses, const Tensor& logits, const Tensor& targets,
                       const Tensor& lse, const CrossEntropyArgs& args, const Tensor& dlogits);
// Both at once for dlosses[n] = dloss (a loss scaled by one constant, as in training): the
// forward's outputs and dlogits, each row's gradient written while the row is still in cache
// (CPU) or in one launch (CUDA); the same values as cross_entropy_fwd then cross_entropy_bwd.
// dlogits may be logits itself.
void cross_entropy_fwd_bwd(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                           double dloss, const Tensor& losses, const Tensor& lse,
                           const Tensor& dlogits);

// ---------------------------------------------------------------- optimizer
// AdamW with decoupled weight decay and bias correction (PyTorch's update order):
//   p ← p · (1 − lr·wd);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + eps)
// param/m/v: fp32 (master) or f64; grad: same shape, param's dtype. `step` is t, from 1.
// CUDA: param, m, v f32; grad f32 or bf16 (the update in fp32).
struct AdamWArgs {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  std::int64_t step = 1;
  // The gradient is read as g · grad_scale and left unchanged: a clipping coefficient applied
  // inside the update, saving a pass over the gradients (see clip_coefficient). > 0, finite.
  // CUDA: a value other than 1 is uploaded, and the call waits for its kernels.
  double grad_scale = 1.0;
};
// param_copy (optional, param's shape and device): receives the updated weights in its own dtype
// (CUDA: bf16, written by the same kernel) — the compute copy of fp32 master weights.
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWArgs& args, const Tensor& param_copy = {});
// The same step over a group of tensors sharing the hyper-parameters (e.g. every matrix of a
// model): the same values as adamw_step on each in turn. CUDA: every tensor on one device, one
// multi-tensor launch per gradient dtype instead of one per tensor. Errors name tensors[i].
struct AdamWTensors {
  Tensor param, grad, m, v;
  Tensor param_copy;  // optional, as above
};
void adamw_step(const std::vector<AdamWTensors>& tensors, const AdamWArgs& args);
// sqrt(Σ g²) over all tensors, accumulated in f64 in a fixed order. CUDA: grads f32 or bf16,
// reduced on the device in a fixed order (fp32 within chunks); waits for the result.
double grad_norm(const std::vector<Tensor>& grads);
// Scales every gradient by max_norm / (norm + 1e-6) when norm > max_norm. Returns the norm
// before clipping.
double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm);
// The factor clip_grad_norm scales the gradients by, from their norm: max_norm / (norm + 1e-6)
// when norm > max_norm, else 1.
double clip_coefficient(double norm, double max_norm);

// ---------------------------------------------------------------- random
// x[i] = uniform in [0, 1) from Philox (seed, offset), element i = word i % 4 of block
// offset + i / 4 — identical on every device. x: f32 (CPU also f64: the same f32 values).
void uniform_(const Tensor& x, std::uint64_t seed, std::uint64_t offset);

// ---------------------------------------------------------------- sampling
// One token per row of logits (R, V) (f32/f64; f64 is rounded to f32 first) into out: i64 (R).
// The exact rule is in engine/cpu/sampling.h: greedy (lowest index of the largest logit) when
// temperature is 0 or top_k is 1; otherwise softmax(logits / temperature) restricted to the
// top_k most likely tokens and then to the shortest most-likely prefix holding top_p of their
// mass, drawn with Philox: row r uses word r % 4 of block offset + r / 4 under seed (advance
// offset by ceil(R / 4) per step). Probabilities are 24-bit fixed point relative to the most
// likely token, so every device draws the same token for the same (seed, offset).
// CUDA: logits f32 or bf16 (as f32 logits of the same values on the CPU); out i64 on the device.
struct SampleArgs {
  double temperature = 1.0;  // ≥ 0; 0 → greedy
  std::int64_t top_k = 0;    // ≥ 0; 0 → off
  double top_p = 1.0;        // in (0, 1]; 1 → off
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;  // first Philox block of this step
};
void sample(const Tensor& logits, const SampleArgs& args, const Tensor& out);
// out: i64 (R) = the lowest index of the largest logit of each row (NaN counts as −inf).
void argmax(const Tensor& logits, const Tensor& out);

}  // namespace hone::ops

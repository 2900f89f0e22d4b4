// hone::Trainer: the step (packed batch → micro-batches → token-weighted gradients → clip →
// AdamW), evaluation, and the training loop with metrics and checkpoints. It updates what the
// model says is trainable: every base weight, or only an attached adapter's tensors (LoRA,
// prompt tuning) over a frozen base, with AdamW moments for exactly those.
#include "hone/trainer.h"

#include <chrono>
#include <cmath>
#include <fstream>

#include "hone/error.h"
#include "hone/log.h"
#include "core/caching_allocator.h"
#include "hone/peft.h"
#include "ops/ops.h"
#include "peft/adapter_io.h"
#include "train/checkpoint.h"
#include "train/internal.h"

namespace hone {

using Clock = std::chrono::steady_clock;

struct Trainer::State {
  Model& model;
  ExampleSource& train;
  ExampleSource* eval;
  TrainConfig config;
  std::int32_t pad_id;
  std::unique_ptr<Communicator> own_comm;
  Communicator* comm;
  data::Packer packer;
  Tensor m, v;  // AdamW moments, the trainable slab's shape, f32 (f64 for an f64 model)
  // fp32 master weights of a bf16 trainable slab (the model on a device): AdamW updates them and
  // writes their bf16 rounding into the model's weights. Undefined when the slab is f32/f64.
  Tensor master;
  std::int64_t step = 0, total = 0;
  std::function<void(std::string_view)> checkpoint_hook;
  std::function<void(Model&)> gradient_hook;

  State(Model& model_, ExampleSource& train_, TrainConfig c, std::int32_t pad, ExampleSource* eval_, Communicator* comm_)
      : model(model_), train(train_), eval(eval_), config(std::move(c)), pad_id(pad), comm(comm_),
        packer(config.batch_rows * config.grad_accum, config.seq_len, pad, !config.packing) {}
  model::Transformer& t() { return model.transformer(); }
};

namespace {

void validate(const TrainConfig& c) {
  auto positive = [](const char* name, double v) {
    HONE_CHECK(v > 0, "train", "config '", name, "' is ", v, "; it must be positive");
  };
  positive("lr", c.lr);
  positive("batch_rows", static_cast<double>(c.batch_rows));
  positive("loss_chunk", static_cast<double>(c.loss_chunk));
  positive("grad_accum", static_cast<double>(c.grad_accum));
  HONE_CHECK(c.seq_len >= 2, "train", "config 'seq_len' is ", c.seq_len, "; it must be at least 2");
  HONE_CHECK(c.steps >= 0, "train", "config 'steps' is ", c.steps, "; it must not be negative");
  HONE_CHECK(c.steps > 0 || c.epochs > 0, "train", "config 'epochs' is ", c.epochs, " and 'steps' is 0; give one of them");
  HONE_CHECK(c.warmup_steps >= 0, "train", "config 'warmup_steps' is ", c.warmup_steps);
  HONE_CHECK(c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1, "train", "config 'min_lr_ratio' is ", c.min_lr_ratio, "; expected [0, 1]");
  HONE_CHECK(c.weight_decay >= 0, "train", "config 'weight_decay' is ", c.weight_decay);
  HONE_CHECK(c.max_grad_norm >= 0, "train", "config 'max_grad_norm' is ", c.max_grad_norm);
  HONE_CHECK(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1, "train", "config betas (", c.beta1,
             ", ", c.beta2, ") must lie in [0, 1)");
  HONE_CHECK(c.eval_every >= 0 && c.eval_batches >= 1, "train", "config 'eval_every' ", c.eval_every,
             " / 'eval_batches' ", c.eval_batches);
  HONE_CHECK(c.save_every >= 0 && c.keep_last >= 1, "train", "config 'save_every' ", c.save_every,
             " / 'keep_last' ", c.keep_last, " (keep at least 1)");
  HONE_CHECK(c.save_every == 0 || !c.output_dir.empty(), "train", "config 'save_every' is ", c.save_every,
             " but no output_dir is set");
}

// Steps that cover `epochs` passes: one epoch is packed (without training) to count its batches.
std::int64_t steps_for_epochs(const TrainConfig& c, ExampleSource& source, std::int32_t pad) {
  const data::DataPosition start = source.position();
  source.seek({0, 0});
  data::Packer packer(c.batch_rows * c.grad_accum, c.seq_len, pad, !c.packing);
  std::int64_t batches = 0;
  const std::int64_t n = source.size();
  std::int64_t taken = 0;
  while (true) {
    const data::PackedBatch b = packer.next([&]() -> data::TokenizedExample {
      if (taken >= n) return {};
      ++taken;
      return source.next();
    });
    if (b.examples == 0) break;
    ++batches;
  }
  source.seek(start);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(c.epochs * static_cast<double>(batches))));
}

// The first trainable tensor (Hugging Face or PEFT name) whose gradient holds a NaN or infinity.
std::string first_bad_gradient(const model::Transformer& t) {
  for (const model::Param& p : t.trainable_named()) {
    const std::vector<double> g = p.grad.to_vector<double>();
    for (std::size_t i = 0; i < g.size(); ++i) {
      const double x = g[i];
      if (!std::isfinite(x)) return cat("'", t.hf_name(p.name), "' (element ", i, " is ", x, ")");
    }
  }
  return "(none found)";
}

}  // namespace

Trainer::Trainer(Model& model, ExampleSource& train, TrainConfig config, std::int32_t pad_id, ExampleSource* eval,
                 Communicator* comm) {
  validate(config);
  s_ = std::make_unique<State>(model, train, std::move(config), pad_id, eval, comm);
  model.transformer().set_activation_checkpointing(s_->config.activation_checkpointing);
  if (!s_->comm) {
    s_->own_comm = make_single_process_communicator();
    s_->comm = s_->own_comm.get();
  }
  const Tensor& p = s_->t().trainable_params();
  const bool master = p.dtype() == DType::bf16;
  const DType state_dtype = master ? DType::f32 : p.dtype();
  if (master) s_->master = p.host().to(DType::f32).to(p.device());
  s_->m = Tensor::zeros(p.shape(), state_dtype, p.device());
  s_->v = Tensor::zeros(p.shape(), state_dtype, p.device());
  s_->total = s_->config.steps > 0 ? s_->config.steps : steps_for_epochs(s_->config, train, pad_id);
}

Trainer::~Trainer() = default;

std::int64_t Trainer::current_step() const { return s_->step; }
std::int64_t Trainer::total_steps() const { return s_->total; }
const TrainConfig& Trainer::config() const { return s_->config; }
double Trainer::learning_rate(std::int64_t step) const { return train::learning_rate(s_->config, step, s_->total); }
void Trainer::set_checkpoint_hook(std::function<void(std::string_view)> hook) { s_->checkpoint_hook = std::move(hook); }
void Trainer::set_gradient_hook(std::function<void(Model&)> hook) { s_->gradient_hook = std::move(hook); }

StepMetrics Trainer::step() {
  State& s = *s_;
  const TrainConfig& c = s.config;
  model::Transformer& t = s.t();
  const auto start = Clock::now();
  const data::PackedBatch batch = s.packer.next([&] { return s.train.next(); });
  double counts[2] = {static_cast<double>(batch.loss_tokens), static_cast<double>(batch.real_tokens)};
  s.comm->all_reduce_sum(counts, 2);
  const std::int64_t step_no = s.step + 1;
  HONE_CHECK(counts[0] > 0, "train", "step ", step_no, ": the batch has no loss tokens (", batch.examples,
             " examples); check the data's labels (e.g. completions that are empty)");

  // Every loss token of the step weighs 1 / (loss tokens of the step, all ranks).
  const double scale = 1.0 / counts[0];
  double loss_sum = 0;
  bool have_grads = false;
  const Tensor& grads = t.trainable_grads();
  for (std::int64_t micro = 0; micro < c.grad_accum; ++micro) {
    const train::MicroBatch mb = train::micro_batch(batch, micro * c.batch_rows, (micro + 1) * c.batch_rows);
    if (mb.loss_tokens == 0) continue;  // padding rows or prompts only: no gradient
    // Adapter dropout draws from a stream keyed by (step, micro-batch): a resumed run repeats it.
    if (t.adapter()) t.adapter()->set_training(true, static_cast<std::uint64_t>(s.step * c.grad_accum + micro));
    // The loss in chunks of logits (never N × V at once), with its backward; scaled sums.
    loss_sum += t.loss(mb.batch, mb.targets, scale, true, have_grads, data::kIgnoreLabel, c.loss_chunk);
    have_grads = true;
  }
  if (t.adapter()) t.adapter()->set_training(false, 0);
  if (!have_grads) grads.fill(0.0);
  s.comm->all_reduce_sum(grads);
  s.comm->all_reduce_sum(&loss_sum, 1);
  if (s.gradient_hook) s.gradient_hook(s.model);

  StepMetrics m;
  m.step = step_no;
  m.loss = loss_sum;  // already weighted by 1 / loss tokens
  HONE_CHECK(std::isfinite(m.loss), "train", "step ", step_no, ": the loss is ", m.loss,
             "; stopping (the first non-finite gradient is ", first_bad_gradient(t), ")");
  m.grad_norm = ops::grad_norm({grads});
  HONE_CHECK(std::isfinite(m.grad_norm), "train", "step ", step_no, ": the gradient norm is ", m.grad_norm,
             "; stopping at the first non-finite gradient, of ", first_bad_gradient(t));

  // AdamW; no weight decay on vectors (norm weights, biases), as is customary.
  m.lr = learning_rate(s.step);
  ops::AdamWArgs adam;
  adam.lr = m.lr;
  adam.beta1 = c.beta1;
  adam.beta2 = c.beta2;
  adam.eps = c.eps;
  adam.step = step_no;
  // Clipping: the coefficient goes into AdamW, which reads the gradients anyway (no scaling pass).
  if (c.max_grad_norm > 0) adam.grad_scale = ops::clip_coefficient(m.grad_norm, c.max_grad_norm);
  // Two groups, matrices (decayed) and the rest, each one multi-tensor step (one launch on a
  // device).
  std::vector<ops::AdamWTensors> decayed, plain;
  for (const model::Param& p : t.trainable_named()) {
    const std::int64_t offset = model::offset_in(p.value, t.trainable_params());
    const std::int64_t n = p.value.numel();
    ops::AdamWTensors e;
    e.grad = p.grad.view({n});
    e.m = s.m.slice(offset, offset + n);
    e.v = s.v.slice(offset, offset + n);
    if (s.master.defined()) {  // fp32 master weights; the model's bf16 weights are their rounding
      e.param = s.master.slice(offset, offset + n);
      e.param_copy = p.value.view({n});
    } else {
      e.param = p.value.view({n});
    }
    (p.value.ndim() >= 2 ? decayed : plain).push_back(e);
  }
  adam.weight_decay = c.weight_decay;
  ops::adamw_step(decayed, adam);
  adam.weight_decay = 0.0;
  ops::adamw_step(plain, adam);
  s.step = step_no;
  synchronize(t.device());  // the step's time includes its last kernels (AdamW)
  m.tokens = static_cast<std::int64_t>(counts[1]);
  m.loss_tokens = static_cast<std::int64_t>(counts[0]);
  m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  m.tokens_per_second = m.seconds > 0 ? static_cast<double>(m.tokens) / m.seconds : 0.0;
  m.peak_rss_bytes = train::peak_rss_bytes();
  if (t.device().is_cuda())
    m.peak_device_bytes = static_cast<std::int64_t>(cuda_allocator(t.device().index).stats().peak_allocated);
  m.data = s.train.position();
  return m;
}

std::optional<double> Trainer::evaluate() {
  State& s = *s_;
  if (!s.eval) return std::nullopt;
  const TrainConfig& c = s.config;
  const data::DataPosition saved = s.eval->position();
  s.eval->seek({0, 0});
  data::Packer packer(c.batch_rows, c.seq_len, s.pad_id, !c.packing);
  std::int64_t taken = 0;
  const std::int64_t n = s.eval->size();
  double sums[2] = {0, 0};  // loss, loss tokens
  for (std::int64_t b = 0; b < c.eval_batches; ++b) {
    const data::PackedBatch batch = packer.next([&]() -> data::TokenizedExample {
      if (taken >= n) return {};  // one pass at most
      ++taken;
      return s.eval->next();
    });
    if (batch.examples == 0) break;
    const train::MicroBatch mb = train::micro_batch(batch, 0, c.batch_rows);
    if (mb.loss_tokens == 0) continue;
    sums[0] += s.t().loss(mb.batch, mb.targets, 1.0, false, false, data::kIgnoreLabel, c.loss_chunk);
    sums[1] += static_cast<double>(mb.loss_tokens);
  }
  s.eval->seek(saved);
  s.comm->all_reduce_sum(sums, 2);
  HONE_CHECK(sums[1] > 0, "eval", "the evaluation data has no loss tokens");
  return sums[0] / sums[1];
}

StepMetrics Trainer::train(const std::function<void(const StepMetrics&)>& on_step) {
  State& s = *s_;
  const TrainConfig& c = s.config;
  std::string metrics_path = c.metrics_path;
  if (metrics_path.empty() && !c.output_dir.empty()) metrics_path = c.output_dir + "/metrics.jsonl";
  if (!metrics_path.empty()) train::prepare_metrics_file(metrics_path, s.step);
  std::ofstream metrics;
  if (!metrics_path.empty()) {
    metrics.open(metrics_path, std::ios::app);
    HONE_CHECK(metrics.good(), "train", "cannot open the metrics file ", metrics_path);
  }
  const bool primary = s.comm->rank() == 0;
  std::unique_ptr<Progress> progress;
  if (c.progress && primary) progress = std::make_unique<Progress>("train", s.total);
  StepMetrics last;
  while (s.step < s.total) {
    last = step();
    if (c.eval_every > 0 && (s.step % c.eval_every == 0 || s.step == s.total)) last.eval_loss = evaluate();
    if (primary && metrics.is_open()) metrics << last.to_json() << "\n" << std::flush;
    if (c.save_every > 0 && (s.step % c.save_every == 0 || s.step == s.total)) save_checkpoint();
    if (progress) {
      std::string extra = cat("loss ", last.loss, "  lr ", last.lr, "  |g| ", last.grad_norm, "  ",
                              static_cast<std::int64_t>(last.tokens_per_second), " tok/s");
      if (last.eval_loss) extra += cat("  eval ", *last.eval_loss);
      progress->update(s.step, extra);
    }
    if (on_step) on_step(last);
  }
  if (progress) progress->finish();
  return last;
}

std::string Trainer::save_checkpoint() {
  State& s = *s_;
  HONE_CHECK(!s.config.output_dir.empty(), "checkpoint", "no output_dir is set");
  train::SavedState st;
  st.step = s.step;
  st.data = s.train.position();
  st.pending = s.packer.pending();
  st.seed = s.config.seed;
  if (s.comm->rank() != 0) return {};
  return train::write_checkpoint(s.config.output_dir, s.model, s.m, s.v, s.master, st, s.config.keep_last,
                                 s.checkpoint_hook);
}

void Trainer::save_model(const std::string& dir, std::optional<DType> storage,
                         const std::string& base_model_name_or_path) const {
  const State& s = *s_;
  const model::Transformer& t = s.model.transformer();
  if (t.adapter()) {
    const DType as = storage.value_or(DType::f32);
    if (s.master.defined())
      peft::save_adapter_values(s.model, dir, s.master, base_model_name_or_path, as);
    else
      save_adapter(s.model, dir, base_model_name_or_path, as);
    return;
  }
  if (!s.master.defined()) {
    s.model.save(dir, storage);
    return;
  }
  // The master weights are the whole slab (the base is what is trained): a host f32 model holds them.
  model::Transformer host(t.config(), DType::f32, /*train_base=*/false);
  host.params().copy_from(s.master);
  host.save_pretrained(dir, storage);
}

void Trainer::resume(const std::string& dir) {
  State& s = *s_;
  const train::SavedState st = train::read_checkpoint(dir, s.model, s.m, s.v, s.master);
  HONE_CHECK(st.step <= s.total, "resume", dir, " is at step ", st.step, ", beyond this run's ", s.total, " steps");
  s.step = st.step;
  s.train.seek(st.data);
  s.packer.set_pending(st.pending);
}

}  // namespace hone

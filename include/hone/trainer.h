// hone::Trainer: fine-tuning of a hone::Model with AdamW (fp32 master weights), learning-rate
// schedules, token-weighted gradient accumulation, clipping, evaluation, atomic checkpoints that
// resume bit-exactly, and JSONL metrics. It trains every weight, or — when an adapter is attached
// (hone/peft.h: LoRA, prompt tuning) — only the adapter, with optimizer state for it alone.
//
//   hone::Model model = hone::Model::load("llama-dir");
//   hone::Tokenizer tok = hone::Tokenizer::from_dir("llama-dir");
//   hone::data::TokenizerEncoder enc(tok);           (hone/tokenizer_encoder.h)
//   hone::JsonlSource train("train.jsonl", enc, {});
//   hone::TrainConfig cfg;  cfg.steps = 100;  cfg.output_dir = "out";
//   hone::Trainer trainer(model, train, cfg, pad_id);
//   trainer.train();
//   model.save("out/final");
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hone/communicator.h"
#include "hone/dataset.h"
#include "hone/model.h"

namespace hone {

enum class LrSchedule { constant, linear, cosine };
LrSchedule parse_lr_schedule(std::string_view name);  // "constant" | "linear" | "cosine"
const char* lr_schedule_name(LrSchedule s);

struct TrainConfig {
  // AdamW (PyTorch's formula) and the learning rate: warmup_steps linear from 0, then the
  // schedule from lr down to lr·min_lr_ratio at the last step.
  double lr = 2e-5;
  LrSchedule schedule = LrSchedule::cosine;
  std::int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double max_grad_norm = 1.0;  // 0: no clipping
  // Length: `steps` optimizer steps, or (steps = 0) enough steps to see `epochs` of the data.
  std::int64_t steps = 0;
  double epochs = 1.0;
  // A step packs batch_rows · grad_accum rows of seq_len tokens (whole examples, first fit;
  // without packing one example per row) and runs them as grad_accum micro-batches of
  // batch_rows rows. Every loss token of the step weighs the same, so any split of the rows
  // gives the same update (up to rounding).
  std::int64_t batch_rows = 8;
  std::int64_t seq_len = 512;
  std::int64_t grad_accum = 1;
  bool packing = true;
  // Memory: the loss forms logits loss_chunk tokens at a time; activation checkpointing keeps
  // only each block's input and recomputes the block in backward (same results, one more
  // forward of the blocks).
  std::int64_t loss_chunk = 1024;
  bool activation_checkpointing = false;
  // Evaluation on the held-out source every eval_every steps (0: only when asked).
  std::int64_t eval_every = 0;
  std::int64_t eval_batches = 4;
  // Checkpoints output_dir/checkpoint-<step> every save_every steps (0: none), the last
  // keep_last kept. Metrics go to metrics_path (default output_dir/metrics.jsonl).
  std::string output_dir;
  std::int64_t save_every = 0;
  std::int64_t keep_last = 2;
  std::string metrics_path;
  bool progress = true;  // a progress line on a terminal (plain lines otherwise)
  std::uint64_t seed = 0;
};

// A resumable stream of tokenized examples.
class ExampleSource {
 public:
  virtual ~ExampleSource() = default;
  virtual data::TokenizedExample next() = 0;  // wraps into the next epoch at the end
  virtual data::DataPosition position() const = 0;
  virtual void seek(data::DataPosition position) = 0;
  virtual std::int64_t size() const = 0;  // examples per epoch
};

// A JSONL file read through a TextEncoder (the formats of hone/dataset.h).
class JsonlSource : public ExampleSource {
 public:
  JsonlSource(std::string path, const data::TextEncoder& encoder, data::DataOptions options);
  data::TokenizedExample next() override { return dataset_.next(); }
  data::DataPosition position() const override { return dataset_.position(); }
  void seek(data::DataPosition p) override { dataset_.seek(p); }
  std::int64_t size() const override { return dataset_.size(); }
  const data::DataStats& stats() const { return dataset_.stats(); }

 private:
  data::JsonlDataset dataset_;
};

// Examples already in memory, visited in a seeded permutation per epoch (or in order).
class VectorSource : public ExampleSource {
 public:
  VectorSource(std::vector<data::TokenizedExample> examples, std::uint64_t seed, bool shuffle = true);
  data::TokenizedExample next() override;
  data::DataPosition position() const override { return position_; }
  void seek(data::DataPosition p) override;
  std::int64_t size() const override { return static_cast<std::int64_t>(examples_.size()); }

 private:
  std::vector<data::TokenizedExample> examples_;
  std::vector<std::int64_t> order_;
  std::uint64_t seed_;
  bool shuffle_;
  data::DataPosition position_;
  std::int64_t order_epoch_ = -1;
};

struct StepMetrics {
  std::int64_t step = 0;        // optimizer steps done (1 after the first)
  double loss = 0;              // mean loss per loss token of the step
  double lr = 0;
  double grad_norm = 0;         // before clipping
  std::int64_t tokens = 0;      // real (non-padding) tokens of the step
  std::int64_t loss_tokens = 0;
  double seconds = 0;           // this step
  double tokens_per_second = 0;
  std::int64_t peak_rss_bytes = 0;
  // A model on a CUDA device: the high-water mark of device memory handed out by hone's caching
  // allocator on that device (tensors and workspaces; not the CUDA context), else 0.
  std::int64_t peak_device_bytes = 0;
  std::optional<double> eval_loss;
  data::DataPosition data;      // where the training source stands after the step
  std::string to_json() const;  // one JSONL line (no newline)
};

class Trainer {
 public:
  // `model`, `train`, `eval` and `comm` outlive the trainer. pad_id fills the rows' tails.
  // Without `comm` the trainer is a world of one.
  Trainer(Model& model, ExampleSource& train, TrainConfig config, std::int32_t pad_id,
          ExampleSource* eval = nullptr, Communicator* comm = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs steps until total_steps(), evaluating and checkpointing as configured; `on_step`
  // sees every step's metrics. Returns the last step's metrics.
  StepMetrics train(const std::function<void(const StepMetrics&)>& on_step = {});
  StepMetrics step();  // one optimizer step
  // Mean loss per loss token over config.eval_batches batches of the eval source (from its
  // start each time); nullopt without an eval source.
  std::optional<double> evaluate();

  // Writes output_dir/checkpoint-<step> (model weights in Hugging Face layout, or the adapter in
  // PEFT's format; optimizer state; trainer_state.json) through a temporary folder renamed into place, then keeps the last
  // keep_last. Returns its path.
  std::string save_checkpoint();
  // Writes what was trained: full fine-tuning as a Hugging Face folder (config.json + weights, in
  // `storage` or the checkpoint's own dtype), an adapter in PEFT's format (in `storage` or f32,
  // naming `base_model_name_or_path`). With fp32 master weights (bf16 trainable tensors on a
  // device) the master weights are written, not their bf16 rounding; otherwise the same as
  // Model::save / save_adapter.
  void save_model(const std::string& dir, std::optional<DType> storage = std::nullopt,
                  const std::string& base_model_name_or_path = "") const;
  // Continues from a checkpoint folder: weights (or the adapter's tensors, into the adapter
  // attached with the same options), AdamW moments, step, data position and the packer's
  // pending examples; the next steps equal those of the uninterrupted run bitwise.
  void resume(const std::string& checkpoint_dir);

  std::int64_t current_step() const;
  std::int64_t total_steps() const;
  const TrainConfig& config() const;
  double learning_rate(std::int64_t step) const;  // lr of step `step` (0-based)

  // For tests: called at the named stages of a checkpoint write ("weights", "optimizer",
  // "state", "rename"); throwing from it simulates a crash at that point.
  void set_checkpoint_hook(std::function<void(std::string_view stage)> hook);
  // For tests: called after the backward of every step with the model, before clipping and
  // the update (to inject a bad value).
  void set_gradient_hook(std::function<void(Model&)> hook);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// The newest output_dir/checkpoint-<step> folder ("" when there is none).
std::string latest_checkpoint(const std::string& output_dir);

}  // namespace hone

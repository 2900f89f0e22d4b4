// Checkpoint folders of the trainer: output_dir/checkpoint-<step>/ holds config.json and
// model.safetensors (Hugging Face layout, the model's dtype: loadable by hone and transformers)
// — or, for a model with an adapter, adapter_config.json and adapter_model.safetensors (PEFT's
// format, the model's dtype) and no base weights — plus optimizer.safetensors (AdamW moments of
// the trainable slab, and its fp32 master weights when the trainable tensors are bf16 on a
// device) and trainer_state.json.
#pragma once
#include <functional>
#include <string>
#include <string_view>

#include "train/internal.h"

namespace hone::train {

// Writes into a temporary folder, renames it into place, then removes all but the newest
// keep_last checkpoints. `hook` (may be empty) is called at each stage; if it throws, the
// temporary folder is left behind and every earlier checkpoint is untouched.
// m, v and master (undefined without master weights) may live on any device.
std::string write_checkpoint(const std::string& output_dir, const Model& model, const Tensor& m,
                             const Tensor& v, const Tensor& master, const SavedState& state,
                             std::int64_t keep_last, const std::function<void(std::string_view)>& hook);
// Loads the trainable tensors (weights, or the attached adapter's), moments and master weights
// (when `master` is defined) into `model`, `m`, `v` and `master` (shapes must match) and returns
// the state.
SavedState read_checkpoint(const std::string& dir, Model& model, const Tensor& m, const Tensor& v,
                           const Tensor& master);

// Keeps only the lines of steps ≤ `step` in an existing metrics file (resuming rewrites history
// from there); creates the folder.
void prepare_metrics_file(const std::string& path, std::int64_t step);

}  // namespace hone::train

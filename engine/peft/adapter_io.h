// Writing an adapter from values other than the model's own (internal to the engine).
#pragma once
#include <string>

#include "hone/model.h"
#include "hone/tensor.h"

namespace hone::peft {

// save_adapter, with the adapter's tensors taken from `values`: a slab of the adapter's
// params() shape on any device (e.g. a trainer's fp32 master weights of a device adapter), each
// tensor at its own offset in the adapter's slab.
void save_adapter_values(const Model& model, const std::string& dir, const Tensor& values,
                         const std::string& base_model_name_or_path, DType storage);

}  // namespace hone::peft

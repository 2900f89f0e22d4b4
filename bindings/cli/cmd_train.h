// `hone train`: fine-tune a Hugging Face model folder on a JSONL file.
#pragma once
#include <CLI/CLI.hpp>

namespace hone::cli {

void add_train_command(CLI::App& app);

}  // namespace hone::cli

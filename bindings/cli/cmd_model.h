// `hone init` and `hone info`: create a random-initialised Hugging Face model folder, and
// describe a model folder (architecture, parameters, memory per fine-tuning method).
#pragma once
#include <CLI/CLI.hpp>

namespace hone::cli {

// Adds the subcommands to `app`; each runs through the callback CLI11 invokes after parsing.
void add_model_commands(CLI::App& app);

}  // namespace hone::cli

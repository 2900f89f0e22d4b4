// `hone merge MODEL ADAPTER OUT`: fold a LoRA adapter into its base and save the result; and the
// tokenizer-file copy that the commands writing model folders share.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace hone::cli {

void add_merge_command(CLI::App& app);
// Copies the tokenizer files of model folder `from` (those present) into `to`, so that a
// written folder is a complete model.
void copy_tokenizer_files(const std::string& from, const std::string& to);

}  // namespace hone::cli

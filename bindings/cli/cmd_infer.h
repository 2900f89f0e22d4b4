// `hone generate` (text from a model folder, optionally with a PEFT adapter, streamed to the
// terminal) and `hone eval` (accuracy and perplexity of a model on a JSONL task).
#pragma once
#include <CLI/CLI.hpp>

namespace hone::cli {

void add_infer_commands(CLI::App& app);

}  // namespace hone::cli

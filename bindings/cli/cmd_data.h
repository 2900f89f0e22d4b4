// `hone tokenize` and `hone data inspect`: text ↔ ids with a model's tokenizer, and a look at
// a JSONL training file (examples, token counts, truncation, packing efficiency).
#pragma once
#include <CLI/CLI.hpp>

namespace hone::cli {
void add_data_commands(CLI::App& app);
}

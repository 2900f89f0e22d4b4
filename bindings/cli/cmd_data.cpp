// `hone tokenize` / `hone data inspect`.
#include "cmd_data.h"

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>

#include "hone/chat_template.h"
#include "hone/dataset.h"
#include "hone/tokenizer.h"
#include "hone/tokenizer_encoder.h"

namespace hone::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer, text;
  std::vector<std::int32_t> decode;
  bool no_special = false;
};

struct InspectOptions {
  std::string file, tokenizer, format = "auto", chat_template = "auto";
  std::int64_t max_length = 2048, row_length = 0, show = 3;
  bool skip_bad = false, loss_on_prompt = false;
};

void run_tokenize(const TokenizeOptions& o) {
  const Tokenizer tok = Tokenizer::from_dir(o.tokenizer);
  nlohmann::json out;
  if (!o.decode.empty()) {
    out["ids"] = o.decode;
    out["text"] = tok.decode(o.decode);
    out["raw"] = tok.decode_raw(o.decode);
  } else {
    std::string text = o.text;
    if (text.empty()) text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    const std::vector<std::int32_t> ids = tok.encode(text, !o.no_special);
    std::vector<std::string> pieces;
    for (std::int32_t id : ids) pieces.push_back(tok.id_to_token(id));
    out["text"] = text;
    out["ids"] = ids;
    out["tokens"] = pieces;
    out["count"] = ids.size();
  }
  std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

void run_inspect(const InspectOptions& o) {
  const Tokenizer tok = Tokenizer::from_dir(o.tokenizer);
  const data::TokenizerEncoder enc(tok, o.chat_template);
  data::DataOptions opts;
  opts.format = data::parse_format(o.format);
  opts.max_length = o.max_length;
  opts.skip_bad_lines = o.skip_bad;
  opts.loss_on_prompt = o.loss_on_prompt;
  opts.shuffle = false;
  data::JsonlDataset ds(o.file, enc, opts);
  std::vector<data::TokenizedExample> all;
  std::int64_t longest = 0;
  while (ds.position().index < ds.size()) {
    data::TokenizedExample ex = ds.next();
    if (ds.position().epoch > 0) break;  // skipped bad lines at the end wrapped into epoch 1
    longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(ex.ids.size()));
    all.push_back(std::move(ex));
  }
  const data::DataStats& s = ds.stats();
  std::printf("file            %s (%lld examples)\n", o.file.c_str(), static_cast<long long>(ds.size()));
  if (enc.chat())
    std::printf("chat template   %s (%s)\n", enc.chat()->name(), o.chat_template == "auto" ? "recognised" : "chosen");
  else
    std::printf("chat template   none\n");
  std::printf("tokens          %lld (%lld carry loss), longest example %lld\n", static_cast<long long>(s.tokens),
              static_cast<long long>(s.loss_tokens), static_cast<long long>(longest));
  std::printf("truncated       %lld (max_length %lld), dropped %lld, bad lines skipped %lld\n",
              static_cast<long long>(s.truncated), static_cast<long long>(o.max_length),
              static_cast<long long>(s.dropped), static_cast<long long>(s.bad_lines));
  const std::int64_t row = o.row_length > 0 ? o.row_length : o.max_length;
  if (!all.empty()) {
    data::Packer packer(8, row, tok.pad_id().value_or(enc.eos_id()));
    std::size_t next = 0;
    std::int64_t real = 0, total = 0, placed = 0;
    const auto n = static_cast<std::int64_t>(all.size());
    while (placed < n) {
      const data::PackedBatch b =
          packer.next([&] { return next < all.size() ? all[next++] : data::TokenizedExample{}; });
      placed += b.examples;
      real += b.real_tokens;
      total += b.ids.numel();
      if (b.examples == 0) break;
    }
    std::printf("packing         rows of %lld tokens: %.1f%% of positions hold real tokens\n",
                static_cast<long long>(row), total ? 100.0 * static_cast<double>(real) / static_cast<double>(total) : 0.0);
  }
  for (std::int64_t i = 0; i < std::min<std::int64_t>(o.show, static_cast<std::int64_t>(all.size())); ++i) {
    const data::TokenizedExample& ex = all[static_cast<std::size_t>(i)];
    std::vector<std::int32_t> target;
    for (std::int64_t l : ex.labels)
      if (l != data::kIgnoreLabel) target.push_back(static_cast<std::int32_t>(l));
    std::printf("\nline %lld: %zu tokens, %zu with loss\n  input:  %s\n  target: %s\n", static_cast<long long>(ex.line),
                ex.ids.size(), target.size(), nlohmann::json(tok.decode(ex.ids)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str(),
                nlohmann::json(tok.decode(target)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
}

}  // namespace

void add_data_commands(CLI::App& app) {
  auto t = std::make_shared<TokenizeOptions>();
  CLI::App* tokenize = app.add_subcommand("tokenize", "text → ids (JSON) with a model's tokenizer, or ids → text");
  tokenize->add_option("--tokenizer", t->tokenizer, "folder with tokenizer.json")->required();
  tokenize->add_option("--text", t->text, "text to encode (default: standard input)");
  tokenize->add_option("--decode", t->decode, "ids to decode instead");
  tokenize->add_flag("--no-special", t->no_special, "do not add the post-processor's special tokens");
  tokenize->callback([t] { run_tokenize(*t); });

  auto o = std::make_shared<InspectOptions>();
  CLI::App* data_cmd = app.add_subcommand("data", "inspect training data");
  data_cmd->require_subcommand(1);
  CLI::App* inspect = data_cmd->add_subcommand("inspect", "examples, token counts, truncation and packing of a JSONL file");
  inspect->add_option("file", o->file, "JSONL file")->required();
  inspect->add_option("--tokenizer", o->tokenizer, "folder with tokenizer.json")->required();
  inspect->add_option("--format", o->format, "auto, text, prompt_completion, messages or alpaca");
  inspect->add_option("--chat-template", o->chat_template,
                      "auto (recognise the tokenizer's template) or a family: " + chat_family_names());
  inspect->add_option("--max-length", o->max_length, "tokens per example")->check(CLI::PositiveNumber);
  inspect->add_option("--row-length", o->row_length, "packed row length (default: max length)");
  inspect->add_option("--show", o->show, "examples to print");
  inspect->add_flag("--skip-bad-lines", o->skip_bad, "skip and count lines that do not parse");
  inspect->add_flag("--loss-on-prompt", o->loss_on_prompt, "train on prompt tokens too");
  inspect->callback([o] { run_inspect(*o); });
}

}  // namespace hone::cli

// Supervised fine-tuning data: JSONL examples ({"text"}, {"prompt","completion"},
// {"messages":[…]}, Alpaca {"instruction","input","output"}) turned into token ids with labels
// that ignore prompt tokens, streamed from disk in a seeded, resumable order, and packed into
// fixed-length rows with per-example positions and cumulative sequence lengths.
#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hone/tensor.h"

namespace hone::data {

inline constexpr std::int64_t kIgnoreLabel = -100;

enum class Format { auto_detect, text, prompt_completion, messages, alpaca };
Format parse_format(std::string_view name);  // "auto", "text", "prompt_completion", "messages", "alpaca"
const char* format_name(Format f);

// A conversation turn as found in {"messages": [...]}.
struct Message {
  std::string role;     // system | user | assistant
  std::string content;
  std::string reasoning_content;  // optional thinking text (Qwen3-style templates)
};

// A piece of an example's text and whether its tokens carry loss.
struct Segment {
  std::string text;
  bool loss = false;
};

// What the data pipeline needs from a tokenizer and its chat template.
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // Ids of `text`, no BOS/EOS added; special-token strings in the text map to their ids.
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  virtual std::optional<std::int32_t> bos_id() const = 0;  // prepended to non-chat examples
  virtual std::int32_t eos_id() const = 0;                 // appended to non-chat examples
  // The conversation rendered by the model's chat template, split into segments; the
  // assistant turns (content + end-of-turn token) are the segments with loss. The default
  // throws: the encoder has no chat template.
  virtual std::vector<Segment> render_chat(const std::vector<Message>& messages) const;
};

enum class Truncation { truncate, drop, error };

struct DataOptions {
  Format format = Format::auto_detect;
  bool loss_on_prompt = false;  // true: every token carries loss (prompts and system turns too)
  std::int64_t max_length = 2048;  // tokens per example, after BOS/EOS
  Truncation truncation = Truncation::truncate;
  bool skip_bad_lines = false;  // false: a bad line is an error naming file and line
  bool shuffle = true;
  std::uint64_t seed = 0;
};

// An example as text segments (before tokenization). `chat` examples get no BOS/EOS added:
// the template carries its own.
struct Example {
  std::vector<Segment> segments;
  bool chat = false;
};
// Parses one JSONL line. `where` ("file:line") prefixes every error.
Example parse_example(std::string_view line, Format format, const TextEncoder& encoder,
                      const std::string& where);

struct TokenizedExample {
  std::vector<std::int32_t> ids;
  std::vector<std::int64_t> labels;  // ids where the token carries loss, else kIgnoreLabel
  std::int64_t line = 0;             // 1-based line in the file (0 when not from a file)
  bool truncated = false;
};
// Tokenizes segment by segment (a segment boundary is also a token boundary), adds BOS/EOS
// for non-chat examples (EOS carries loss), applies loss_on_prompt and truncation. Returns
// nullopt when the truncation policy drops the example.
std::optional<TokenizedExample> tokenize_example(const Example& example, const TextEncoder& encoder,
                                                 const DataOptions& options, const std::string& where);

struct DataStats {
  std::int64_t examples = 0;      // produced
  std::int64_t bad_lines = 0;     // skipped (skip_bad_lines)
  std::int64_t truncated = 0;
  std::int64_t dropped = 0;       // too long, Truncation::drop
  std::int64_t tokens = 0;
  std::int64_t loss_tokens = 0;
};

// Where a JsonlDataset is in its stream: resuming at a saved position replays the same order.
struct DataPosition {
  std::int64_t epoch = 0;
  std::int64_t index = 0;  // examples of this epoch already taken
  friend bool operator==(const DataPosition& a, const DataPosition& b) {
    return a.epoch == b.epoch && a.index == b.index;
  }
};

// Streams a JSONL file: one pass records where each non-blank line starts; each epoch visits
// the lines in a Philox-seeded permutation (or in file order), reading one line at a time.
class JsonlDataset {
 public:
  JsonlDataset(std::string path, const TextEncoder& encoder, DataOptions options);
  std::int64_t size() const { return static_cast<std::int64_t>(offsets_.size()); }
  const std::string& path() const { return path_; }
  // The next example; wraps into the next epoch at the end. Throws hone::Error naming the file
  // and line for a bad line unless skip_bad_lines.
  TokenizedExample next();
  DataPosition position() const { return position_; }
  void seek(DataPosition position);
  const DataStats& stats() const { return stats_; }

 private:
  void make_order();
  std::string read_line(std::int64_t i);
  std::string path_;
  const TextEncoder& encoder_;  // [not null] outlives the dataset
  DataOptions options_;
  std::vector<std::uint64_t> offsets_;  // byte offset of each non-blank line
  std::vector<std::int64_t> lines_;     // its 1-based line number
  std::vector<std::int64_t> order_;     // this epoch's permutation
  std::int64_t order_epoch_ = -1;
  DataPosition position_;
  DataStats stats_;
  std::ifstream file_;
};

// Rows of packed examples: every tensor (R, L) except cu_seqlens, which spans the R·L tokens
// flattened (each example is one sequence; each row's padding tail is one more).
struct PackedBatch {
  Tensor ids;         // i64; padding = pad id
  Tensor labels;      // i64; kIgnoreLabel at padding and at each example's first token
  Tensor positions;   // i64; restart at 0 for every example
  Tensor cu_seqlens;  // i32 (S + 1)
  std::int64_t examples = 0;
  std::int64_t real_tokens = 0;  // non-padding
  std::int64_t loss_tokens = 0;  // labels that are not ignored
  double efficiency() const;     // real_tokens / (R·L)
};

// Packs whole examples into `rows` rows of `row_length` tokens, first fit, in arrival order.
// An example that fits nowhere waits for the next batch (it is never split). Examples longer
// than a row are an error: set DataOptions::max_length ≤ row_length. A source that returns an
// empty example has run dry: the batch is finished with what it has (maybe no example).
// With one_per_row, each row holds at most one example (padding instead of packing).
class Packer {
 public:
  Packer(std::int64_t rows, std::int64_t row_length, std::int32_t pad_id, bool one_per_row = false);
  PackedBatch next(const std::function<TokenizedExample()>& source);
  // Examples taken from the source that wait for a later batch (saved with a checkpoint).
  const std::vector<TokenizedExample>& pending() const { return waiting_; }
  void set_pending(std::vector<TokenizedExample> examples) { waiting_ = std::move(examples); }

 private:
  std::int64_t rows_, row_length_;
  std::int32_t pad_id_;
  bool one_per_row_ = false;
  std::vector<TokenizedExample> waiting_;
};

}  // namespace hone::data

// Internal representation of a loaded tokenizer: the pipeline stages (normalizer,
// pre-tokenizer, BPE model, post-processor, decoder) as plain data, and the helpers each
// stage's source file provides.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hone::io {

// ---- unicode helpers (tokenizer_unicode.cpp) ----
void append_utf8(std::string& out, char32_t cp);
// Decodes one code point at s[i], advancing i; invalid sequences give U+FFFD and advance by
// the maximal invalid subpart (as Rust's from_utf8_lossy).
char32_t next_code_point(std::string_view s, std::size_t& i);
std::string utf8_lossy(std::string_view bytes);  // valid UTF-8, invalid parts → U+FFFD
bool is_valid_utf8(std::string_view s);
std::string nfc(std::string_view s);
// GPT-2's byte ↔ unicode map: the UTF-8 text of the char standing for byte b.
const std::string& byte_to_unicode(std::uint8_t b);
int unicode_to_byte(char32_t cp);  // -1 when cp stands for no byte
bool is_unicode_whitespace(char32_t cp);

// ---- compiled regex (tokenizer_pretokenize.cpp) ----
class Regex {
 public:
  // literal: the pattern is a plain string (PCRE2_LITERAL).
  Regex(const std::string& pattern, bool literal, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Non-empty, non-overlapping matches [begin, end) in s (valid UTF-8).
  void find_all(std::string_view s, std::vector<std::pair<std::size_t, std::size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
};

std::shared_ptr<Regex> gpt2_regex_shared();  // GPT-2's built-in split pattern

// ---- pipeline stages ----
struct Normalizer {
  enum class Kind { NFC, Prepend, Replace, Sequence };
  Kind kind = Kind::Sequence;
  std::string text;     // Prepend: prepended; Replace: the content
  std::shared_ptr<Regex> pattern;  // Replace
  std::vector<Normalizer> children;  // Sequence
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreTokenizer {
  enum class Kind { Split, ByteLevel, Metaspace, Sequence };
  Kind kind = Kind::Sequence;
  std::shared_ptr<Regex> pattern;  // Split; ByteLevel with use_regex (GPT-2's)
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;  // Metaspace
  bool split = true;              // Metaspace
  std::vector<PreTokenizer> children;
};

// A piece of text on its way through the pre-tokenizers.
struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the input (Metaspace prepend_scheme first)
};

struct BpeModel {
  std::unordered_map<std::string, std::int32_t> vocab;
  // (left id << 32 | right id) → (rank << 32 | merged id)
  std::unordered_map<std::uint64_t, std::uint64_t> merges;
  std::optional<std::int32_t> unk_id;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  std::int32_t byte_ids[256];  // <0xNN> tokens when byte_fallback, else -1

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<std::int32_t>& out) const;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> cache;
};

struct TemplateItem {
  bool is_sequence = false;
  std::vector<std::int32_t> ids;  // special token ids when !is_sequence
};

struct PostProcessor {
  // Only TemplateProcessing changes ids; ByteLevel is offsets-only.
  bool has_template = false;
  std::vector<TemplateItem> single;
};

struct Decoder {
  enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence };
  Kind kind = Kind::Sequence;
  std::string pattern, content;  // Replace (string pattern); Strip content; Metaspace replacement
  int start = 0, stop = 0;       // Strip
  bool prepend = true;           // Metaspace: strip the first leading space
  std::vector<Decoder> children;
};

struct AddedToken {
  std::int32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

struct TokenizerData {
  std::string source;  // file name for messages
  std::optional<Normalizer> normalizer;
  std::optional<PreTokenizer> pre_tokenizer;
  BpeModel model;
  PostProcessor post;
  std::optional<Decoder> decoder;
  std::vector<AddedToken> added;                          // by position in the file
  std::unordered_map<std::string, std::int32_t> added_by_content;
  std::vector<std::string> id_to_token;                   // "" for holes
  std::vector<std::uint8_t> id_is_special;
  std::vector<std::uint8_t> id_is_added;
  // Per first byte: indices into `added`, longest content first (separately for tokens matched
  // on raw and on normalized text).
  std::vector<std::int32_t> by_first_byte_raw[256];
  std::vector<std::int32_t> by_first_byte_norm[256];
  bool has_normalized_added = false;

  std::optional<std::int32_t> bos, pad;
  std::vector<std::int32_t> eos;
  std::string chat_template;
  bool clean_up = false;

  void finish_added_tokens();  // fills the lookup tables from `added`
};

// ---- stage functions ----
std::string apply_normalizer(const Normalizer& n, std::string s);
void apply_pre_tokenizer(const PreTokenizer& p, std::vector<Piece>& pieces);
std::vector<std::string> apply_decoder(const Decoder& d, std::vector<std::string> tokens);
std::string clean_up_tokenization(std::string s);

// ---- loading (tokenizer_json.cpp) ----
std::shared_ptr<TokenizerData> load_tokenizer_json(std::string_view json, const std::string& source);
void load_tokenizer_config(TokenizerData& data, std::string_view json, const std::string& source);
std::string read_text_file(const std::string& path);

}  // namespace hone::io

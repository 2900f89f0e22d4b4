// hone::Tokenizer: Hugging Face tokenizer.json (BPE) encode/decode, the model's special ids and
// chat template from tokenizer_config.json, a plain byte-level tokenizer and GPT-2's
// vocab.json + merges.txt form. Options a file uses that hone does not implement are refused
// with a hone::Error naming the feature, never approximated.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hone {

namespace io {
struct TokenizerData;
}

struct DecodeOptions {
  bool skip_special_tokens = false;
  // transformers' clean-up (" ." → "." …); unset: the config's clean_up_tokenization_spaces.
  std::optional<bool> clean_up_tokenization_spaces;
};

class Tokenizer {
 public:
  Tokenizer() = default;  // empty: loaded() is false and every other call throws
  bool loaded() const { return data_ != nullptr; }

  // A folder with tokenizer.json, and optionally tokenizer_config.json and chat_template.jinja
  // (which takes precedence over the config's chat_template).
  static Tokenizer from_dir(const std::string& dir);
  // A tokenizer.json file alone (no config: no bos/eos/pad ids, no chat template).
  static Tokenizer from_file(const std::string& tokenizer_json_path);
  // The same from strings already in memory; `source` names them in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                             std::string_view chat_template = {},
                             const std::string& source = "tokenizer.json");
  // Ids 0…255 are the bytes; special tokens follow from 256 in the order given. No merges.
  static Tokenizer byte_level(const std::vector<std::string>& special_tokens = {});
  // GPT-2's classic files: byte-level BPE with GPT-2's split regex; "<|endoftext|>" is special
  // when the vocabulary has it.
  static Tokenizer from_gpt2_files(const std::string& vocab_json, const std::string& merges_txt);

  // Added and special tokens in the text are always split out as single ids; add_special_tokens
  // applies the post-processor's template (e.g. BOS). Invalid UTF-8 is read as U+FFFD.
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Encodes many texts with up to num_threads threads (0: all hardware threads).
  std::vector<std::vector<std::int32_t>> encode_batch(const std::vector<std::string>& texts,
                                                      bool add_special_tokens = true,
                                                      int num_threads = 0) const;
  // transformers-style decode (clean-up per options/config).
  std::string decode(const std::vector<std::int32_t>& ids, const DecodeOptions& options = {}) const;
  // The decoder alone, no clean-up: gives back the normalized input of encode.
  std::string decode_raw(const std::vector<std::int32_t>& ids, bool skip_special_tokens = false) const;
  // The tokenizer's normalizer applied to text (the identity when it has none).
  std::string normalize(std::string_view text) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(std::int32_t id) const;  // throws for an unknown id
  std::int64_t vocab_size() const;                 // highest id + 1, added tokens included
  bool is_special(std::int32_t id) const;

  std::optional<std::int32_t> bos_id() const;
  std::vector<std::int32_t> eos_ids() const;
  std::optional<std::int32_t> pad_id() const;
  std::optional<std::int32_t> unk_id() const;
  const std::string& chat_template() const;  // "" when none
  bool clean_up_tokenization_spaces() const;

 private:
  explicit Tokenizer(std::shared_ptr<const io::TokenizerData> data) : data_(std::move(data)) {}
  const io::TokenizerData& data() const;  // throws when empty
  std::shared_ptr<const io::TokenizerData> data_;
};

// Writes the byte-level tokenizer of small demo models into `dir` in Hugging Face's format:
// tokenizer.json (ids 0…255 the bytes, no merges) with the special tokens <|endoftext|> (256,
// EOS), <|im_start|> (257), <|im_end|> (258) and <|pad|> (259), and tokenizer_config.json with
// a ChatML chat template. Both files are written to temporary names and renamed.
void write_byte_level_tokenizer(const std::string& dir);
inline constexpr std::int64_t kByteLevelTokenizerVocab = 260;

}  // namespace hone

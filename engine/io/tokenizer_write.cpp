// The byte-level tokenizer as Hugging Face files (tokenizer.json + tokenizer_config.json).
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hone/error.h"
#include "hone/tokenizer.h"
#include "io/tokenizer_impl.h"

namespace hone {

namespace {

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    HONE_CHECK(out.good(), "tokenizer", "cannot write ", tmp);
  }
  HONE_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "tokenizer", "cannot rename ", tmp, " to ", path);
}

}  // namespace

void write_byte_level_tokenizer(const std::string& dir) {
  using nlohmann::json;
  const std::vector<std::string> specials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"};
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[io::byte_to_unicode(static_cast<std::uint8_t>(b))] = b;
  json added = json::array();
  for (std::size_t i = 0; i < specials.size(); ++i)
    added.push_back({{"id", 256 + i}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
  json tok = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", byte_level},
              {"post_processor", nullptr},
              {"decoder", byte_level},
              {"model",
               {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                {"ignore_merges", false}, {"vocab", vocab}, {"merges", json::array()}}}};
  // ChatML: each turn is <|im_start|>role\ncontent<|im_end|>\n.
  const std::string chatml =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  const json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                       {"bos_token", nullptr},
                       {"eos_token", "<|endoftext|>"},
                       {"pad_token", "<|pad|>"},
                       {"unk_token", nullptr},
                       {"clean_up_tokenization_spaces", false},
                       {"model_max_length", 1000000000},
                       {"chat_template", chatml}};
  write_atomically(dir + "/tokenizer.json", tok.dump(1) + "\n");
  write_atomically(dir + "/tokenizer_config.json", config.dump(1) + "\n");
}

}  // namespace hone

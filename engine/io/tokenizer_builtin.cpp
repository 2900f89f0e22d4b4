// Tokenizers built in code rather than from tokenizer.json: the plain byte-level tokenizer
// (256 byte ids + specials, no merges) and GPT-2's vocab.json + merges.txt.
#include <nlohmann/json.hpp>

#include "hone/error.h"
#include "hone/tokenizer.h"
#include "io/tokenizer_impl.h"

namespace hone {

namespace {

std::shared_ptr<io::TokenizerData> byte_level_skeleton(const std::string& source, bool gpt2_regex) {
  auto d = std::make_shared<io::TokenizerData>();
  d->source = source;
  io::PreTokenizer p;
  p.kind = io::PreTokenizer::Kind::ByteLevel;
  p.add_prefix_space = false;
  if (gpt2_regex) p.pattern = io::gpt2_regex_shared();
  d->pre_tokenizer = p;
  io::Decoder dec;
  dec.kind = io::Decoder::Kind::ByteLevel;
  d->decoder = dec;
  for (int b = 0; b < 256; ++b) d->model.byte_ids[b] = -1;
  return d;
}

void add_special(io::TokenizerData& d, const std::string& content, std::int32_t id) {
  io::AddedToken a;
  a.id = id;
  a.content = content;
  a.special = true;
  d.added.push_back(a);
}

}  // namespace

Tokenizer Tokenizer::byte_level(const std::vector<std::string>& special_tokens) {
  auto d = byte_level_skeleton("byte-level tokenizer", false);
  d->id_to_token.resize(256);
  for (int b = 0; b < 256; ++b) {
    const std::string& t = io::byte_to_unicode(static_cast<std::uint8_t>(b));
    d->model.vocab[t] = b;
    d->id_to_token[b] = t;
  }
  for (std::size_t i = 0; i < special_tokens.size(); ++i) {
    HONE_CHECK(!special_tokens[i].empty(), "tokenizer", "byte-level tokenizer: special token ", i, " is empty");
    for (std::size_t j = 0; j < i; ++j)
      HONE_CHECK(special_tokens[j] != special_tokens[i], "tokenizer",
                 "byte-level tokenizer: special token '", special_tokens[i], "' given twice");
    add_special(*d, special_tokens[i], static_cast<std::int32_t>(256 + i));
  }
  d->finish_added_tokens();
  return Tokenizer(std::move(d));
}

Tokenizer Tokenizer::from_gpt2_files(const std::string& vocab_json, const std::string& merges_txt) {
  auto d = byte_level_skeleton(vocab_json, true);
  nlohmann::json v;
  try {
    v = nlohmann::json::parse(io::read_text_file(vocab_json));
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer", cat(vocab_json, ": malformed JSON: ", e.what()));
  }
  HONE_CHECK(v.is_object(), "tokenizer", vocab_json, ": must be a JSON object of token → id");
  std::int32_t max_id = -1;
  for (auto it = v.begin(); it != v.end(); ++it) {
    HONE_CHECK(it.value().is_number_unsigned(), "tokenizer", vocab_json, ": token '", it.key(),
               "' must map to a non-negative integer id");
    const auto id = it.value().get<std::int32_t>();
    d->model.vocab[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  d->id_to_token.resize(max_id + 1);
  for (const auto& [t, id] : d->model.vocab) d->id_to_token[id] = t;

  const std::string merges = io::read_text_file(merges_txt);
  std::size_t pos = 0, line_no = 0;
  std::uint32_t rank = 0;
  while (pos < merges.size()) {
    std::size_t end = merges.find('\n', pos);
    if (end == std::string::npos) end = merges.size();
    std::string line = merges.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const std::size_t sp = line.find(' ');
    HONE_CHECK(sp != std::string::npos && line.find(' ', sp + 1) == std::string::npos, "tokenizer",
               merges_txt, ": line ", line_no, " '", line, "' is not two tokens separated by one space");
    const std::string a = line.substr(0, sp), b = line.substr(sp + 1);
    auto ia = d->model.vocab.find(a), ib = d->model.vocab.find(b), im = d->model.vocab.find(a + b);
    HONE_CHECK(ia != d->model.vocab.end() && ib != d->model.vocab.end() && im != d->model.vocab.end(),
               "tokenizer", merges_txt, ": line ", line_no, " '", line,
               "' uses or makes a token missing from ", vocab_json);
    d->model.merges[(static_cast<std::uint64_t>(ia->second) << 32) | static_cast<std::uint32_t>(ib->second)] =
        (static_cast<std::uint64_t>(rank++) << 32) | static_cast<std::uint32_t>(im->second);
  }
  auto eot = d->model.vocab.find("<|endoftext|>");
  if (eot != d->model.vocab.end()) {
    add_special(*d, eot->first, eot->second);
    d->bos = eot->second;
    d->eos = {eot->second};
  }
  d->finish_added_tokens();
  return Tokenizer(std::move(d));
}

}  // namespace hone

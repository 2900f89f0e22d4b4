// hone::Tokenizer: the encode pipeline (added tokens → normalizer → pre-tokenizer → BPE →
// post-processor), decode (decoder, transformers' clean-up), batch encode and lookups.
#include "hone/tokenizer.h"

#include <atomic>
#include <thread>

#include "hone/error.h"
#include "io/tokenizer_impl.h"

namespace hone {

using io::AddedToken;
using io::TokenizerData;

namespace {

bool is_word_char(char32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  return !io::is_unicode_whitespace(c);
}

char32_t code_point_before(std::string_view s, std::size_t pos) {
  std::size_t b = pos;
  do --b;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80);
  return io::next_code_point(s, b);
}

// Segment of the input: an added token's id, or text (id < 0).
struct Segment {
  std::string text;
  std::int32_t id;
  bool at_start;
};

// Splits `s` at the added tokens of `lists` (leftmost, then longest match), honouring
// single_word, lstrip and rstrip.
void split_added(const TokenizerData& d, const std::vector<std::int32_t> (&lists)[256],
                 const std::string& s, bool at_start, std::vector<Segment>& out) {
  std::size_t text_begin = 0;  // start of the pending text
  std::size_t i = 0;
  while (i < s.size()) {
    const auto& cands = lists[static_cast<unsigned char>(s[i])];
    const AddedToken* hit = nullptr;
    for (std::int32_t k : cands) {
      const AddedToken& a = d.added[k];
      if (s.compare(i, a.content.size(), a.content) != 0) continue;
      if (a.single_word) {
        const std::size_t e = i + a.content.size();
        if (i > 0 && is_word_char(code_point_before(s, i))) continue;
        std::size_t j = e;
        if (e < s.size() && is_word_char(io::next_code_point(s, j))) continue;
      }
      hit = &a;
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    std::size_t b = i, e = i + hit->content.size();
    if (hit->lstrip)
      while (b > text_begin) {
        const char32_t c = code_point_before(s, b);
        if (!io::is_unicode_whitespace(c)) break;
        std::size_t cb = b;
        do --cb;
        while (cb > 0 && (static_cast<unsigned char>(s[cb]) & 0xC0) == 0x80);
        b = cb;
      }
    if (hit->rstrip)
      while (e < s.size()) {
        std::size_t j = e;
        if (!io::is_unicode_whitespace(io::next_code_point(s, j))) break;
        e = j;
      }
    if (b > text_begin) out.push_back({s.substr(text_begin, b - text_begin), -1, at_start && text_begin == 0});
    out.push_back({std::string(), hit->id, false});
    i = text_begin = e;
  }
  if (text_begin < s.size()) out.push_back({s.substr(text_begin), -1, at_start && text_begin == 0});
}

void encode_text(const TokenizerData& d, const Segment& seg, std::vector<std::int32_t>& ids) {
  std::vector<Segment> parts;
  if (d.normalizer) {
    const std::string norm = io::apply_normalizer(*d.normalizer, seg.text);
    split_added(d, d.by_first_byte_norm, norm, seg.at_start, parts);
  } else if (d.has_normalized_added) {
    split_added(d, d.by_first_byte_norm, seg.text, seg.at_start, parts);
  } else {
    parts.push_back(seg);
  }
  for (const Segment& p : parts) {
    if (p.id >= 0) {
      ids.push_back(p.id);
      continue;
    }
    std::vector<io::Piece> pieces{{p.text, p.at_start}};
    if (d.pre_tokenizer) io::apply_pre_tokenizer(*d.pre_tokenizer, pieces);
    for (const io::Piece& pc : pieces) d.model.encode_word(pc.text, ids);
  }
}

}  // namespace

const TokenizerData& Tokenizer::data() const {
  HONE_CHECK(data_ != nullptr, "tokenizer", "this Tokenizer is empty (default-constructed)");
  return *data_;
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const TokenizerData& d = data();
  const std::string input = io::utf8_lossy(text);
  std::vector<Segment> segs;
  split_added(d, d.by_first_byte_raw, input, true, segs);
  std::vector<std::int32_t> body;
  body.reserve(input.size() / 3 + 4);
  for (const Segment& s : segs) {
    if (s.id >= 0) body.push_back(s.id);
    else encode_text(d, s, body);
  }
  if (!add_special_tokens || !d.post.has_template) return body;
  std::vector<std::int32_t> out;
  out.reserve(body.size() + 4);
  for (const io::TemplateItem& t : d.post.single) {
    if (t.is_sequence) out.insert(out.end(), body.begin(), body.end());
    else out.insert(out.end(), t.ids.begin(), t.ids.end());
  }
  return out;
}

std::vector<std::vector<std::int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                               bool add_special_tokens,
                                                               int num_threads) const {
  std::vector<std::vector<std::int32_t>> out(texts.size());
  int n = num_threads > 0 ? num_threads : static_cast<int>(std::thread::hardware_concurrency());
  n = std::max(1, std::min<int>(n, static_cast<int>(texts.size())));
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(n);
  auto work = [&](int w) {
    try {
      for (std::size_t i = next++; i < texts.size(); i = next++) out[i] = encode(texts[i], add_special_tokens);
    } catch (...) {
      errors[w] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < n; ++w) threads.emplace_back(work, w);
  work(0);
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

std::string Tokenizer::decode_raw(const std::vector<std::int32_t>& ids, bool skip_special_tokens) const {
  const TokenizerData& d = data();
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::int32_t id : ids) {
    HONE_CHECK(id >= 0 && static_cast<std::size_t>(id) < d.id_to_token.size() &&
                   (!d.id_to_token[id].empty() || d.id_is_added[id]),
               "tokenizer", d.source, ": decode: id ", id, " is not in the vocabulary (size ",
               d.id_to_token.size(), ")");
    if (skip_special_tokens && d.id_is_special[id]) continue;
    tokens.push_back(d.id_to_token[id]);
  }
  std::string out;
  if (d.decoder) {
    for (const std::string& t : io::apply_decoder(*d.decoder, std::move(tokens))) out += t;
  } else {
    for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids, const DecodeOptions& options) const {
  std::string s = decode_raw(ids, options.skip_special_tokens);
  const bool clean = options.clean_up_tokenization_spaces.value_or(data().clean_up);
  return clean ? io::clean_up_tokenization(std::move(s)) : s;
}

std::string Tokenizer::normalize(std::string_view text) const {
  std::string s = io::utf8_lossy(text);
  return data().normalizer ? io::apply_normalizer(*data().normalizer, std::move(s)) : s;
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const std::string t(token);
  auto a = data().added_by_content.find(t);
  if (a != data().added_by_content.end()) return a->second;
  auto v = data().model.vocab.find(t);
  if (v != data().model.vocab.end()) return v->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(std::int32_t id) const {
  const TokenizerData& d = data();
  HONE_CHECK(id >= 0 && static_cast<std::size_t>(id) < d.id_to_token.size() &&
                 (!d.id_to_token[id].empty() || d.id_is_added[id]),
             "tokenizer", d.source, ": id ", id, " is not in the vocabulary");
  return d.id_to_token[id];
}

std::int64_t Tokenizer::vocab_size() const { return static_cast<std::int64_t>(data().id_to_token.size()); }
bool Tokenizer::is_special(std::int32_t id) const {
  return id >= 0 && static_cast<std::size_t>(id) < data().id_is_special.size() && data().id_is_special[id];
}
std::optional<std::int32_t> Tokenizer::bos_id() const { return data().bos; }
std::vector<std::int32_t> Tokenizer::eos_ids() const { return data().eos; }
std::optional<std::int32_t> Tokenizer::pad_id() const { return data().pad; }
std::optional<std::int32_t> Tokenizer::unk_id() const { return data().model.unk_id; }
const std::string& Tokenizer::chat_template() const { return data().chat_template; }
bool Tokenizer::clean_up_tokenization_spaces() const { return data().clean_up; }

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                               std::string_view chat_template, const std::string& source) {
  auto d = io::load_tokenizer_json(tokenizer_json, source);
  if (!config_json.empty()) io::load_tokenizer_config(*d, config_json, "tokenizer_config.json");
  if (!chat_template.empty()) d->chat_template = std::string(chat_template);
  return Tokenizer(std::move(d));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  const std::string text = io::read_text_file(path);
  return Tokenizer(io::load_tokenizer_json(text, path));
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  const std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  auto d = io::load_tokenizer_json(io::read_text_file(base + "tokenizer.json"), base + "tokenizer.json");
  const std::string config = base + "tokenizer_config.json";
  if (std::FILE* f = std::fopen(config.c_str(), "rb")) {
    std::fclose(f);
    io::load_tokenizer_config(*d, io::read_text_file(config), config);
  }
  const std::string jinja = base + "chat_template.jinja";
  if (std::FILE* f = std::fopen(jinja.c_str(), "rb")) {
    std::fclose(f);
    d->chat_template = io::read_text_file(jinja);
  }
  return Tokenizer(std::move(d));
}

}  // namespace hone

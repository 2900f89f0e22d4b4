// Tokenizer normalizers (NFC, Prepend, Replace, Sequence), decoders (ByteLevel, Replace,
// ByteFallback, Fuse, Strip, Metaspace, Sequence) and transformers' clean-up of spaces.
#include "hone/error.h"
#include "io/tokenizer_impl.h"

namespace hone::io {

namespace {
std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  std::size_t pos = s.find(from);
  if (pos == std::string::npos) return s;
  std::string out;
  out.reserve(s.size());
  std::size_t prev = 0;
  while (pos != std::string::npos) {
    out.append(s, prev, pos - prev);
    out += to;
    prev = pos + from.size();
    pos = s.find(from, prev);
  }
  out.append(s, prev, std::string::npos);
  return out;
}
}  // namespace

std::string apply_normalizer(const Normalizer& n, std::string s) {
  switch (n.kind) {
    case Normalizer::Kind::NFC: return nfc(s);
    case Normalizer::Kind::Prepend:
      if (s.empty()) return s;  // tokenizers leaves empty strings alone
      return n.text + s;
    case Normalizer::Kind::Replace: {
      std::vector<std::pair<std::size_t, std::size_t>> m;
      n.pattern->find_all(s, m);
      if (m.empty()) return s;
      std::string out;
      out.reserve(s.size() + m.size() * n.text.size());
      std::size_t prev = 0;
      for (auto [b, e] : m) {
        out.append(s, prev, b - prev);
        out += n.text;
        prev = e;
      }
      out.append(s, prev, std::string::npos);
      return out;
    }
    case Normalizer::Kind::Sequence:
      for (const Normalizer& c : n.children) s = apply_normalizer(c, std::move(s));
      return s;
  }
  return s;
}

namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string bytes;
  auto flush = [&] {
    if (bytes.empty()) return;
    if (is_valid_utf8(bytes)) out.push_back(bytes);
    else
      for (std::size_t i = 0; i < bytes.size(); ++i) out.push_back("\xEF\xBF\xBD");
    bytes.clear();
  };
  for (std::string& t : tokens) {
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_digit(t[3]) >= 0 &&
        hex_digit(t[4]) >= 0) {
      bytes += static_cast<char>(hex_digit(t[3]) * 16 + hex_digit(t[4]));
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  return out;
}

// Strips up to `n` copies of the code point `c` (UTF-8) from one end of the token.
void strip_token(std::string& t, const std::string& c, int start, int stop) {
  for (int i = 0; i < start && !c.empty() && t.compare(0, c.size(), c) == 0; ++i) t.erase(0, c.size());
  for (int i = 0; i < stop && !c.empty() && t.size() >= c.size() &&
                  t.compare(t.size() - c.size(), c.size(), c) == 0;
       ++i)
    t.erase(t.size() - c.size());
}
}  // namespace

std::vector<std::string> apply_decoder(const Decoder& d, std::vector<std::string> tokens) {
  switch (d.kind) {
    case Decoder::Kind::ByteLevel: {
      std::string bytes;
      for (const std::string& t : tokens) {
        for (std::size_t i = 0; i < t.size();) {
          const std::size_t b = i;
          const char32_t cp = next_code_point(t, i);
          const int byte = unicode_to_byte(cp);
          if (byte >= 0) bytes += static_cast<char>(byte);
          else bytes.append(t, b, i - b);
        }
      }
      return {utf8_lossy(bytes)};
    }
    case Decoder::Kind::Replace:
      for (std::string& t : tokens) t = replace_all(std::move(t), d.pattern, d.content);
      return tokens;
    case Decoder::Kind::ByteFallback: return byte_fallback(std::move(tokens));
    case Decoder::Kind::Fuse: {
      std::string all;
      for (const std::string& t : tokens) all += t;
      return {all};
    }
    case Decoder::Kind::Strip:
      for (std::string& t : tokens) strip_token(t, d.content, d.start, d.stop);
      return tokens;
    case Decoder::Kind::Metaspace:
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = replace_all(std::move(tokens[i]), d.content, " ");
        if (i == 0 && d.prepend && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
      }
      return tokens;
    case Decoder::Kind::Sequence:
      for (const Decoder& c : d.children) tokens = apply_decoder(c, std::move(tokens));
      return tokens;
  }
  return tokens;
}

std::string clean_up_tokenization(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) s = replace_all(std::move(s), from, to);
  return s;
}

}  // namespace hone::io

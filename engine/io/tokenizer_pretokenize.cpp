// Tokenizer pre-tokenizers: the PCRE2 regex wrapper, Split (all behaviours, invert), ByteLevel
// (prefix space, GPT-2 regex, byte → unicode map), Metaspace and Sequence.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "hone/error.h"
#include "io/tokenizer_impl.h"

namespace hone::io {

Regex::Regex(const std::string& pattern, bool literal, const std::string& where) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  const uint32_t opts = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   opts, &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("tokenizer", cat(where, ": regex '", pattern, "' does not compile at offset ", err_off,
                          ": ", reinterpret_cast<const char*>(msg)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when unavailable
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view s,
                     std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const int rc = pcre2_match(code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("tokenizer", cat("regex match failed: ", reinterpret_cast<const char*>(msg)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const std::size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      // Empty match: step over one code point.
      pos = b + 1;
      while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  pcre2_match_data_free(md);
}

namespace {

const Regex& gpt2_regex() {
  static const Regex r(
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", false,
      "GPT-2 byte-level regex");
  return r;
}

// Splits each piece at the regex's matches according to the behaviour.
void split_pieces(const Regex& re, SplitBehavior behavior, bool invert, std::vector<Piece>& pieces) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 4);
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  struct Seg {
    std::size_t b, e;
    bool match;
  };
  std::vector<Seg> segs;
  for (Piece& p : pieces) {
    matches.clear();
    re.find_all(p.text, matches);
    segs.clear();
    std::size_t prev = 0;
    for (auto [b, e] : matches) {
      if (b > prev) segs.push_back({prev, b, invert});
      segs.push_back({b, e, !invert});
      prev = e;
    }
    if (prev < p.text.size()) segs.push_back({prev, p.text.size(), invert});

    std::vector<Seg> res;
    switch (behavior) {
      case SplitBehavior::Removed:
        for (const Seg& s : segs)
          if (!s.match) res.push_back(s);
        break;
      case SplitBehavior::Isolated: res = segs; break;
      case SplitBehavior::MergedWithPrevious:
        for (const Seg& s : segs) {
          if (s.match && !res.empty() && !res.back().match) res.back().e = s.e, res.back().match = true;
          else res.push_back(s);
        }
        break;
      case SplitBehavior::MergedWithNext: {
        bool pending = false;
        for (const Seg& s : segs) {
          if (pending && !s.match) res.back().e = s.e, res.back().match = false;
          else res.push_back(s);
          pending = s.match;
        }
        break;
      }
      case SplitBehavior::Contiguous:
        for (const Seg& s : segs) {
          if (s.match && !res.empty() && res.back().match) res.back().e = s.e;
          else res.push_back(s);
        }
        break;
    }
    for (const Seg& s : res)
      if (s.e > s.b) out.push_back({p.text.substr(s.b, s.e - s.b), p.at_start && s.b == 0});
  }
  pieces.swap(out);
}

void byte_level(const PreTokenizer& p, std::vector<Piece>& pieces) {
  if (p.add_prefix_space)
    for (Piece& pc : pieces)
      if (pc.text.empty() || pc.text[0] != ' ') pc.text.insert(pc.text.begin(), ' ');
  if (p.pattern) split_pieces(*p.pattern, SplitBehavior::Isolated, false, pieces);
  for (Piece& pc : pieces) {
    std::string mapped;
    mapped.reserve(pc.text.size() * 2);
    for (unsigned char c : pc.text) mapped += byte_to_unicode(c);
    pc.text.swap(mapped);
  }
}

void metaspace(const PreTokenizer& p, std::vector<Piece>& pieces) {
  std::vector<Piece> out;
  for (Piece& pc : pieces) {
    std::string t;
    t.reserve(pc.text.size() + 3);
    for (char c : pc.text) {
      if (c == ' ') t += p.replacement;
      else t += c;
    }
    const bool prepend = p.prepend == PreTokenizer::Prepend::Always ||
                         (p.prepend == PreTokenizer::Prepend::First && pc.at_start);
    if (prepend && t.compare(0, p.replacement.size(), p.replacement) != 0) t = p.replacement + t;
    if (!p.split) {
      out.push_back({t, pc.at_start});
      continue;
    }
    // Split before each replacement char (MergedWithNext).
    std::size_t start = 0;
    std::size_t pos = t.find(p.replacement, 1);
    while (pos != std::string::npos) {
      out.push_back({t.substr(start, pos - start), pc.at_start && start == 0});
      start = pos;
      pos = t.find(p.replacement, pos + p.replacement.size());
    }
    if (start < t.size()) out.push_back({t.substr(start), pc.at_start && start == 0});
  }
  pieces.swap(out);
}

}  // namespace

void apply_pre_tokenizer(const PreTokenizer& p, std::vector<Piece>& pieces) {
  switch (p.kind) {
    case PreTokenizer::Kind::Split: split_pieces(*p.pattern, p.behavior, p.invert, pieces); break;
    case PreTokenizer::Kind::ByteLevel: byte_level(p, pieces); break;
    case PreTokenizer::Kind::Metaspace: metaspace(p, pieces); break;
    case PreTokenizer::Kind::Sequence:
      for (const PreTokenizer& c : p.children) apply_pre_tokenizer(c, pieces);
      break;
  }
}

// Exposed for the loader: ByteLevel with use_regex uses GPT-2's built-in pattern.
std::shared_ptr<Regex> gpt2_regex_shared() {
  static const std::shared_ptr<Regex> r(const_cast<Regex*>(&gpt2_regex()), [](Regex*) {});
  return r;
}

}  // namespace hone::io

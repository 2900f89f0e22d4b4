// Unicode helpers for the tokenizer: UTF-8 coding (lossy like Rust's from_utf8_lossy), NFC over
// the generated tables, GPT-2's byte ↔ unicode map, whitespace.
#include <algorithm>
#include <array>
#include <vector>

#include "io/tokenizer_impl.h"
#include "io/tokenizer_nfc_decomp.h"
#include "io/tokenizer_nfc_table.h"

namespace hone::io {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    ++i;
    return 0xFFFD;
  }
  std::size_t j = i + 1;
  for (int k = 1; k < len; ++k, ++j) {
    if (j >= s.size()) {
      i = j;
      return 0xFFFD;
    }
    const auto b = static_cast<unsigned char>(s[j]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      i = j;  // the maximal invalid subpart ends before b
      return 0xFFFD;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  i = j;
  return cp;
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t before = i;
    const char32_t cp = next_code_point(s, i);
    if (cp == 0xFFFD && !(i - before == 3 && static_cast<unsigned char>(s[before]) == 0xEF))
      return false;
  }
  return true;
}

std::string utf8_lossy(std::string_view bytes) {
  if (is_valid_utf8(bytes)) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + 8);
  std::size_t i = 0;
  while (i < bytes.size()) append_utf8(out, next_code_point(bytes, i));
  return out;
}

bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// ---- GPT-2 byte map ----
namespace {
struct ByteMap {
  std::array<std::string, 256> to_text;
  std::array<std::int16_t, 512> from_cp;  // code points < 512 only are used
  ByteMap() {
    from_cp.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool same = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const char32_t cp = same ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      append_utf8(to_text[b], cp);
      from_cp[cp] = static_cast<std::int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

const std::string& byte_to_unicode(std::uint8_t b) { return byte_map().to_text[b]; }
int unicode_to_byte(char32_t cp) { return cp < 512 ? byte_map().from_cp[cp] : -1; }

// ---- NFC ----
namespace {
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
              kSCount = kLCount * kNCount;

int ccc_of(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* b = std::begin(nfc_data::kCcc);
  const auto* e = std::end(nfc_data::kCcc);
  const auto* it = std::upper_bound(b, e, cp, [](char32_t v, const nfc_data::CccRange& r) {
    return v < r.first;
  });
  if (it == b) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

void decompose_into(char32_t cp, std::u32string& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const int s = static_cast<int>(cp - kSBase);
    out += static_cast<char32_t>(kLBase + s / kNCount);
    out += static_cast<char32_t>(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out += static_cast<char32_t>(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0) {
    const auto* b = std::begin(nfc_data::kDecomp);
    const auto* e = std::end(nfc_data::kDecomp);
    const auto* it = std::lower_bound(b, e, cp, [](const nfc_data::Decomp& d, char32_t v) {
      return d.cp < v;
    });
    if (it != e && it->cp == cp) {
      for (int k = 0; k < it->len; ++k) out += nfc_data::kDecompPool[it->offset + k];
      return;
    }
  }
  out += cp;
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto* bg = std::begin(nfc_data::kComp);
  const auto* e = std::end(nfc_data::kComp);
  const auto* it = std::lower_bound(bg, e, std::make_pair(a, b),
                                    [](const nfc_data::Comp& c, std::pair<char32_t, char32_t> v) {
                                      return c.first != v.first ? c.first < v.first
                                                                : c.second < v.second;
                                    });
  if (it != e && it->first == a && it->second == b) return it->composed;
  return 0;
}

// True for code points that may change under NFC or affect their neighbours (see the table).
bool nfc_unsafe(char32_t cp) {
  if (cp < 0x300) return false;
  static const std::vector<bool> bmp = [] {
    std::vector<bool> v(0x10000, false);
    for (const auto& r : nfc_data::kUnsafe)
      for (std::uint32_t c = r.first; c <= r.last && c < 0x10000; ++c) v[c] = true;
    return v;
  }();
  if (cp < 0x10000) return bmp[cp];
  const auto* b = std::begin(nfc_data::kUnsafe);
  const auto* e = std::end(nfc_data::kUnsafe);
  const auto* it = std::upper_bound(b, e, cp, [](char32_t v, const nfc_data::Range& r) { return v < r.first; });
  return it != b && cp <= (it - 1)->last;
}

// NFC of a run that starts at a safe code point (or the text start) and ends before one.
void nfc_run(std::string_view s, std::string& r) {
  std::u32string d;
  d.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) decompose_into(next_code_point(s, i), d);
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  std::vector<int> cls(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) cls[i] = ccc_of(d[i]);
  for (std::size_t i = 0; i < d.size();) {
    if (cls[i] == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < d.size() && cls[j] != 0) ++j;
    // insertion sort (runs are short), stable
    for (std::size_t a = i + 1; a < j; ++a)
      for (std::size_t b = a; b > i && cls[b - 1] > cls[b]; --b) {
        std::swap(cls[b - 1], cls[b]);
        std::swap(d[b - 1], d[b]);
      }
    i = j;
  }
  // Canonical composition.
  std::u32string out;
  std::vector<int> out_cls;
  out.reserve(d.size());
  std::ptrdiff_t starter = -1;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const char32_t c = d[i];
    const int cc = cls[i];
    if (starter >= 0) {
      // Blocked when the last char kept after the starter has ccc 0 or ≥ cc.
      const bool adjacent = static_cast<std::size_t>(starter) + 1 == out.size();
      const int last_cc = adjacent ? -1 : out_cls.back();
      const bool blocked = !adjacent && (last_cc == 0 || last_cc >= cc);
      if (!blocked) {
        const char32_t comp = compose_pair(out[starter], c);
        if (comp) {
          out[starter] = comp;
          continue;
        }
      }
    }
    if (cc == 0) starter = static_cast<std::ptrdiff_t>(out.size());
    out += c;
    out_cls.push_back(cc);
  }
  for (char32_t c : out) append_utf8(r, c);
}
}  // namespace

std::string nfc(std::string_view s) {
  // Text without code points ≥ U+0300 is already in NFC.
  bool simple = true;
  for (unsigned char c : s)
    if (c >= 0xCC) {
      simple = false;
      break;
    }
  if (simple) return std::string(s);
  // Copy safe code points; normalize each run from the last safe code point before an unsafe
  // one up to the next safe code point.
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t done = 0, last_safe = 0, i = 0;
  while (i < s.size()) {
    const std::size_t b = i;
    if (!nfc_unsafe(next_code_point(s, i))) {
      last_safe = b;
      continue;
    }
    const std::size_t start = std::max(last_safe, done);
    std::size_t e = i;
    while (e < s.size()) {
      const std::size_t b2 = e;
      if (!nfc_unsafe(next_code_point(s, e))) {
        e = b2;
        break;
      }
    }
    out.append(s.substr(done, start - done));
    nfc_run(s.substr(start, e - start), out);
    done = i = e;
  }
  out.append(s.substr(done));
  return out;
}

}  // namespace hone::io

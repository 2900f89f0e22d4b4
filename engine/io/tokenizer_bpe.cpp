// The BPE model: initial symbols per character (byte fallback, unk, fuse_unk), merges applied
// lowest rank first with a heap (like tokenizers' Word::merge_all), and a bounded word cache.
#include <queue>

#include "io/tokenizer_impl.h"

namespace hone::io {

namespace {
constexpr std::size_t kCacheCapacity = 50000;
constexpr std::size_t kCacheMaxWordBytes = 256;

struct Symbol {
  std::int32_t id;
  std::int32_t prev, next;
  bool alive;
};

struct Candidate {
  std::uint32_t rank;
  std::int32_t pos;
  std::int32_t new_id;
  bool operator>(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
         static_cast<std::uint32_t>(b);
}
}  // namespace

void BpeModel::encode_word(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    auto it = vocab.find(std::string(word));
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }

  // Initial symbols.
  std::vector<Symbol> syms;
  syms.reserve(word.size());
  auto add = [&](std::int32_t id) {
    const auto n = static_cast<std::int32_t>(syms.size());
    syms.push_back({id, n - 1, n + 1, true});
  };
  bool last_unk = false;
  std::string piece;
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t b = i;
    next_code_point(word, i);
    piece.clear();
    if (b > 0) piece += continuing_subword_prefix;
    piece.append(word.substr(b, i - b));
    if (i == word.size()) piece += end_of_word_suffix;
    auto it = vocab.find(piece);
    if (it != vocab.end()) {
      add(it->second);
      last_unk = false;
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (std::size_t k = b; k < i; ++k)
        if (byte_ids[static_cast<unsigned char>(word[k])] < 0) all = false;
      if (all) {
        for (std::size_t k = b; k < i; ++k) add(byte_ids[static_cast<unsigned char>(word[k])]);
        last_unk = false;
        continue;
      }
    }
    if (unk_id) {
      if (!(fuse_unk && last_unk)) add(*unk_id);
      last_unk = true;
    }
    // Without an unk token the character is dropped, as tokenizers does.
  }
  if (!syms.empty()) syms.back().next = -1;

  // Merges.
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](std::int32_t pos) {
    const std::int32_t nx = syms[pos].next;
    if (nx < 0) return;
    auto it = merges.find(pair_key(syms[pos].id, syms[nx].id));
    if (it != merges.end())
      heap.push({static_cast<std::uint32_t>(it->second >> 32), pos,
                 static_cast<std::int32_t>(it->second & 0xFFFFFFFFu)});
  };
  for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(syms.size()); ++i) consider(i);
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& cur = syms[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    Symbol& right = syms[cur.next];
    auto it = merges.find(pair_key(cur.id, right.id));
    if (it == merges.end() || static_cast<std::int32_t>(it->second & 0xFFFFFFFFu) != top.new_id)
      continue;
    cur.id = top.new_id;
    right.alive = false;
    cur.next = right.next;
    if (right.next >= 0) syms[right.next].prev = top.pos;
    if (cur.prev >= 0) consider(cur.prev);
    consider(top.pos);
  }

  std::vector<std::int32_t> ids;
  ids.reserve(syms.size());
  for (std::int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) ids.push_back(syms[i].id);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() < kCacheCapacity) cache.emplace(std::move(key), std::move(ids));
  }
}

}  // namespace hone::io

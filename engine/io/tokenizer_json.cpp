// Loading tokenizer.json and tokenizer_config.json into TokenizerData. Every type and option the
// encoder does not implement is refused by name; malformed JSON names the file and the reason.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "hone/error.h"
#include "io/tokenizer_impl.h"

namespace hone::io {

using json = nlohmann::json;

namespace {

class Loader {
 public:
  explicit Loader(const std::string& source) : source_(source) {}

  [[noreturn]] void error(const std::string& what) const { fail("tokenizer", cat(source_, ": ", what)); }

  // Refuses keys outside `allowed` (options that would change the encoding).
  void check_keys(const json& obj, const std::string& what, std::initializer_list<const char*> allowed) const {
    if (!obj.is_object()) error(cat(what, " must be a JSON object"));
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      bool ok = false;
      for (const char* a : allowed) ok = ok || it.key() == a;
      if (!ok) error(cat(what, " option '", it.key(), "' is not supported"));
    }
  }
  std::string type_of(const json& obj, const std::string& what) const {
    if (!obj.is_object() || !obj.contains("type") || !obj["type"].is_string())
      error(cat(what, " has no string 'type'"));
    return obj["type"].get<std::string>();
  }
  std::string str(const json& obj, const char* key, const std::string& what) const {
    if (!obj.contains(key) || !obj[key].is_string()) error(cat(what, " field '", key, "' must be a string"));
    return obj[key].get<std::string>();
  }
  bool flag(const json& obj, const char* key, bool dflt, const std::string& what) const {
    if (!obj.contains(key) || obj[key].is_null()) return dflt;
    if (!obj[key].is_boolean()) error(cat(what, " field '", key, "' must be true or false"));
    return obj[key].get<bool>();
  }
  const json& array(const json& obj, const char* key, const std::string& what) const {
    if (!obj.contains(key) || !obj[key].is_array()) error(cat(what, " field '", key, "' must be an array"));
    return obj[key];
  }
  // {"String": s} or {"Regex": r}.
  std::shared_ptr<Regex> pattern(const json& obj, const std::string& what) const {
    if (!obj.contains("pattern") || !obj["pattern"].is_object()) error(cat(what, " has no 'pattern'"));
    const json& p = obj["pattern"];
    if (p.contains("String") && p["String"].is_string())
      return std::make_shared<Regex>(p["String"].get<std::string>(), true, cat(source_, ": ", what));
    if (p.contains("Regex") && p["Regex"].is_string())
      return std::make_shared<Regex>(p["Regex"].get<std::string>(), false, cat(source_, ": ", what));
    error(cat(what, " pattern must be {\"String\": …} or {\"Regex\": …}"));
  }

  Normalizer normalizer(const json& j) const {
    const std::string type = type_of(j, "normalizer");
    Normalizer n;
    if (type == "NFC") {
      check_keys(j, "normalizer 'NFC'", {"type"});
      n.kind = Normalizer::Kind::NFC;
    } else if (type == "Prepend") {
      check_keys(j, "normalizer 'Prepend'", {"type", "prepend"});
      n.kind = Normalizer::Kind::Prepend;
      n.text = str(j, "prepend", "normalizer 'Prepend'");
    } else if (type == "Replace") {
      check_keys(j, "normalizer 'Replace'", {"type", "pattern", "content"});
      n.kind = Normalizer::Kind::Replace;
      n.pattern = pattern(j, "normalizer 'Replace'");
      n.text = str(j, "content", "normalizer 'Replace'");
    } else if (type == "Sequence") {
      check_keys(j, "normalizer 'Sequence'", {"type", "normalizers"});
      for (const json& c : array(j, "normalizers", "normalizer 'Sequence'")) n.children.push_back(normalizer(c));
    } else {
      error(cat("normalizer type '", type, "' is not supported"));
    }
    return n;
  }

  PreTokenizer::Prepend prepend_scheme(const json& j, const std::string& what) const {
    if (j.contains("prepend_scheme")) {
      const std::string s = str(j, "prepend_scheme", what);
      if (s == "always") return PreTokenizer::Prepend::Always;
      if (s == "first") return PreTokenizer::Prepend::First;
      if (s == "never") return PreTokenizer::Prepend::Never;
      error(cat(what, " prepend_scheme '", s, "' is not supported"));
    }
    return flag(j, "add_prefix_space", true, what) ? PreTokenizer::Prepend::Always
                                                   : PreTokenizer::Prepend::Never;
  }

  PreTokenizer pre_tokenizer(const json& j) const {
    const std::string type = type_of(j, "pre_tokenizer");
    PreTokenizer p;
    if (type == "Split") {
      const std::string w = "pre_tokenizer 'Split'";
      check_keys(j, w, {"type", "pattern", "behavior", "invert"});
      p.kind = PreTokenizer::Kind::Split;
      p.pattern = pattern(j, w);
      const std::string b = str(j, "behavior", w);
      if (b == "Removed") p.behavior = SplitBehavior::Removed;
      else if (b == "Isolated") p.behavior = SplitBehavior::Isolated;
      else if (b == "MergedWithPrevious") p.behavior = SplitBehavior::MergedWithPrevious;
      else if (b == "MergedWithNext") p.behavior = SplitBehavior::MergedWithNext;
      else if (b == "Contiguous") p.behavior = SplitBehavior::Contiguous;
      else error(cat(w, " behavior '", b, "' is not supported"));
      p.invert = flag(j, "invert", false, w);
    } else if (type == "ByteLevel") {
      const std::string w = "pre_tokenizer 'ByteLevel'";
      check_keys(j, w, {"type", "add_prefix_space", "trim_offsets", "use_regex"});
      p.kind = PreTokenizer::Kind::ByteLevel;
      p.add_prefix_space = flag(j, "add_prefix_space", true, w);
      if (flag(j, "use_regex", true, w)) p.pattern = gpt2_regex_shared();
    } else if (type == "Metaspace") {
      const std::string w = "pre_tokenizer 'Metaspace'";
      check_keys(j, w, {"type", "replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"});
      p.kind = PreTokenizer::Kind::Metaspace;
      p.replacement = str(j, "replacement", w);
      p.prepend = prepend_scheme(j, w);
      p.split = flag(j, "split", true, w);
    } else if (type == "Sequence") {
      check_keys(j, "pre_tokenizer 'Sequence'", {"type", "pretokenizers"});
      for (const json& c : array(j, "pretokenizers", "pre_tokenizer 'Sequence'"))
        p.children.push_back(pre_tokenizer(c));
    } else {
      error(cat("pre_tokenizer type '", type, "' is not supported"));
    }
    return p;
  }

  void post_processor(const json& j, TokenizerData& d) const {
    const std::string type = type_of(j, "post_processor");
    if (type == "ByteLevel") {
      check_keys(j, "post_processor 'ByteLevel'", {"type", "add_prefix_space", "trim_offsets", "use_regex"});
    } else if (type == "Sequence") {
      check_keys(j, "post_processor 'Sequence'", {"type", "processors"});
      for (const json& c : array(j, "processors", "post_processor 'Sequence'")) post_processor(c, d);
    } else if (type == "TemplateProcessing") {
      const std::string w = "post_processor 'TemplateProcessing'";
      check_keys(j, w, {"type", "single", "pair", "special_tokens"});
      if (d.post.has_template) error("more than one TemplateProcessing post-processor is not supported");
      const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
      d.post.has_template = true;
      for (const json& item : array(j, "single", w)) {
        TemplateItem t;
        if (item.contains("Sequence")) {
          if (str(item["Sequence"], "id", w) != "A") error(cat(w, ": single template uses sequence B"));
          t.is_sequence = true;
        } else if (item.contains("SpecialToken")) {
          const std::string name = str(item["SpecialToken"], "id", w);
          if (!specials.contains(name)) error(cat(w, ": special token '", name, "' not in special_tokens"));
          for (const json& id : array(specials[name], "ids", w)) {
            if (!id.is_number_integer()) error(cat(w, ": ids of '", name, "' must be integers"));
            t.ids.push_back(id.get<std::int32_t>());
          }
        } else {
          error(cat(w, ": template item ", item.dump(), " is not supported"));
        }
        d.post.single.push_back(std::move(t));
      }
    } else {
      error(cat("post_processor type '", type, "' is not supported"));
    }
  }

  Decoder decoder(const json& j) const {
    const std::string type = type_of(j, "decoder");
    Decoder d;
    if (type == "ByteLevel") {
      check_keys(j, "decoder 'ByteLevel'", {"type", "add_prefix_space", "trim_offsets", "use_regex"});
      d.kind = Decoder::Kind::ByteLevel;
    } else if (type == "Replace") {
      const std::string w = "decoder 'Replace'";
      check_keys(j, w, {"type", "pattern", "content"});
      d.kind = Decoder::Kind::Replace;
      if (!j.contains("pattern") || !j["pattern"].contains("String") || !j["pattern"]["String"].is_string())
        error(cat(w, " with a Regex pattern is not supported"));
      d.pattern = j["pattern"]["String"].get<std::string>();
      d.content = str(j, "content", w);
    } else if (type == "ByteFallback") {
      check_keys(j, "decoder 'ByteFallback'", {"type"});
      d.kind = Decoder::Kind::ByteFallback;
    } else if (type == "Fuse") {
      check_keys(j, "decoder 'Fuse'", {"type"});
      d.kind = Decoder::Kind::Fuse;
    } else if (type == "Strip") {
      const std::string w = "decoder 'Strip'";
      check_keys(j, w, {"type", "content", "start", "stop"});
      d.kind = Decoder::Kind::Strip;
      d.content = str(j, "content", w);
      if (!j.contains("start") || !j["start"].is_number_unsigned() || !j.contains("stop") ||
          !j["stop"].is_number_unsigned())
        error(cat(w, " needs non-negative integers 'start' and 'stop'"));
      d.start = j["start"].get<int>();
      d.stop = j["stop"].get<int>();
    } else if (type == "Metaspace") {
      const std::string w = "decoder 'Metaspace'";
      check_keys(j, w, {"type", "replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"});
      d.kind = Decoder::Kind::Metaspace;
      d.content = str(j, "replacement", w);
      d.prepend = prepend_scheme(j, w) != PreTokenizer::Prepend::Never;
    } else if (type == "Sequence") {
      check_keys(j, "decoder 'Sequence'", {"type", "decoders"});
      for (const json& c : array(j, "decoders", "decoder 'Sequence'")) d.children.push_back(decoder(c));
    } else {
      error(cat("decoder type '", type, "' is not supported"));
    }
    return d;
  }

  void model(const json& j, TokenizerData& d) const {
    const std::string type = type_of(j, "model");
    if (type != "BPE") error(cat("model type '", type, "' is not supported"));
    const std::string w = "model 'BPE'";
    check_keys(j, w, {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
                      "fuse_unk", "byte_fallback", "ignore_merges", "vocab", "merges"});
    if (j.contains("dropout") && !j["dropout"].is_null() &&
        !(j["dropout"].is_number() && j["dropout"].get<double>() == 0.0))
      error(cat(w, " option 'dropout' (", j["dropout"].dump(), ") is not supported"));
    BpeModel& m = d.model;
    m.fuse_unk = flag(j, "fuse_unk", false, w);
    m.byte_fallback = flag(j, "byte_fallback", false, w);
    m.ignore_merges = flag(j, "ignore_merges", false, w);
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (j.contains(k) && !j[k].is_null()) {
        if (!j[k].is_string()) error(cat(w, " field '", k, "' must be a string or null"));
        (k[0] == 'c' ? m.continuing_subword_prefix : m.end_of_word_suffix) = j[k].get<std::string>();
      }
    if (!j.contains("vocab") || !j["vocab"].is_object()) error(cat(w, " field 'vocab' must be an object"));
    const json& vocab = j["vocab"];
    m.vocab.reserve(vocab.size() * 2);
    std::int32_t max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0 ||
          it.value().get<std::int64_t>() > 0x7FFFFFFF)
        error(cat(w, " vocab entry '", it.key(), "' must map to a non-negative integer id"));
      const auto id = it.value().get<std::int32_t>();
      m.vocab[it.key()] = id;
      max_id = std::max(max_id, id);
    }
    if (d.id_to_token.size() < static_cast<std::size_t>(max_id + 1)) d.id_to_token.resize(max_id + 1);
    for (const auto& [tok, id] : m.vocab) d.id_to_token[id] = tok;

    const json& merges = array(j, "merges", w);
    m.merges.reserve(merges.size() * 2);
    std::string a, b;
    for (std::size_t r = 0; r < merges.size(); ++r) {
      const json& e = merges[r];
      if (e.is_string()) {
        const std::string& s = e.get_ref<const std::string&>();
        const std::size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          error(cat(w, " merge ", r, " '", s, "' is not two tokens separated by one space"));
        a.assign(s, 0, sp);
        b.assign(s, sp + 1, std::string::npos);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        error(cat(w, " merge ", r, " must be \"a b\" or [\"a\", \"b\"]"));
      }
      add_merge(m, a, b, static_cast<std::uint32_t>(r), w);
    }
    if (j.contains("unk_token") && !j["unk_token"].is_null()) {
      const std::string unk = str(j, "unk_token", w);
      auto it = m.vocab.find(unk);
      if (it == m.vocab.end()) error(cat(w, " unk_token '", unk, "' is not in the vocab"));
      m.unk_id = it->second;
    }
    for (int byte = 0; byte < 256; ++byte) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", byte);
      auto it = m.byte_fallback ? m.vocab.find(name) : m.vocab.end();
      m.byte_ids[byte] = it == m.vocab.end() ? -1 : it->second;
    }
  }

  void add_merge(BpeModel& m, const std::string& a, const std::string& b, std::uint32_t rank,
                 const std::string& w) const {
    auto ia = m.vocab.find(a), ib = m.vocab.find(b);
    if (ia == m.vocab.end() || ib == m.vocab.end())
      error(cat(w, " merge ", rank, " '", a, " ", b, "' uses a token missing from the vocab"));
    const std::string& pre = m.continuing_subword_prefix;
    const std::string merged =
        !pre.empty() && b.compare(0, pre.size(), pre) == 0 ? a + b.substr(pre.size()) : a + b;
    auto im = m.vocab.find(merged);
    if (im == m.vocab.end()) error(cat(w, " merge ", rank, " result '", merged, "' is not in the vocab"));
    const std::uint64_t key = (static_cast<std::uint64_t>(ia->second) << 32) | static_cast<std::uint32_t>(ib->second);
    m.merges[key] = (static_cast<std::uint64_t>(rank) << 32) | static_cast<std::uint32_t>(im->second);
  }

  void added_tokens(const json& arr, TokenizerData& d) const {
    for (const json& t : arr) {
      const std::string w = "added_tokens entry";
      check_keys(t, w, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
      AddedToken a;
      if (!t.contains("id") || !t["id"].is_number_unsigned()) error(cat(w, " needs a non-negative integer 'id'"));
      a.id = t["id"].get<std::int32_t>();
      a.content = str(t, "content", w);
      if (a.content.empty()) error(cat(w, " ", a.id, " has empty content"));
      a.single_word = flag(t, "single_word", false, w);
      a.lstrip = flag(t, "lstrip", false, w);
      a.rstrip = flag(t, "rstrip", false, w);
      a.special = flag(t, "special", false, w);
      a.normalized = flag(t, "normalized", !a.special, w);
      d.added.push_back(std::move(a));
    }
  }

 private:
  const std::string& source_;
};

json parse_json(std::string_view text, const std::string& source) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("tokenizer", cat(source, ": malformed JSON: ", e.what()));
  }
}

// "<s>", {"content": "<s>", …} or null.
std::optional<std::string> token_field(const json& c, const char* key, const Loader& L) {
  if (!c.contains(key) || c[key].is_null()) return std::nullopt;
  if (c[key].is_string()) return c[key].get<std::string>();
  if (c[key].is_object() && c[key].contains("content") && c[key]["content"].is_string())
    return c[key]["content"].get<std::string>();
  L.error(cat("field '", key, "' must be a token string, an AddedToken object or null"));
}

}  // namespace

void TokenizerData::finish_added_tokens() {
  std::int32_t max_id = static_cast<std::int32_t>(id_to_token.size()) - 1;
  for (const AddedToken& a : added) max_id = std::max(max_id, a.id);
  id_to_token.resize(max_id + 1);
  id_is_special.assign(max_id + 1, 0);
  id_is_added.assign(max_id + 1, 0);
  added_by_content.clear();
  for (auto& v : by_first_byte_raw) v.clear();
  for (auto& v : by_first_byte_norm) v.clear();
  has_normalized_added = false;
  for (std::size_t i = 0; i < added.size(); ++i) {
    const AddedToken& a = added[i];
    id_to_token[a.id] = a.content;
    id_is_special[a.id] = a.special;
    id_is_added[a.id] = 1;
    added_by_content[a.content] = a.id;
    has_normalized_added = has_normalized_added || a.normalized;
    auto& lists = a.normalized ? by_first_byte_norm : by_first_byte_raw;
    lists[static_cast<unsigned char>(a.content[0])].push_back(static_cast<std::int32_t>(i));
  }
  for (auto* lists : {by_first_byte_raw, by_first_byte_norm})
    for (int b = 0; b < 256; ++b)
      std::stable_sort(lists[b].begin(), lists[b].end(), [&](std::int32_t x, std::int32_t y) {
        return added[x].content.size() > added[y].content.size();
      });
}

std::shared_ptr<TokenizerData> load_tokenizer_json(std::string_view text, const std::string& source) {
  const json j = parse_json(text, source);
  Loader L(source);
  L.check_keys(j, "top level", {"version", "truncation", "padding", "added_tokens", "normalizer",
                                "pre_tokenizer", "model", "post_processor", "decoder"});
  for (const char* k : {"truncation", "padding"})
    if (j.contains(k) && !j[k].is_null()) L.error(cat("'", k, "' is not supported (must be null)"));
  if (!j.contains("model")) L.error("no 'model'");
  auto d = std::make_shared<TokenizerData>();
  d->source = source;
  L.model(j["model"], *d);
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) L.error("'added_tokens' must be an array");
    L.added_tokens(j["added_tokens"], *d);
  }
  d->finish_added_tokens();
  if (j.contains("normalizer") && !j["normalizer"].is_null()) d->normalizer = L.normalizer(j["normalizer"]);
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null())
    d->pre_tokenizer = L.pre_tokenizer(j["pre_tokenizer"]);
  if (j.contains("post_processor") && !j["post_processor"].is_null()) L.post_processor(j["post_processor"], *d);
  if (j.contains("decoder") && !j["decoder"].is_null()) d->decoder = L.decoder(j["decoder"]);
  return d;
}

void load_tokenizer_config(TokenizerData& d, std::string_view text, const std::string& source) {
  const json c = parse_json(text, source);
  Loader L(source);
  if (!c.is_object()) L.error("must be a JSON object");
  auto lookup = [&](const char* key) -> std::optional<std::int32_t> {
    const auto tok = token_field(c, key, L);
    if (!tok) return std::nullopt;
    auto a = d.added_by_content.find(*tok);
    if (a != d.added_by_content.end()) return a->second;
    auto v = d.model.vocab.find(*tok);
    if (v != d.model.vocab.end()) return v->second;
    L.error(cat(key, " '", *tok, "' is not a token of the tokenizer"));
  };
  d.bos = lookup("bos_token");
  d.pad = lookup("pad_token");
  d.eos.clear();
  if (auto e = lookup("eos_token")) d.eos.push_back(*e);
  d.clean_up = L.flag(c, "clean_up_tokenization_spaces", false, "tokenizer_config");
  if (c.contains("chat_template") && !c["chat_template"].is_null()) {
    const json& t = c["chat_template"];
    if (t.is_string()) {
      d.chat_template = t.get<std::string>();
    } else if (t.is_array() && !t.empty()) {
      d.chat_template.clear();
      for (const json& e : t)
        if (e.is_object() && e.value("name", "") == "default") d.chat_template = L.str(e, "template", "chat_template");
      if (d.chat_template.empty()) d.chat_template = L.str(t[0], "template", "chat_template");
    } else {
      L.error("chat_template must be a string or a list of {name, template}");
    }
  }
  // transformers rebuilds Llama-style templates from add_bos_token/add_eos_token; hone follows
  // tokenizer.json's post-processor and refuses a config that disagrees with it.
  auto adds = [&](std::optional<std::int32_t> id, bool at_front) {
    if (!id || d.post.single.empty()) return false;
    const TemplateItem& t = at_front ? d.post.single.front() : d.post.single.back();
    return !t.is_sequence && t.ids.size() == 1 && t.ids[0] == *id;
  };
  if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean() && d.bos &&
      c["add_bos_token"].get<bool>() != adds(d.bos, true))
    L.error(cat("add_bos_token=", c["add_bos_token"].dump(),
                " disagrees with tokenizer.json's post-processor, which is not supported"));
  if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean() && !d.eos.empty() &&
      c["add_eos_token"].get<bool>() != adds(d.eos[0], false))
    L.error(cat("add_eos_token=", c["add_eos_token"].dump(),
                " disagrees with tokenizer.json's post-processor, which is not supported"));
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  HONE_CHECK(f.good(), "tokenizer", "cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace hone::io

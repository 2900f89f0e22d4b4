// Tokenizer tests: the golden encodings of three real tokenizers, decode modes, random Unicode
// round trips, NFC against Python's unicodedata, added/special tokens, post-processor BOS,
// refused features and malformed files, the byte-level and GPT-2 vocab.json/merges.txt forms.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "hone/tokenizer.h"
#include "io/tokenizer_impl.h"
#include "support/files.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(HONE_TEST_DATA_DIR) + "/tokenizers/";

using test::read_file;
using test::read_xz;

std::string tokenizer_json(const std::string& name) {
  static std::map<std::string, std::string> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, read_xz(kData + name + "/tokenizer.json.xz")).first;
  return it->second;
}

const Tokenizer& load(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  const std::string config = read_file(kData + name + "/tokenizer_config.json");
  std::string jinja;
  if (fs::exists(kData + name + "/chat_template.jinja")) jinja = read_file(kData + name + "/chat_template.jinja");
  return cache.emplace(name, Tokenizer::from_json(tokenizer_json(name), config, jinja, name + "/tokenizer.json"))
      .first->second;
}

struct Golden {
  std::string text, decoded;
  std::vector<std::int32_t> ids, ids_with_special;
};

std::vector<Golden> golden(const std::string& name) {
  std::vector<Golden> out;
  std::istringstream in(read_file(kData + name + "/golden.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back({j["text"], j["decoded"], j["ids"], j["ids_with_special"]});
  }
  return out;
}

// Checks every golden line; returns the number of lines whose ids and decoded text both match.
int check_golden(const std::string& name) {
  const Tokenizer& tok = load(name);
  const auto lines = golden(name);
  int ok = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const Golden& g = lines[i];
    INFO(name << " golden line " << i + 1 << ": " << g.text);
    const auto ids = tok.encode(g.text, false);
    CHECK(ids == g.ids);
    const std::string decoded = tok.decode(g.ids);
    CHECK(decoded == g.decoded);
    ok += ids == g.ids && decoded == g.decoded;
  }
  CHECK(lines.size() == 34);
  WARN(name << ": " << ok << " of " << lines.size() << " golden lines match");
  return ok;
}

// Random text from mixed scripts, emoji, combining marks, digits and whitespace runs.
std::string random_text(std::mt19937_64& rng, int n_chars) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {'a', 'z'},         {'A', 'Z'},         {'0', '9'},         {'!', '/'},         {':', '@'},
      {0xC0, 0xFF},       {0x100, 0x17F},     {0x300, 0x36F},     {0x391, 0x3C9},     {0x410, 0x44F},
      {0x5D0, 0x5EA},     {0x620, 0x64A},     {0x900, 0x97F},     {0xE01, 0xE3A},     {0x3041, 0x3096},
      {0x30A1, 0x30FA},   {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3},   {0x1100, 0x1112},   {0x1161, 0x1175},
      {0x1F600, 0x1F64F}, {0x1F300, 0x1F5FF}, {0x1F3FB, 0x1F3FF}, {0x200B, 0x200D},   {0xFE00, 0xFE0F},
      {0x2000, 0x200A},   {0x1E00, 0x1EFF},   {0x0F00, 0x0FFF},   {0x10000, 0x1007F}, {0xA0, 0xBF}};
  static const char* ws[] = {" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00A0", "\u3000"};
  std::uniform_int_distribution<int> pick(0, static_cast<int>(ranges.size()) + 5);
  std::string s;
  for (int i = 0; i < n_chars; ++i) {
    const int r = pick(rng);
    if (r >= static_cast<int>(ranges.size())) {
      s += ws[rng() % 10];
      continue;
    }
    const auto [lo, hi] = ranges[r];
    const auto cp = static_cast<char32_t>(lo + rng() % (hi - lo + 1));
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    io::append_utf8(s, cp);
  }
  return s;
}

std::vector<std::int32_t> concat(std::vector<std::int32_t> a, const std::vector<std::int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("hone_tok_" + tag + "_" + std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

// A small valid tokenizer.json with a chosen normalizer/pre_tokenizer/model override.
std::string tiny_json(const std::string& normalizer = "null", const std::string& model_extra = "",
                      const std::string& decoder = "null", const std::string& pre = "null") {
  return R"({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
  "normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre + R"(, "post_processor": null,
  "decoder": )" + decoder + R"(, "model": {"type": "BPE", )" + model_extra +
         R"("vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})";
}

}  // namespace

TEST_CASE("tokenizer golden llama3 ids and decoded text match", "[cpu][tokenizer]") {
  CHECK(check_golden("llama3") == 34);
}

TEST_CASE("tokenizer golden qwen3 ids and decoded text match", "[cpu][tokenizer]") {
  CHECK(check_golden("qwen3") == 34);
}

TEST_CASE("tokenizer golden sp-bpe-32k ids and decoded text match", "[cpu][tokenizer]") {
  CHECK(check_golden("sp-bpe-32k") == 34);
}

// 1000 random texts per tokenizer encoded and decoded by the Rust tokenizers package
// (tests/data/tokenizers/gen_reference.py): ids, ids with special tokens, raw and skip decodes.
static int check_rust_reference(const std::string& name) {
  const Tokenizer& tok = load(name);
  std::istringstream in(read_xz(kData + name + "/reference_rust.jsonl.xz"));
  std::string line;
  int n = 0, ok = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const std::string text = j["text"];
    const std::vector<std::int32_t> ids = j["ids"], with_special = j["ids_with_special"];
    INFO(name << " reference line " << n + 1 << ": " << text);
    const auto got = tok.encode(text, false);
    CHECK(got == ids);
    CHECK(tok.encode(text, true) == with_special);
    CHECK(tok.decode_raw(ids) == j["decoded_raw"].get<std::string>());
    CHECK(tok.decode_raw(ids, true) == j["decoded_skip"].get<std::string>());
    ok += got == ids;
    ++n;
  }
  CHECK(n == 1000);
  return ok;
}

TEST_CASE("tokenizer llama3 agrees with the Rust reference on random text", "[cpu][tokenizer]") {
  CHECK(check_rust_reference("llama3") == 1000);
}

TEST_CASE("tokenizer qwen3 agrees with the Rust reference on random text", "[cpu][tokenizer]") {
  CHECK(check_rust_reference("qwen3") == 1000);
}

TEST_CASE("tokenizer sp-bpe-32k agrees with the Rust reference on random text", "[cpu][tokenizer]") {
  CHECK(check_rust_reference("sp-bpe-32k") == 1000);
}

TEST_CASE("tokenizer bytelevel and metaspace variants agree with Rust", "[cpu][tokenizer]") {
  // The edits gen_reference.py makes to the real files, for pre-tokenizers they do not use.
  auto l3 = nlohmann::json::parse(tokenizer_json("llama3"));
  l3["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  auto sp = nlohmann::json::parse(tokenizer_json("sp-bpe-32k"));
  sp["normalizer"] = nullptr;
  sp["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", true}};
  sp["decoder"] = sp["pre_tokenizer"];
  const Tokenizer gpt2_style = Tokenizer::from_json(l3.dump(), "", "", "llama3-gpt2-bytelevel");
  const Tokenizer metaspace = Tokenizer::from_json(sp.dump(), "", "", "sp-bpe-32k-metaspace");
  std::istringstream in(read_xz(kData + "variants_rust.jsonl.xz"));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const Tokenizer& t = j["variant"] == "sp-bpe-32k-metaspace" ? metaspace : gpt2_style;
    const std::vector<std::int32_t> ids = j["ids"];
    INFO(j["variant"].get<std::string>() << ": " << j["text"].get<std::string>());
    CHECK(t.encode(j["text"].get<std::string>(), false) == ids);
    CHECK(t.decode_raw(ids) == j["decoded_raw"].get<std::string>());
    ++n;
  }
  CHECK(n == 600);
}

TEST_CASE("tokenizer raw decode of llama3 gives back random unicode", "[cpu][tokenizer]") {
  const Tokenizer& tok = load("llama3");
  std::mt19937_64 rng(1234);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_text(rng, 1 + static_cast<int>(rng() % 60));
    INFO("case " << i << ": " << s);
    REQUIRE(tok.decode_raw(tok.encode(s, false)) == s);
  }
}

TEST_CASE("tokenizer raw decode of qwen3 gives back the NFC input", "[cpu][tokenizer]") {
  const Tokenizer& tok = load("qwen3");
  std::mt19937_64 rng(99);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_text(rng, 1 + static_cast<int>(rng() % 60));
    INFO("case " << i << ": " << s);
    REQUIRE(tok.normalize(s) == io::nfc(s));
    REQUIRE(tok.decode_raw(tok.encode(s, false)) == io::nfc(s));
  }
}

TEST_CASE("tokenizer NFC matches Python unicodedata on recorded cases", "[cpu][tokenizer]") {
  std::istringstream in(read_file(kData + "nfc_cases.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const std::string s = j["in"], expect = j["nfc"];
    INFO("case " << n << ": " << s);
    CHECK(io::nfc(s) == expect);
    ++n;
  }
  CHECK(n >= 500);
}

TEST_CASE("tokenizer special tokens in text become single ids", "[cpu][tokenizer]") {
  const Tokenizer& l3 = load("llama3");
  const auto hello = l3.encode("Hello", false);
  CHECK(l3.encode("<|begin_of_text|>Hello<|eot_id|>", false) ==
        concat(concat({128000}, hello), {128009}));
  CHECK(l3.token_to_id("<|eot_id|>") == 128009);
  CHECK(l3.is_special(128009));
  CHECK(l3.decode({128000, 9906}, {true, {}}) == "Hello");
  CHECK(l3.decode({128000, 9906}) == "<|begin_of_text|>Hello");

  const Tokenizer& q3 = load("qwen3");
  const auto ids = q3.encode("<|im_start|>user\nhi<|im_end|>\n<think>", false);
  REQUIRE(ids.size() >= 4);
  CHECK(ids.front() == 151644);
  CHECK(std::count(ids.begin(), ids.end(), 151645) == 1);
  CHECK(ids.back() == 151667);  // a non-special added token is split out too
  CHECK_FALSE(q3.is_special(151667));
  CHECK(q3.decode(ids, {true, {}}) == "user\nhi\n<think>");

  const Tokenizer& sp = load("sp-bpe-32k");
  const auto hi = sp.encode("hi", false);
  CHECK(sp.encode("<s>hi</s>", false) == concat(concat({1}, hi), {2}));
}

TEST_CASE("tokenizer add_special_tokens follows the post-processor", "[cpu][tokenizer]") {
  const Tokenizer& sp = load("sp-bpe-32k");
  CHECK(sp.encode("Hello world", true) == std::vector<std::int32_t>{1, 22557, 1526});
  CHECK(sp.encode("", true) == std::vector<std::int32_t>{1});
  CHECK(sp.bos_id() == 1);
  CHECK(sp.eos_ids() == std::vector<std::int32_t>{2});
  CHECK(sp.unk_id() == 0);
  CHECK(sp.chat_template().find("[INST]") != std::string::npos);

  // This llama3 file's post-processor is ByteLevel alone: no BOS (as ids_with_special says).
  const Tokenizer& l3 = load("llama3");
  CHECK(l3.encode("Hello world", true) == l3.encode("Hello world", false));
  CHECK(l3.bos_id() == 128000);
  CHECK(l3.eos_ids() == std::vector<std::int32_t>{128001});
  CHECK(l3.chat_template().find("<|start_header_id|>") != std::string::npos);
  CHECK(l3.clean_up_tokenization_spaces());
  // The published Llama-3 form: Sequence[ByteLevel, TemplateProcessing] adds <|begin_of_text|>.
  std::string j = tokenizer_json("llama3");
  const auto b = j.find("\"post_processor\":"), e = j.find("\"decoder\":");
  REQUIRE(b != std::string::npos);
  REQUIRE(e > b);
  j.replace(b, e - b, R"("post_processor": {"type": "Sequence", "processors": [
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
      {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
       {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
       "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
       "tokens": ["<|begin_of_text|>"]}}}]},
  )");
  const Tokenizer l3bos = Tokenizer::from_json(j, "", "", "llama3-bos/tokenizer.json");
  CHECK(l3bos.encode("Hello world", true) == std::vector<std::int32_t>{128000, 9906, 1917});
  CHECK(l3bos.encode("Hello world", false) == std::vector<std::int32_t>{9906, 1917});

  const Tokenizer& q3 = load("qwen3");
  CHECK(q3.encode("Hello", true) == q3.encode("Hello", false));
  CHECK_FALSE(q3.bos_id().has_value());
  CHECK(q3.eos_ids() == std::vector<std::int32_t>{151645});
  CHECK(q3.pad_id() == 151643);
  CHECK(q3.chat_template().find("<|im_start|>") != std::string::npos);
}

TEST_CASE("tokenizer clean-up and raw decode differ as transformers does", "[cpu][tokenizer]") {
  const Tokenizer& l3 = load("llama3");
  const auto ids = l3.encode("$$$ !!! ??? ... ---", false);
  CHECK(l3.decode(ids) == "$$$!!!???... ---");
  CHECK(l3.decode_raw(ids) == "$$$ !!! ??? ... ---");
  CHECK(l3.decode(ids, {false, false}) == "$$$ !!! ??? ... ---");
  CHECK(l3.vocab_size() == 128256);
  CHECK(l3.id_to_token(9906) == "Hello");
  CHECK_THROWS_WITH(l3.id_to_token(200000), Catch::Contains("200000"));
  CHECK_THROWS_WITH(l3.decode({-1}), Catch::Contains("id -1"));
}

TEST_CASE("tokenizer unsupported features are refused by name", "[cpu][tokenizer]") {
  CHECK_NOTHROW(Tokenizer::from_json(tiny_json(), "", "", "tiny.json"));
  CHECK_THROWS_WITH(Tokenizer::from_json(tiny_json(R"({"type": "NFKC"})"), "", "", "tiny.json"),
                    Catch::Contains("[tokenizer] tiny.json: normalizer type 'NFKC' is not supported"));
  CHECK_THROWS_WITH(Tokenizer::from_json(tiny_json("null", R"("dropout": 0.1, )"), "", "", "tiny.json"),
                    Catch::Contains("dropout") && Catch::Contains("tiny.json"));
  CHECK_THROWS_WITH(Tokenizer::from_json(tiny_json("null", R"("frobnicate": true, )"), "", "", "tiny.json"),
                    Catch::Contains("option 'frobnicate' is not supported"));
  CHECK_THROWS_WITH(Tokenizer::from_json(tiny_json("null", "", R"({"type": "WordPiece"})"), "", "", "t.json"),
                    Catch::Contains("decoder type 'WordPiece' is not supported"));
  CHECK_THROWS_WITH(Tokenizer::from_json(tiny_json("null", "", "null", R"({"type": "Whitespace"})"), "", "", "t.json"),
                    Catch::Contains("pre_tokenizer type 'Whitespace' is not supported"));
  CHECK_THROWS_WITH(
      Tokenizer::from_json(tiny_json("null", "", "null",
                                     R"({"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Odd", "invert": false})"),
                           "", "", "t.json"),
      Catch::Contains("behavior 'Odd' is not supported"));
  std::string wp = tiny_json();
  wp.replace(wp.find("\"BPE\""), 5, "\"WordPiece\"");
  CHECK_THROWS_WITH(Tokenizer::from_json(wp, "", "", "t.json"), Catch::Contains("model type 'WordPiece' is not supported"));
  std::string trunc = tiny_json();
  trunc.replace(trunc.find("\"truncation\": null"), 18, "\"truncation\": {\"max_length\": 8}");
  CHECK_THROWS_WITH(Tokenizer::from_json(trunc, "", "", "t.json"), Catch::Contains("'truncation' is not supported"));
  CHECK_THROWS_WITH(
      Tokenizer::from_json(tiny_json(R"({"type": "Replace", "pattern": {"Regex": "("}, "content": "x"})"), "", "", "t.json"),
      Catch::Contains("does not compile"));
}

TEST_CASE("tokenizer malformed files name the file and the reason", "[cpu][tokenizer]") {
  CHECK_THROWS_WITH(Tokenizer::from_json(R"({"model": {"type": "BPE", )", "", "", "broken.json"),
                    Catch::Contains("broken.json: malformed JSON"));
  CHECK_THROWS_WITH(Tokenizer::from_json("[1, 2]", "", "", "list.json"), Catch::Contains("list.json"));
  std::string bad_merge = tiny_json();
  bad_merge.replace(bad_merge.find("\"a b\""), 5, "\"a c\"");
  CHECK_THROWS_WITH(Tokenizer::from_json(bad_merge, "", "", "m.json"), Catch::Contains("missing from the vocab"));
  CHECK_THROWS_WITH(Tokenizer::from_file("/nonexistent/tokenizer.json"), Catch::Contains("cannot open"));
  TempDir dir("malformed");
  dir.write("tokenizer.json", tiny_json());
  dir.write("tokenizer_config.json", "{\"bos_token\": ");
  CHECK_THROWS_WITH(Tokenizer::from_dir(dir.path.string()),
                    Catch::Contains("tokenizer_config.json: malformed JSON"));
  dir.write("tokenizer_config.json", R"({"bos_token": "<nope>"})");
  CHECK_THROWS_WITH(Tokenizer::from_dir(dir.path.string()), Catch::Contains("bos_token '<nope>'"));
  dir.write("tokenizer_config.json", R"({"eos_token": {"content": "ab"}, "chat_template": "T1"})");
  dir.write("chat_template.jinja", "T2");
  const Tokenizer t = Tokenizer::from_dir(dir.path.string());
  CHECK(t.eos_ids() == std::vector<std::int32_t>{2});
  CHECK(t.chat_template() == "T2");
  CHECK(t.encode("aab", false) == std::vector<std::int32_t>{0, 2});
  CHECK(Tokenizer::from_file((dir.path / "tokenizer.json").string()).chat_template().empty());
}

TEST_CASE("tokenizer byte-level no-merge tokenizer round trips", "[cpu][tokenizer]") {
  const Tokenizer t = Tokenizer::byte_level({"<|endoftext|>", "<pad>"});
  CHECK(t.vocab_size() == 258);
  CHECK(t.encode("hé<pad>", false) == std::vector<std::int32_t>{'h', 0xC3, 0xA9, 257});
  CHECK(t.encode("A<|endoftext|>", true) == std::vector<std::int32_t>{'A', 256});
  CHECK(t.decode({'h', 'i', 256}) == "hi<|endoftext|>");
  CHECK(t.decode({'h', 'i', 256}, {true, {}}) == "hi");
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100; ++i) {
    const std::string s = random_text(rng, 40);
    const auto ids = t.encode(s, false);
    REQUIRE(ids.size() == s.size());
    REQUIRE(t.decode_raw(ids) == s);
  }
  CHECK_THROWS_WITH(Tokenizer::byte_level({"x", "x"}), Catch::Contains("'x' given twice"));
}

TEST_CASE("tokenizer GPT-2 vocab json and merges txt form", "[cpu][tokenizer]") {
  TempDir dir("gpt2");
  const std::string vocab = dir.write("vocab.json", R"({"h": 0, "e": 1, "l": 2, "o": 3, "\u0120": 4, "w": 5,
    "r": 6, "d": 7, "he": 8, "ll": 9, "hell": 10, "hello": 11, "\u0120w": 12, "or": 13, "\u0120wor": 14,
    "\u0120worl": 15, "\u0120world": 16, "!": 17, "<|endoftext|>": 18})");
  const std::string merges = dir.write("merges.txt", "#version: 0.2\nh e\nl l\nhe ll\nhell o\n\u0120 w\no r\n"
                                                     "\u0120w or\n\u0120wor l\n\u0120worl d\n");
  const Tokenizer t = Tokenizer::from_gpt2_files(vocab, merges);
  CHECK(t.encode("hello world!", false) == std::vector<std::int32_t>{11, 16, 17});
  CHECK(t.encode("hell", false) == std::vector<std::int32_t>{10});
  CHECK(t.encode("low<|endoftext|>", false) == std::vector<std::int32_t>{2, 3, 5, 18});
  CHECK(t.decode({11, 16, 17, 18}) == "hello world!<|endoftext|>");
  CHECK(t.eos_ids() == std::vector<std::int32_t>{18});
  const std::string bad = dir.write("bad_merges.txt", "#version: 0.2\nh x\n");
  CHECK_THROWS_WITH(Tokenizer::from_gpt2_files(vocab, bad), Catch::Contains("line 2"));
}

TEST_CASE("tokenizer batch encode equals single encode", "[cpu][tokenizer]") {
  const Tokenizer& q3 = load("qwen3");
  std::vector<std::string> texts;
  for (const Golden& g : golden("qwen3")) texts.push_back(g.text);
  const auto batch = q3.encode_batch(texts, true, 2);
  REQUIRE(batch.size() == texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) CHECK(batch[i] == q3.encode(texts[i], true));
}

TEST_CASE("tokenizer added token lstrip rstrip and single_word", "[cpu][tokenizer]") {
  std::string j = tiny_json();
  j.replace(j.find("\"added_tokens\": []"), 18, R"("added_tokens": [
    {"id": 3, "content": "<m>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
    {"id": 4, "content": "bb", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false}])");
  j.replace(j.find("\"b\": 1"), 6, "\"b\": 1, \" \": 5");
  const Tokenizer t = Tokenizer::from_json(j, "", "", "added.json");
  CHECK(t.encode("a  <m>  b", false) == std::vector<std::int32_t>{0, 3, 1});
  CHECK(t.encode("a bb a", false) == std::vector<std::int32_t>{0, 5, 4, 5, 0});
  CHECK(t.encode("abb", false) == std::vector<std::int32_t>{2, 1});  // bb inside a word stays text
}

TEST_CASE("tokenizer split behaviours match tokenizers semantics", "[cpu][tokenizer]") {
  auto split = [](io::SplitBehavior b, bool invert) {
    io::PreTokenizer p;
    p.kind = io::PreTokenizer::Kind::Split;
    p.pattern = std::make_shared<io::Regex>("-", true, "test");
    p.behavior = b;
    p.invert = invert;
    std::vector<io::Piece> pieces{{"the-final--countdown", true}};
    io::apply_pre_tokenizer(p, pieces);
    std::vector<std::string> out;
    for (const auto& pc : pieces) out.push_back(pc.text);
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(split(io::SplitBehavior::Removed, false) == V{"the", "final", "countdown"});
  CHECK(split(io::SplitBehavior::Isolated, false) == V{"the", "-", "final", "-", "-", "countdown"});
  CHECK(split(io::SplitBehavior::MergedWithPrevious, false) == V{"the-", "final-", "-", "countdown"});
  CHECK(split(io::SplitBehavior::MergedWithNext, false) == V{"the", "-final", "-", "-countdown"});
  CHECK(split(io::SplitBehavior::Contiguous, false) == V{"the", "-", "final", "--", "countdown"});
  CHECK(split(io::SplitBehavior::Removed, true) == V{"-", "-", "-"});
}

TEST_CASE("tokenizer metaspace pre-tokenizer and decoder", "[cpu][tokenizer]") {
  const std::string j = R"({"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 5, "content": "<x>", "single_word": false, "lstrip": false, "rstrip": false,
                      "normalized": false, "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": true},
    "post_processor": null,
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": true},
    "model": {"type": "BPE", "vocab": {"\u2581": 0, "a": 1, "b": 2, "\u2581a": 3, "\u2581b": 4},
              "merges": ["\u2581 a", "\u2581 b"]}})";
  const Tokenizer t = Tokenizer::from_json(j, "", "", "meta.json");
  CHECK(t.encode("a b", false) == std::vector<std::int32_t>{3, 4});
  CHECK(t.encode("<x>a b", false) == std::vector<std::int32_t>{5, 1, 4});  // not first: no prepend
  CHECK(t.decode({3, 4}) == "a b");
  CHECK(t.decode_raw({5, 1, 4}, true) == "a b");
}

TEST_CASE("tokenizer empty tokenizer refuses calls", "[cpu][tokenizer]") {
  const Tokenizer t;
  CHECK_FALSE(t.loaded());
  CHECK_THROWS_WITH(t.encode("a"), Catch::Contains("empty"));
  CHECK_THROWS_WITH(t.vocab_size(), Catch::Contains("empty"));
  CHECK(load("qwen3").loaded());
}

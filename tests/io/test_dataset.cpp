// SFT data: example forms and their labels, bad lines, truncation, seeded resumable streaming
// and packing.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "hone/dataset.h"

using namespace hone;
using namespace hone::data;

namespace {

// Bytes are ids 0–255; BOS 256, EOS 257. Chat renders "<u>…</u>" style turns: the assistant
// content plus its end marker carries loss.
class ByteEncoder : public TextEncoder {
 public:
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::optional<std::int32_t> bos_id() const override { return 256; }
  std::int32_t eos_id() const override { return 257; }
  std::vector<Segment> render_chat(const std::vector<Message>& messages) const override {
    std::vector<Segment> out;
    for (const Message& m : messages) {
      out.push_back({"<" + m.role + ">", false});
      out.push_back({m.content + "|", m.role == "assistant"});
    }
    return out;
  }
};

std::string write_file(const std::string& name, const std::string& content) {
  const auto dir = std::filesystem::temp_directory_path() / "hone_test_dataset";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::string loss_text(const TokenizedExample& ex) {
  std::string s;
  for (std::int64_t l : ex.labels)
    if (l >= 0 && l < 256) s += static_cast<char>(l);
  return s;
}

TokenizedExample tokenize(const std::string& line, const DataOptions& o = {}) {
  const ByteEncoder enc;
  return *tokenize_example(parse_example(line, o.format, enc, "t:1"), enc, o, "t:1");
}

}  // namespace

TEST_CASE("text examples get bos and eos and full loss", "[cpu][data]") {
  const TokenizedExample ex = tokenize(R"({"text": "hi"})");
  CHECK(ex.ids == std::vector<std::int32_t>{256, 'h', 'i', 257});
  CHECK(ex.labels == std::vector<std::int64_t>{kIgnoreLabel, 'h', 'i', 257});
}

TEST_CASE("prompt completion masks the prompt", "[cpu][data]") {
  const TokenizedExample ex = tokenize(R"({"prompt": "Q: 2+2? A:", "completion": " 4"})");
  CHECK(ex.ids.size() == 1 + 10 + 2 + 1);
  CHECK(loss_text(ex) == " 4");
  CHECK(ex.labels.back() == 257);
  DataOptions all;
  all.loss_on_prompt = true;
  CHECK(loss_text(tokenize(R"({"prompt": "Q", "completion": "A"})", all)) == "QA");
}

TEST_CASE("alpaca examples use the standard wrapper", "[cpu][data]") {
  const TokenizedExample with_input = tokenize(R"({"instruction": "Add", "input": "2 2", "output": "4"})");
  std::string text;
  for (std::int32_t id : with_input.ids)
    if (id < 256) text += static_cast<char>(id);
  CHECK(text.find("### Instruction:\nAdd\n\n### Input:\n2 2\n\n### Response:\n4") != std::string::npos);
  CHECK(text.rfind("Below is an instruction that describes a task, paired with an input", 0) == 0);
  CHECK(loss_text(with_input) == "4");
  const TokenizedExample no_input = tokenize(R"({"instruction": "Wave", "output": "hi", "input": ""})");
  std::string t2;
  for (std::int32_t id : no_input.ids)
    if (id < 256) t2 += static_cast<char>(id);
  CHECK(t2.find("### Input:") == std::string::npos);
}

TEST_CASE("chat examples put loss on assistant turns only", "[cpu][data]") {
  const TokenizedExample ex = tokenize(
      R"({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},)"
      R"( {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"},)"
      R"( {"role": "assistant", "content": "ciao"}]})");
  CHECK(loss_text(ex) == "hello|ciao|");
  CHECK(ex.ids.front() == '<');  // the template carries its own BOS: none added
  CHECK(ex.ids.back() == '|');   // and no EOS after the end-of-turn marker
}

TEST_CASE("bad fields are errors naming the field", "[cpu][data]") {
  const ByteEncoder enc;
  auto parse = [&](const std::string& line) { return parse_example(line, Format::auto_detect, enc, "f.jsonl:3"); };
  CHECK_THROWS_WITH(parse(R"({"prompt": "x"})"), Catch::Contains("f.jsonl:3") && Catch::Contains("{prompt}"));
  CHECK_THROWS_WITH(parse(R"({"text": 5})"), Catch::Contains("\"text\" must be a string"));
  CHECK_THROWS_WITH(parse(R"({"messages": [{"role": "bot", "content": "x"}]})"),
                    Catch::Contains("messages[0].role") && Catch::Contains("bot"));
  CHECK_THROWS_WITH(parse(R"({"messages": [{"role": "user"}]})"), Catch::Contains("messages[0].content"));
  CHECK_THROWS_WITH(parse("[1, 2]"), Catch::Contains("expected a JSON object"));
  CHECK_THROWS_WITH(parse_example(R"({"text": "x"})", Format::prompt_completion, enc, "f:1"),
                    Catch::Contains("missing field \"prompt\""));
  CHECK_THROWS_WITH(parse_format("csv"), Catch::Contains("'csv'"));
}

TEST_CASE("a broken line 7 is reported with its line number", "[cpu][data]") {
  std::string content;
  for (int i = 1; i <= 10; ++i) content += i == 7 ? "{\"text\": \"unterminated}\n" : "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  const std::string path = write_file("broken7.jsonl", content);
  const ByteEncoder enc;
  DataOptions o;
  o.shuffle = false;
  JsonlDataset ds(path, enc, o);
  for (int i = 0; i < 6; ++i) CHECK(ds.next().line == i + 1);
  CHECK_THROWS_WITH(ds.next(), Catch::Contains("broken7.jsonl:7:") && Catch::Contains("invalid JSON"));

  o.skip_bad_lines = true;
  JsonlDataset skipping(path, enc, o);
  std::set<std::int64_t> lines;
  for (int i = 0; i < 9; ++i) lines.insert(skipping.next().line);
  CHECK(lines.size() == 9);
  CHECK(lines.count(7) == 0);
  CHECK(skipping.stats().bad_lines == 1);
}

TEST_CASE("blank lines are skipped and line numbers stay true", "[cpu][data]") {
  const std::string path = write_file("blank.jsonl", "\n{\"text\": \"a\"}\r\n  \n{\"text\": \"b\"}\n");
  const ByteEncoder enc;
  DataOptions o;
  o.shuffle = false;
  JsonlDataset ds(path, enc, o);
  CHECK(ds.size() == 2);
  CHECK(ds.next().line == 2);
  const TokenizedExample b = ds.next();
  CHECK(b.line == 4);
  CHECK(loss_text(b) == "b");
  CHECK_THROWS_WITH(JsonlDataset(write_file("empty.jsonl", "\n \n"), enc, o), Catch::Contains("no examples"));
  CHECK_THROWS_WITH(JsonlDataset("/nonexistent/x.jsonl", enc, o), Catch::Contains("cannot open /nonexistent/x.jsonl"));
}

TEST_CASE("truncation policies truncate drop or refuse", "[cpu][data]") {
  DataOptions o;
  o.max_length = 4;
  const TokenizedExample t = tokenize(R"({"text": "abcdef"})", o);
  CHECK(t.ids == std::vector<std::int32_t>{256, 'a', 'b', 'c'});
  CHECK(t.truncated);
  const ByteEncoder enc;
  o.truncation = Truncation::drop;
  CHECK_FALSE(tokenize_example(parse_example(R"({"text": "abcdef"})", Format::text, enc, "w"), enc, o, "w"));
  o.truncation = Truncation::error;
  CHECK_THROWS_WITH(tokenize_example(parse_example(R"({"text": "abcdef"})", Format::text, enc, "w:9"), enc, o, "w:9"),
                    Catch::Contains("w:9") && Catch::Contains("8 tokens"));
}

TEST_CASE("epochs are seeded permutations and resume exactly", "[cpu][data]") {
  std::string content;
  for (int i = 0; i < 50; ++i) content += "{\"text\": \"example " + std::to_string(i) + "\"}\n";
  const std::string path = write_file("fifty.jsonl", content);
  const ByteEncoder enc;
  DataOptions o;
  o.seed = 11;
  JsonlDataset ds(path, enc, o);
  std::vector<std::int64_t> first, second;
  for (int i = 0; i < 50; ++i) first.push_back(ds.next().line);
  for (int i = 0; i < 50; ++i) second.push_back(ds.next().line);
  CHECK(std::set<std::int64_t>(first.begin(), first.end()).size() == 50);
  CHECK(std::set<std::int64_t>(second.begin(), second.end()).size() == 50);
  CHECK(first != second);
  std::vector<std::int64_t> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  CHECK(first != sorted);  // shuffled

  JsonlDataset again(path, enc, o);
  for (int i = 0; i < 73; ++i) again.next();
  const DataPosition saved = again.position();
  CHECK(saved == DataPosition{1, 23});
  std::vector<std::int64_t> tail;
  for (int i = 0; i < 40; ++i) tail.push_back(again.next().line);
  JsonlDataset resumed(path, enc, o);
  resumed.seek(saved);
  for (int i = 0; i < 40; ++i) REQUIRE(resumed.next().line == tail[i]);
  CHECK(std::vector<std::int64_t>(second.begin() + 23, second.end()) ==
        std::vector<std::int64_t>(tail.begin(), tail.begin() + 27));
  o.seed = 12;
  JsonlDataset other(path, enc, o);
  std::vector<std::int64_t> other_first;
  for (int i = 0; i < 50; ++i) other_first.push_back(other.next().line);
  CHECK(other_first != first);
  CHECK_THROWS_WITH(resumed.seek({0, 51}), Catch::Contains("outside"));
}

TEST_CASE("packing keeps examples whole with restarting positions", "[cpu][data]") {
  // Example lengths (with BOS and EOS): 2 + text length.
  const std::vector<std::string> texts = {"aaaaaa", "bb", "cccccccc", "d", "eeeee", "ffffffffff", "g"};
  std::size_t next = 0;
  const auto source = [&] {
    const std::string line = "{\"text\": \"" + texts[next++ % texts.size()] + "\"}";
    return tokenize(line);
  };
  Packer packer(2, 12, 0);
  const PackedBatch b = packer.next(source);
  // Row 0: aaaaaa (8) + bb (4) = 12; row 1: cccccccc (10); d (3) fits nowhere... row 1 has 2 left.
  const auto ids = b.ids.to_vector<std::int64_t>();
  const auto pos = b.positions.to_vector<std::int64_t>();
  const auto labels = b.labels.to_vector<std::int64_t>();
  const auto cu = b.cu_seqlens.to_vector<std::int32_t>();
  CHECK(b.ids.shape() == Shape{2, 12});
  CHECK(ids[0] == 256);
  CHECK(ids[8] == 256);  // second example starts right after the first
  CHECK(pos[7] == 7);
  CHECK(pos[8] == 0);
  CHECK(labels[0] == kIgnoreLabel);
  CHECK(labels[8] == kIgnoreLabel);  // never predict across an example boundary
  CHECK(labels[9] == 'b');
  CHECK(ids[12] == 256);
  CHECK(ids[13] == 'c');
  CHECK(ids[22] == 0);  // padding
  CHECK(labels[22] == kIgnoreLabel);
  CHECK(pos[22] == 0);
  CHECK(cu == std::vector<std::int32_t>{0, 8, 12, 22, 24});
  CHECK(b.examples == 3);
  CHECK(b.real_tokens == 22);
  CHECK(b.efficiency() == Approx(22.0 / 24.0));
  CHECK(b.loss_tokens == (6 + 1) + (2 + 1) + (8 + 1));
  // The examples that found no room come first in the next batch, in order.
  const PackedBatch c = packer.next(source);
  const auto ids2 = c.ids.to_vector<std::int64_t>();
  CHECK(ids2[1] == 'd');
  CHECK_THROWS_WITH(Packer(1, 4, 0).next([&] { return tokenize(R"({"text": "toolong"})"); }),
                    Catch::Contains("more than the row length 4"));
}

TEST_CASE("packing ends a batch when the source runs dry", "[cpu][data]") {
  std::vector<TokenizedExample> exs = {tokenize(R"({"text": "abc"})"), tokenize(R"({"text": "de"})")};
  std::size_t next = 0;
  Packer packer(4, 16, 0);
  const PackedBatch b = packer.next([&] { return next < exs.size() ? exs[next++] : TokenizedExample{}; });
  CHECK(b.examples == 2);
  CHECK(b.real_tokens == 5 + 4);
  CHECK(packer.next([] { return TokenizedExample{}; }).examples == 0);
}

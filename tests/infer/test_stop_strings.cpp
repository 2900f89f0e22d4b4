// Stop strings and streaming text: generation stops when the text contains a stop string and
// the text ends exactly before it, whether it spans tokens or not; streamed pieces add up to
// the final text, never show a stop string or half a UTF-8 character.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "hone/generator.h"
#include "hone/tokenizer.h"
#include "infer/text_stream.h"

using namespace hone;

namespace {

// Pushes the bytes of `text` one token per byte (the byte-level tokenizer: id = byte).
std::vector<std::string> push_bytes(infer::TextStream& s, const std::string& text) {
  std::vector<std::string> pieces;
  for (unsigned char ch : text) {
    if (s.stopped()) break;
    pieces.push_back(s.push(ch));
  }
  return pieces;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s;
  return out;
}

}  // namespace

TEST_CASE("A stop string cuts the text exactly before it, across tokens", "[cpu][infer]") {
  const Tokenizer tok = Tokenizer::byte_level({"<|endoftext|>"});
  infer::TextStream s(tok, {"STOP", "\n\n"});
  const auto pieces = push_bytes(s, "hello wor, ST then STOP and more");
  CHECK(s.stopped());
  CHECK(s.text() == "hello wor, ST then ");
  CHECK(joined(pieces) + s.finish() == "hello wor, ST then ");
  // "S", "T" were held back while they could begin "STOP", then released by " ".
  CHECK(pieces[11].empty());
  CHECK(pieces[12].empty());
  CHECK(pieces[13] == "ST ");

  infer::TextStream blank(tok, {"STOP", "\n\n"});
  push_bytes(blank, "line one\n\nline two");
  CHECK(blank.text() == "line one");
  infer::TextStream none(tok, {"STOP"});
  const auto all = push_bytes(none, "no stop in here ST");
  CHECK_FALSE(none.stopped());
  CHECK(joined(all) == "no stop in here ");  // "ST" still held back
  CHECK(none.finish() == "ST");
  CHECK(none.text() == "no stop in here ST");
}

TEST_CASE("Streaming holds back a UTF-8 character until its last byte", "[cpu][infer]") {
  const Tokenizer tok = Tokenizer::byte_level();
  infer::TextStream s(tok, {});
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC!";  // "café €!"
  const auto pieces = push_bytes(s, text);
  CHECK(pieces[3].empty());  // 0xC3 alone
  CHECK(pieces[4] == "\xC3\xA9");
  CHECK(pieces[6].empty());
  CHECK(pieces[7].empty());
  CHECK(pieces[8] == "\xE2\x82\xAC");
  CHECK(joined(pieces) == text);
  CHECK(s.text() == text);
}

TEST_CASE("Generation stops on a stop string spanning tokens and streams the text before it", "[cpu][infer]") {
  // A fixture model (ids < 96) read through the byte-level tokenizer: its ids are ASCII bytes.
  Model model = Model::load(std::string(HONE_TEST_DATA_DIR) + "/models/llama", DType::f64);
  const Tokenizer tok = Tokenizer::byte_level();
  Generator gen(model, &tok);
  GenerateOptions o;
  o.max_new_tokens = 20;
  o.ignore_eos = true;
  const std::vector<std::int32_t> prompt = {40, 41, 42};
  const Generation full = gen.generate({prompt}, o)[0];
  REQUIRE(full.ids.size() == 20);
  std::string expected_text;
  for (std::int32_t id : full.ids) expected_text += static_cast<char>(id);
  REQUIRE(full.text == expected_text);
  // A stop string made of generated tokens 6 and 7: the text ends before its first occurrence.
  const std::string stop = full.text.substr(6, 2);
  const std::size_t at = full.text.find(stop);
  o.stop = {stop};
  std::string streamed;
  int finished = 0;
  const Generation cut = gen.generate({prompt}, o, [&](const StreamEvent& e) {
    CHECK(e.index == 0);
    streamed += e.text;
    finished += e.finished;
    if (e.finished) CHECK(e.finish == FinishReason::stop);
  })[0];
  CHECK(cut.finish == FinishReason::stop);
  CHECK(cut.text == full.text.substr(0, at));
  CHECK(streamed == cut.text);
  CHECK(finished == 1);
  CHECK(cut.ids == std::vector<std::int32_t>(full.ids.begin(), full.ids.begin() + static_cast<long>(at + 2)));
}

TEST_CASE("Generation ends on any of several EOS ids, and the EOS is not in the text", "[cpu][infer]") {
  Model model = Model::load(std::string(HONE_TEST_DATA_DIR) + "/models/gpt2", DType::f64);
  const Tokenizer tok = Tokenizer::byte_level();
  Generator gen(model, &tok);
  GenerateOptions o;
  o.max_new_tokens = 16;
  o.ignore_eos = true;
  const Generation free = gen.generate({{50, 51}}, o)[0];
  REQUIRE(free.ids.size() == 16);
  // The 4th and 9th generated ids as EOS: generation ends at whichever comes first.
  o.ignore_eos = false;
  o.eos_ids = {free.ids[8], free.ids[3]};
  const Generation g = gen.generate({{50, 51}}, o)[0];
  const auto first = std::find_first_of(free.ids.begin(), free.ids.end(), o.eos_ids.begin(), o.eos_ids.end());
  const auto n = static_cast<std::size_t>(first - free.ids.begin()) + 1;
  CHECK(g.finish == FinishReason::eos);
  CHECK(g.ids == std::vector<std::int32_t>(free.ids.begin(), free.ids.begin() + static_cast<long>(n)));
  CHECK(g.text == free.text.substr(0, n - 1));  // the byte-level ids here are plain bytes
}

TEST_CASE("sampling defaults come from generation_config.json as transformers reads it", "[cpu][infer]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("hone_gencfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& text) { std::ofstream(dir / "generation_config.json") << text; };
  // No file: greedy.
  SamplingOptions o = generation_sampling_defaults(dir.string());
  CHECK(o.temperature == 0.0);
  CHECK(o.repetition_penalty == 1.0);
  // do_sample true: the file's values, transformers' defaults for the rest (top_k 50).
  write(R"({"do_sample": true, "temperature": 0.6, "top_p": 0.9, "repetition_penalty": 1.1})");
  o = generation_sampling_defaults(dir.string());
  CHECK(o.temperature == 0.6);
  CHECK(o.top_k == 50);
  CHECK(o.top_p == 0.9);
  CHECK(o.repetition_penalty == 1.1);
  // do_sample false (or absent): greedy, whatever the temperature says.
  write(R"({"temperature": 0.6, "top_k": 5})");
  o = generation_sampling_defaults(dir.string());
  CHECK(o.temperature == 0.0);
  CHECK(o.top_k == 0);
  write(R"({"do_sample": true, "temperature": "hot"})");
  CHECK_THROWS_WITH(generation_sampling_defaults(dir.string()),
                    Catch::Contains("generation_config.json") && Catch::Contains("'temperature' is \"hot\""));
  fs::remove_all(dir);
}

// Chat templates rendered in code against the strings the real Jinja templates render
// (tests/data/chat/chat_fixtures.jsonl, written by make_chat_fixtures.py), loss flags, family
// recognition, and chat examples tokenized with the real tokenizers.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hone/chat_template.h"
#include "hone/dataset.h"
#include "hone/error.h"
#include "hone/tokenizer.h"
#include "hone/tokenizer_encoder.h"
#include "support/files.h"

using namespace hone;
using data::Message;
using data::Segment;

namespace {

const std::string kData = HONE_TEST_DATA_DIR;

using test::read_file;
using test::read_xz;

// A template as the fixture names it: a tokenizer_config.json's chat_template or a .jinja file.
std::string template_text(const std::string& rel) {
  const std::string text = read_file(kData + "/" + rel);
  if (rel.size() > 5 && rel.substr(rel.size() - 5) == ".json")
    return nlohmann::json::parse(text).at("chat_template").get<std::string>();
  return text;
}

std::vector<nlohmann::json> fixtures() {
  std::vector<nlohmann::json> rows;
  std::istringstream in(read_file(kData + "/chat/chat_fixtures.jsonl"));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::vector<Message> messages_of(const nlohmann::json& row) {
  std::vector<Message> out;
  for (const auto& m : row.at("messages"))
    out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>(),
                   m.value("reasoning_content", std::string())});
  return out;
}

ChatOptions options_of(const nlohmann::json& row) {
  ChatOptions o;
  o.add_generation_prompt = row.at("add_generation_prompt").get<bool>();
  if (row.contains("enable_thinking")) o.enable_thinking = row.at("enable_thinking").get<bool>();
  return o;
}

// What opens an assistant turn (the end of the generation prompt) and what closes it.
std::pair<std::string, std::string> turn_markers(ChatFamily f, const std::string& eos) {
  switch (f) {
    case ChatFamily::chatml:
    case ChatFamily::qwen3: return {"<|im_start|>assistant\n", "<|im_end|>"};
    case ChatFamily::llama3: return {"<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"};
    default: return {"[/INST]", eos};
  }
}

bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

struct RealTokenizer {
  Tokenizer tok;
  std::string jinja;
};

const RealTokenizer& real(const std::string& name) {
  static std::map<std::string, RealTokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const std::string dir = kData + "/tokenizers/" + name;
    std::string jinja;
    std::ifstream probe(dir + "/chat_template.jinja");
    if (probe) jinja = read_file(dir + "/chat_template.jinja");
    RealTokenizer r{Tokenizer::from_json(read_xz(dir + "/tokenizer.json.xz"), read_file(dir + "/tokenizer_config.json"),
                                         jinja, name + "/tokenizer.json"),
                    jinja};
    it = cache.emplace(name, std::move(r)).first;
  }
  return it->second;
}

}  // namespace

TEST_CASE("every family renders the fixture strings of the Jinja templates exactly", "[cpu][chat]") {
  const std::vector<nlohmann::json> rows = fixtures();
  REQUIRE(rows.size() >= 200);
  std::map<std::string, int> rendered, raised;
  for (const nlohmann::json& row : rows) {
    const std::string family = row.at("family");
    const ChatTemplate ct = ChatTemplate::detect(template_text(row.at("template")), row.at("bos_token"),
                                                 row.at("eos_token"));
    INFO("family " << family << ", messages " << row.at("messages").dump() << ", add_generation_prompt "
                   << row.at("add_generation_prompt") << ", enable_thinking " << (row.contains("enable_thinking") ? row.at("enable_thinking").dump() : "unset"));
    REQUIRE(std::string(ct.name()) == family);
    const std::vector<Message> ms = messages_of(row);
    const ChatOptions o = options_of(row);
    if (row.contains("error")) {
      CHECK_THROWS_WITH(ct.render(ms, o), Catch::Contains(row.at("error").get<std::string>()));
      ++raised[family];
      continue;
    }
    const std::string expected = row.at("text");
    CHECK(ct.render_text(ms, o) == expected);
    // Loss flags: one loss segment per assistant turn, starting exactly where the generation
    // prompt ends and ending with the end-of-turn token; nothing else carries loss.
    const auto [open, close] = turn_markers(ct.family(), row.at("eos_token"));
    std::size_t assistants = 0;
    for (const Message& m : ms) assistants += m.role == "assistant";
    std::size_t loss_segments = 0;
    std::string before;
    for (const Segment& s : ct.render(ms, o)) {
      CHECK_FALSE(s.text.empty());
      if (s.loss) {
        ++loss_segments;
        CHECK(ends_with(before, open));
        CHECK(ends_with(s.text, close));
      }
      before += s.text;
    }
    CHECK(loss_segments == assistants);
    ++rendered[family];
  }
  for (const char* f : {"chatml", "qwen3", "llama3", "inst", "llama2", "mistral"}) {
    INFO(f);
    CHECK(rendered[f] >= 10);  // several conversations per family, not only errors
  }
  CHECK(raised["inst"] > 0);
  CHECK(raised["llama2"] > 0);
}

TEST_CASE("loss segments hold the assistant content and end-of-turn token only", "[cpu][chat]") {
  const std::vector<Message> conv = {
      {"system", "Be brief.", ""}, {"user", "Hi", ""}, {"assistant", "Hello.", ""}, {"user", "Bye", ""},
      {"assistant", "Ciao.", "Leaving."}};
  auto loss_texts = [&](const ChatTemplate& ct) {
    std::vector<std::string> out;
    for (const Segment& s : ct.render(conv))
      if (s.loss) out.push_back(s.text);
    return out;
  };
  CHECK(loss_texts(ChatTemplate::by_name("llama3", "<|begin_of_text|>", "<|end_of_text|>")) ==
        std::vector<std::string>{"Hello.<|eot_id|>", "Ciao.<|eot_id|>"});
  CHECK(loss_texts(ChatTemplate::by_name("chatml", "", "<|im_end|>")) ==
        std::vector<std::string>{"Hello.<|im_end|>", "Ciao.<|im_end|>"});
  // Qwen3 keeps the last turn's reasoning (the model writes it after the prompt) and drops
  // nothing else from the assistant's turns.
  CHECK(loss_texts(ChatTemplate::by_name("qwen3", "", "<|im_end|>")) ==
        std::vector<std::string>{"Hello.<|im_end|>", "<think>\nLeaving.\n</think>\n\nCiao.<|im_end|>"});
  CHECK(loss_texts(ChatTemplate::by_name("llama2", "<s>", "</s>")) ==
        std::vector<std::string>{" Hello. </s>", " Ciao. </s>"});
  CHECK(loss_texts(ChatTemplate::by_name("mistral", "<s>", "</s>")) ==
        std::vector<std::string>{" Hello.</s>", " Ciao.</s>"});
  const std::vector<Message> no_system(conv.begin() + 1, conv.end());
  const ChatTemplate inst = ChatTemplate::by_name("inst", "<s>", "</s>");
  const std::vector<Segment> segs = inst.render(no_system);
  REQUIRE(segs.size() == 5);
  CHECK(segs[0].text == "<s>[INST] Hi [/INST]");
  CHECK_FALSE(segs[0].loss);
  CHECK(segs[1].text == "Hello.</s>");
  CHECK(segs[1].loss);
  CHECK(segs[2].text == " [INST] Bye [/INST]");  // the space after </s> belongs to the prompt
  CHECK_FALSE(segs[2].loss);
}

TEST_CASE("the real tokenizers' templates are recognised", "[cpu][chat]") {
  const std::map<std::string, std::string> expected = {{"llama3", "llama3"}, {"qwen3", "qwen3"}, {"sp-bpe-32k", "inst"}};
  for (const auto& [dir, family] : expected) {
    INFO(dir);
    const Tokenizer& tok = real(dir).tok;
    REQUIRE_FALSE(tok.chat_template().empty());
    const data::TokenizerEncoder enc(tok);
    REQUIRE(enc.chat().has_value());
    CHECK(std::string(enc.chat()->name()) == family);
  }
  // Llama 3.0's template (as published first) adds the assistant header even without
  // add_generation_prompt; a template that tests the variable does not.
  const std::string llama3 = template_text("tokenizers/llama3/tokenizer_config.json");
  const std::vector<Message> one = {{"user", "x", ""}};
  CHECK(ends_with(ChatTemplate::detect(llama3, "<|begin_of_text|>", "").render_text(one),
                  "<|start_header_id|>assistant<|end_header_id|>\n\n"));
  const std::string revised =
      llama3.substr(0, llama3.rfind("{{ '<|start_header_id|>assistant")) +
      "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
  const ChatTemplate r = ChatTemplate::detect(revised, "<|begin_of_text|>", "");
  CHECK(r.render_text(one) == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
  ChatOptions gen;
  gen.add_generation_prompt = true;
  CHECK(ends_with(r.render_text(one, gen), "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"));
}

// The message of the hone::Error that f throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool names_all_families(const std::string& message) {
  for (const char* f : {"chatml", "qwen3", "llama3", "inst", "llama2", "mistral"})
    if (message.find(f) == std::string::npos) return false;
  return true;
}

TEST_CASE("unrecognised templates and unknown names are errors listing the families", "[cpu][chat]") {
  std::string e = error_of([] { ChatTemplate::detect("{% for m in messages %}### {{ m.role }}{% endfor %}", "", ""); });
  CHECK_THAT(e, Catch::Contains("not recognised") && Catch::Contains("### {{ m.role }}"));
  CHECK(names_all_families(e));
  e = error_of([] { ChatTemplate::detect("", "", ""); });
  CHECK_THAT(e, Catch::Contains("no chat template"));
  CHECK(names_all_families(e));
  // Variants of a known family that render differently are refused rather than approximated.
  e = error_of([] {
    ChatTemplate::detect("{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
                         "{{- 'Cutting Knowledge Date: December 2023\\n' }}", "", "");
  });
  CHECK_THAT(e, Catch::Contains("Llama 3.1"));
  CHECK(names_all_families(e));
  e = error_of([] {
    ChatTemplate::detect("{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
                         "{% for m in messages %}{{ '<|im_start|>' + m.role }}{% endfor %}", "", "");
  });
  CHECK_THAT(e, Catch::Contains("default system prompt"));
  e = error_of([] { ChatTemplate::detect("{{ '[INST] ' + messages[0]['content'] + ' [/INST]' }}", "", ""); });
  CHECK_THAT(e, Catch::Contains("[INST] template of no known variant"));
  CHECK(ChatTemplate::detect(read_file(kData + "/chat/chatml.jinja"), "", "").family() == ChatFamily::chatml);
  e = error_of([] { ChatTemplate::by_name("vicuna", "", ""); });
  CHECK_THAT(e, Catch::Contains("'vicuna'"));
  CHECK(names_all_families(e));
  for (const char* n : {"chatml", "qwen3", "llama3", "inst", "llama2", "mistral"})
    CHECK(std::string(ChatTemplate::by_name(n, "", "").name()) == n);
}

TEST_CASE("bad conversations are errors", "[cpu][chat]") {
  const ChatTemplate ct = ChatTemplate::by_name("chatml", "", "");
  CHECK_THROWS_WITH(ct.render({}), Catch::Contains("at least one message"));
  CHECK_THROWS_WITH(ct.render({{"tool", "x", ""}}), Catch::Contains("messages[0].role") && Catch::Contains("tool"));
  // The [INST] templates raise where the Jinja template raises, and hone names the message.
  const std::string e =
      error_of([] { ChatTemplate::by_name("inst", "<s>", "</s>").render({{"user", "a", ""}, {"user", "b", ""}}); });
  CHECK_THAT(e, Catch::Contains("must alternate") && Catch::Contains("messages[1] is user"));
}

TEST_CASE("chat examples tokenize like the whole rendered string, with loss on assistant turns", "[cpu][chat][data]") {
  // ByteLevel tokenizers split the rendered text at the segment boundaries anyway (they sit
  // at special tokens and line breaks), so segment-wise ids equal the ids of the whole string.
  const std::vector<nlohmann::json> rows = fixtures();
  int checked = 0;
  for (const auto& [family, dir] : std::map<std::string, std::string>{{"llama3", "llama3"}, {"qwen3", "qwen3"},
                                                                       {"chatml", "qwen3"}}) {
    const Tokenizer& tok = real(dir).tok;
    const data::TokenizerEncoder enc(tok, family == "chatml" ? "chatml" : "auto");
    REQUIRE(std::string(enc.chat()->name()) == family);
    for (const nlohmann::json& row : rows) {
      if (row.at("family") != family || row.at("add_generation_prompt").get<bool>() || row.contains("error") ||
          row.contains("enable_thinking"))
        continue;
      INFO(family << ": " << row.at("messages").dump());
      const std::string line = nlohmann::json{{"messages", row.at("messages")}}.dump();
      data::DataOptions o;
      o.max_length = 100000;
      const data::Example ex = data::parse_example(line, data::Format::auto_detect, enc, "chat:1");
      const auto t = data::tokenize_example(ex, enc, o, "chat:1");
      REQUIRE(t.has_value());
      CHECK(t->ids == tok.encode(row.at("text").get<std::string>(), false));
      // The labelled tokens are exactly the loss segments' tokens, in order.
      std::vector<std::int32_t> labelled, loss_ids;
      for (std::size_t i = 0; i < t->ids.size(); ++i)
        if (t->labels[i] != data::kIgnoreLabel) {
          CHECK(t->labels[i] == t->ids[i]);
          labelled.push_back(t->ids[i]);
        }
      std::size_t assistants = 0;
      for (const auto& m : row.at("messages")) assistants += m.at("role") == "assistant";
      std::string loss_text;
      for (const Segment& s : ex.segments)
        if (s.loss) {
          loss_text += s.text;
          for (std::int32_t id : tok.encode(s.text, false)) loss_ids.push_back(id);
        }
      CHECK(labelled == loss_ids);
      CHECK(tok.decode_raw(labelled) == loss_text);
      const std::string eot = family == "llama3" ? "<|eot_id|>" : "<|im_end|>";
      std::size_t eots = 0;
      for (std::int32_t id : labelled) eots += tok.id_to_token(id) == eot;
      CHECK(eots == assistants);  // every assistant turn's end-of-turn token is learned
      if (assistants == 0) CHECK(labelled.empty());
      ++checked;
    }
  }
  CHECK(checked >= 30);
}

TEST_CASE("[INST] conversations of a Metaspace tokenizer tokenize like the whole string", "[cpu][chat][data]") {
  // sp-bpe-32k prepends "▁" to every piece it normalises: encoding the answer after "[/INST]" on
  // its own would give "▁Hello" where the whole string gives "Hello". The ids must be those of
  // the whole string, with loss on the answers.
  const Tokenizer& tok = real("sp-bpe-32k").tok;
  const data::TokenizerEncoder enc(tok);
  int checked = 0;
  for (const nlohmann::json& row : fixtures()) {
    if (row.at("family") != "inst" || row.at("add_generation_prompt").get<bool>() || row.contains("error")) continue;
    INFO(row.at("messages").dump());
    const std::string line = nlohmann::json{{"messages", row.at("messages")}}.dump();
    data::DataOptions o;
    o.max_length = 100000;
    const data::Example ex = data::parse_example(line, data::Format::auto_detect, enc, "chat:1");
    const auto t = data::tokenize_example(ex, enc, o, "chat:1");
    REQUIRE(t.has_value());
    CHECK(t->ids == tok.encode(row.at("text").get<std::string>(), false));
    std::vector<std::int32_t> labelled;
    for (std::size_t i = 0; i < t->ids.size(); ++i)
      if (t->labels[i] != data::kIgnoreLabel) labelled.push_back(t->ids[i]);
    // Every answer's text is learned (whitespace aside: the template trims), in order, and
    // nothing of the prompts' [INST] markup.
    auto squeeze = [](const std::string& s) {
      std::string out;
      for (char ch : s)
        if (ch != ' ' && ch != '\n') out += ch;
      return out;
    };
    const std::string got = tok.decode_raw(labelled), learned = squeeze(got);
    std::size_t from = 0;
    for (const auto& m : row.at("messages"))
      if (m.at("role") == "assistant") {
        const std::string want = squeeze(m.at("content").get<std::string>());
        const std::size_t at = learned.find(want, from);
        CHECK(at != std::string::npos);
        from = at == std::string::npos ? from : at + want.size();
      }
    CHECK(got.find("[INST]") == std::string::npos);
    ++checked;
  }
  CHECK(checked >= 5);
}

TEST_CASE("prompt + completion tokenize like the whole string; a token spanning the boundary is learned",
          "[cpu][data]") {
  const Tokenizer& tok = real("llama3").tok;
  const data::TokenizerEncoder enc(tok);
  const data::Example ex = data::parse_example(R"({"prompt": "reverse cat: ", "completion": "tac"})",
                                               data::Format::auto_detect, enc, "x:1");
  data::DataOptions o;
  const auto t = data::tokenize_example(ex, enc, o, "x:1");
  REQUIRE(t.has_value());
  std::vector<std::int32_t> whole = tok.encode("reverse cat: tac", false);
  if (const auto bos = enc.bos_id()) whole.insert(whole.begin(), *bos);
  whole.push_back(enc.eos_id());
  CHECK(t->ids == whole);
  // " tac" is one token of the whole string: it carries the loss, as does the EOS.
  std::vector<std::int32_t> labelled;
  for (std::size_t i = 0; i < t->ids.size(); ++i)
    if (t->labels[i] != data::kIgnoreLabel) labelled.push_back(t->ids[i]);
  CHECK(tok.decode_raw(labelled) == " tac<|end_of_text|>");
}

TEST_CASE("the encoder reports a missing template when a conversation is rendered", "[cpu][chat][data]") {
  const Tokenizer& llama = real("llama3").tok;
  CHECK_THROWS_WITH(data::TokenizerEncoder(llama, "alpaca"), Catch::Contains("'alpaca'"));
  const std::vector<Message> conv = {{"user", "hi", ""}, {"assistant", "yo", ""}};
  // A byte-level tokenizer without a config names no EOS; give it one through a config.
  const Tokenizer with_eos = Tokenizer::from_json(
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "<eos>": 1}, "merges": []},
          "added_tokens": [{"id": 1, "content": "<eos>", "special": true}]})",
      R"({"eos_token": "<eos>"})");
  const data::TokenizerEncoder no_template(with_eos);
  CHECK_FALSE(no_template.chat().has_value());
  CHECK_THROWS_WITH(no_template.render_chat(conv), Catch::Contains("no chat template"));
  // Choosing a family by name works without a template in the tokenizer.
  const data::TokenizerEncoder named(with_eos, "mistral");
  CHECK(named.render_chat(conv).at(0).text == "[INST] hi[/INST]");
  CHECK(named.render_chat(conv).at(1).text == " yo<eos>");
}

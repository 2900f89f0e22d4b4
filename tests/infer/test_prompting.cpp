// Prompting helpers and evaluation: templates, few-shot rendering (plain and chat) against
// expected strings, seeded demonstration draws, task files, answer normalisation, and the
// metrics and target log-likelihoods of hone::evaluate against an independent computation.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "hone/evaluate.h"
#include "hone/tokenizer.h"

using namespace hone;
namespace fs = std::filesystem;

namespace {

TaskExample ex(const std::string& prompt, const std::string& target) {
  TaskExample e;
  e.fields = {{"prompt", prompt}, {"completion", target}};
  e.target = target;
  return e;
}

std::string write_file(const std::string& name, const std::string& text) {
  std::ofstream(name) << text;
  return name;
}

}  // namespace

TEST_CASE("Templates fill fields and refuse missing ones by name", "[cpu][infer]") {
  const std::map<std::string, std::string> f = {{"question", "2+2?"}, {"n", "3"}};
  CHECK(fill_template("Q{n}: {question}\nA:", f) == "Q3: 2+2?\nA:");
  CHECK(fill_template("{{literal}} {n}", f) == "{literal} 3");
  CHECK_THROWS_WITH(fill_template("{answer}", f), Catch::Contains("uses field 'answer', which the example lacks (it has: n, question)"));
  CHECK_THROWS_WITH(fill_template("{oops", f), Catch::Contains("is not closed"));
}

TEST_CASE("Zero- and few-shot prompts render to the expected strings", "[cpu][infer]") {
  const std::vector<TaskExample> pool = {ex("reverse red: ", "der"), ex("reverse cat: ", "tac")};
  PromptFormat f;
  CHECK(Prompter(f, pool).render(ex("reverse sun: ", "nus"), 0) == "reverse sun: ");
  f.instruction = "Reverse each word.";
  CHECK(Prompter(f, pool).render(ex("reverse sun: ", "nus"), 0) == "Reverse each word.\n\nreverse sun: ");
  // One shot from a pool whose other example is the query itself: the demonstration is fixed.
  f.shots = 1;
  CHECK(Prompter(f, pool).render(pool[0], 7) == "Reverse each word.\n\nreverse cat: tac\n\nreverse red: ");
  f.input = "Word: {prompt}\nAnswer: ";
  f.separator = "\n###\n";
  f.instruction.clear();
  CHECK(Prompter(f, pool).render(pool[1], 3) == "Word: reverse red: \nAnswer: der\n###\nWord: reverse cat: \nAnswer: ");
  // Two shots from two others: both, in the drawn order.
  f = {};
  f.shots = 2;
  const Prompter two(f, pool);
  const auto d = two.demonstrations(ex("reverse sun: ", "nus"), 0);
  REQUIRE(d.size() == 2);
  CHECK(d[0] != d[1]);
  CHECK(two.render(ex("reverse sun: ", "nus"), 0) ==
        pool[d[0]].fields.at("prompt") + pool[d[0]].target + "\n\n" + pool[d[1]].fields.at("prompt") +
            pool[d[1]].target + "\n\nreverse sun: ");
  f.shots = 3;
  CHECK_THROWS_WITH(Prompter(f, pool).demonstrations(pool[0], 0),
                    Catch::Contains("3 shots need 3 pool examples other than the query; the pool offers 1"));
}

TEST_CASE("Chat prompts render demonstrations as turns with the generation prompt", "[cpu][infer]") {
  const std::string dir = "prompting_tokenizer";
  fs::create_directories(dir);
  write_byte_level_tokenizer(dir);
  const Tokenizer tok = Tokenizer::from_dir(dir);
  PromptFormat f;
  f.chat = true;
  f.instruction = "Answer.";
  f.shots = 1;
  const std::vector<TaskExample> pool = {ex("reverse red: ", "der"), ex("reverse cat: ", "tac")};
  CHECK(Prompter(f, pool).text(pool[1], 0, tok) ==
        "<|im_start|>system\nAnswer.<|im_end|>\n<|im_start|>user\nreverse red: <|im_end|>\n"
        "<|im_start|>assistant\nder<|im_end|>\n<|im_start|>user\nreverse cat: <|im_end|>\n<|im_start|>assistant\n");
  f.shots = 0;
  f.instruction.clear();
  CHECK(Prompter(f, pool).text(pool[0], 0, tok) ==
        "<|im_start|>user\nreverse red: <|im_end|>\n<|im_start|>assistant\n");
  // The plain form encodes without BOS here (this tokenizer adds none); chat likewise.
  CHECK(encode_prompt(tok, "ab") == std::vector<std::int32_t>{97, 98});
  fs::remove_all(dir);
}

TEST_CASE("Demonstrations are drawn by seed, distinct, and spread over the pool", "[cpu][infer]") {
  std::vector<TaskExample> pool;
  for (int i = 0; i < 10; ++i) pool.push_back(ex("q" + std::to_string(i), "a"));
  PromptFormat f;
  f.shots = 3;
  f.seed = 4;
  const Prompter p(f, pool);
  std::vector<int> seen(10, 0);
  for (std::uint64_t q = 0; q < 400; ++q) {
    const auto d = p.demonstrations(pool[q % 10], q);
    REQUIRE(d == p.demonstrations(pool[q % 10], q));  // reproducible
    REQUIRE(std::set<std::size_t>(d.begin(), d.end()).size() == 3);
    REQUIRE(std::find(d.begin(), d.end(), q % 10) == d.end());  // never the query itself
    for (std::size_t i : d) ++seen[i];
  }
  for (int c : seen) CHECK(std::abs(c - 120) < 40);  // 1200 picks over 10: about 120 each
  f.seed = 5;
  CHECK(Prompter(f, pool).demonstrations(pool[0], 0) != p.demonstrations(pool[0], 0));
}

TEST_CASE("Task files: targets, choices by index or text, and errors with file and line", "[cpu][infer]") {
  const auto path = write_file("task_test.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\", \"n\": 3}\n\n"
                                                  "{\"prompt\": \"c\", \"completion\": 7}\n");
  const auto plain = read_task(path);
  REQUIRE(plain.size() == 2);
  CHECK(plain[0].target == "b");
  CHECK(plain[0].fields.at("n") == "3");
  CHECK(plain[1].target == "7");
  CHECK(plain[1].line == 3);
  write_file(path, "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"}\n");
  CHECK_THROWS_WITH(read_task(path), Catch::Contains("task_test.jsonl:2: no target field 'completion'"));
  write_file(path, "{\"question\": \"q\", \"choices\": [\"x\", \"y\"], \"answer\": 1}\n"
                   "{\"question\": \"q\", \"choices\": [\"x\", \"y\"], \"answer\": \"x\"}\n");
  const auto mc = read_task(path, "answer");
  REQUIRE(mc.size() == 2);
  CHECK(mc[0].answer == 1);
  CHECK(mc[0].target == "y");
  CHECK(mc[1].answer == 0);
  CHECK(mc[1].line == 2);
  write_file(path, "{\"question\": \"q\", \"choices\": [\"x\"], \"answer\": 4}\n");
  CHECK_THROWS_WITH(read_task(path, "answer"), Catch::Contains("task_test.jsonl:1: target 4 is not a choice index in [0, 1)"));
  write_file(path, "{\"prompt\": broken\n");
  CHECK_THROWS_WITH(read_task(path), Catch::Contains("task_test.jsonl:1: not valid JSON"));
  fs::remove(path);
  CHECK(normalize_answer("  The Cat,  sat on a MAT! ") == "cat sat on mat");
  CHECK(parse_metric("choice") == Metric::multiple_choice);
  CHECK_THROWS_WITH(parse_metric("bleu"), Catch::Contains("metric 'bleu' is not one of exact, normalized, contains, choice"));
}

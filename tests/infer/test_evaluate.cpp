// hone::evaluate on a fixture model read through the byte-level tokenizer (its ids below 96 are
// ASCII bytes): accuracy of generated answers, multiple choice by log-likelihood and the
// targets' log-likelihoods, each against an independent computation with Model::next_token_logits.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hone/evaluate.h"
#include "hone/tokenizer.h"

using namespace hone;

namespace {

TaskExample ex(const std::string& prompt, const std::string& target, std::vector<std::string> choices = {}) {
  TaskExample e;
  e.fields = {{"prompt", prompt}};
  e.target = target;
  e.choices = std::move(choices);
  if (!e.choices.empty()) e.answer = std::find(e.choices.begin(), e.choices.end(), target) - e.choices.begin();
  return e;
}

// Σ log p(continuation | prompt) one token at a time through the public model.
double logprob(Model& m, std::vector<std::int32_t> ids, const std::vector<std::int32_t>& continuation) {
  double total = 0;
  for (std::int32_t next : continuation) {
    const std::vector<float> l = m.next_token_logits(ids);
    double mx = -INFINITY, z = 0;
    for (float x : l) mx = std::max<double>(mx, x);
    for (float x : l) z += std::exp(x - mx);
    total += l[static_cast<std::size_t>(next)] - mx - std::log(z);
    ids.push_back(next);
  }
  return total;
}

std::vector<std::int32_t> bytes(const std::string& s) { return std::vector<std::int32_t>(s.begin(), s.end()); }

}  // namespace

TEST_CASE("Evaluation accuracy, log-likelihoods and outputs agree with an independent computation", "[cpu][infer]") {
  Model model = Model::load(std::string(HONE_TEST_DATA_DIR) + "/models/llama", DType::f32);
  const Tokenizer tok = Tokenizer::byte_level();
  // What greedy decoding writes after each prompt: example 0's target, not example 1's.
  Generator gen(model, &tok);
  GenerateOptions g;
  g.max_new_tokens = 3;
  g.ignore_eos = true;
  const std::string a0 = gen.generate_text({"AB:"}, g)[0].text, a2 = gen.generate_text({"7 8 9"}, g)[0].text;
  const std::vector<TaskExample> task = {ex("AB:", a0), ex("CD:", "@@@"), ex("7 8 9", a2 + "Q")};

  EvalOptions o;
  o.generation = g;
  o.batch = 2;
  std::vector<ExampleResult> r;
  EvalSummary s = evaluate(model, tok, task, task, o, &r);
  REQUIRE(r.size() == 3);
  CHECK(r[0].correct);
  CHECK(r[1].correct == (r[1].prediction == "@@@"));
  CHECK_FALSE(r[2].correct);
  CHECK(s.correct == r[0].correct + r[1].correct + r[2].correct);
  CHECK(s.accuracy == Approx(static_cast<double>(s.correct) / 3));
  CHECK(s.generated_tokens == 9);
  // Normalised and contains metrics.
  o.metric = Metric::contains;
  // The answer's own text is contained in it unless normalisation leaves nothing.
  CHECK(evaluate(model, tok, {ex("7 8 9", a2)}, {}, o).correct == !normalize_answer(a2).empty());
  CHECK(evaluate(model, tok, {ex("7 8 9", a2 + "XYZ")}, {}, o).correct == false);
  // Target log-likelihoods: target tokens then EOS (2), as training scores an example.
  double nll = 0;
  std::int64_t tokens = 0;
  for (std::size_t i = 0; i < task.size(); ++i) {
    std::vector<std::int32_t> cont = bytes(task[i].target);
    cont.push_back(2);
    const double lp = logprob(model, bytes(task[i].fields.at("prompt")), cont);
    CHECK(r[i].target_logprob == Approx(lp).epsilon(1e-5));
    CHECK(r[i].target_tokens == static_cast<std::int64_t>(cont.size()));
    nll -= lp;
    tokens += static_cast<std::int64_t>(cont.size());
  }
  CHECK(s.target_tokens == tokens);
  CHECK(s.loss == Approx(nll / static_cast<double>(tokens)).epsilon(1e-5));
  CHECK(s.perplexity == Approx(std::exp(s.loss)));

  // Multiple choice: the choice with the largest log-likelihood is the prediction.
  const std::vector<TaskExample> mc = {ex("AB:", "X", {"X", "YZ", "0"}), ex("Q=", "1", {"1", "2", "3"})};
  o = {};
  o.metric = Metric::multiple_choice;
  o.loss = false;
  const EvalSummary sm = evaluate(model, tok, mc, {}, o, &r);
  std::int64_t right = 0;
  for (std::size_t i = 0; i < mc.size(); ++i) {
    std::vector<double> lp;
    for (const std::string& c : mc[i].choices) lp.push_back(logprob(model, bytes(mc[i].fields.at("prompt")), bytes(c)));
    const auto best = std::max_element(lp.begin(), lp.end()) - lp.begin();
    REQUIRE(r[i].choice_logprobs.size() == 3);
    for (std::size_t c = 0; c < 3; ++c) CHECK(r[i].choice_logprobs[c] == Approx(lp[c]).epsilon(1e-5));
    CHECK(r[i].prediction == mc[i].choices[static_cast<std::size_t>(best)]);
    right += best == mc[i].answer;
  }
  CHECK(sm.correct == right);

  // Few-shot: the prompt holds the drawn demonstration; outputs are written as JSONL + JSON.
  o = {};
  o.generation = g;
  o.prompt.shots = 1;
  o.prompt.separator = "\n";
  s = evaluate(model, tok, task, task, o, &r);
  const std::size_t d = r[1].demonstrations.at(0);
  CHECK(d != 1);
  CHECK(r[1].prompt == task[d].fields.at("prompt") + task[d].target + "\nCD:");
  write_eval_outputs("eval_results_test.jsonl", "eval_summary_test.json", s, r);
  std::ifstream lines("eval_results_test.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    CHECK(j.at("prediction") == r[static_cast<std::size_t>(n)].prediction);
    ++n;
  }
  CHECK(n == 3);
  std::ifstream summary("eval_summary_test.json");
  const auto j = nlohmann::json::parse(summary);
  CHECK(j.at("accuracy").get<double>() == s.accuracy);
  CHECK(j.at("shots") == 1);
  std::remove("eval_results_test.jsonl");
  std::remove("eval_summary_test.json");
}

// `hone demo` end to end on a smaller model: pre-training and fine-tuning both learn, held-out
// accuracy rises, and the folders it keeps are complete models.
#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <unistd.h>

#include "demo.h"
#include "demo_data.h"
#include "hone/model.h"
#include "hone/tokenizer.h"

using namespace hone;

TEST_CASE("demo task: held-out reviews use pairs the training split never has", "[cpu][demo]") {
  const auto train = demo::task_examples(false), held = demo::task_examples(true);
  CHECK(train.size() == 144);
  CHECK(held.size() == 48);
  std::set<std::string> seen;
  for (const auto& e : train) seen.insert(e.prompt);
  std::int64_t positive = 0;
  for (const auto& e : held) {
    CHECK(seen.count(e.prompt) == 0);
    CHECK((e.completion == " positive" || e.completion == " negative"));
    positive += e.completion == " positive";
  }
  CHECK(positive == 24);
  CHECK(demo::corpus_lines(1, 10) == demo::corpus_lines(1, 10));
  CHECK(demo::corpus_lines(1, 10) != demo::corpus_lines(2, 10));
  CHECK(nlohmann::json::parse(demo::corpus_lines(1, 3).back()).contains("text"));
}

TEST_CASE("demo pre-trains, fine-tunes and improves held-out accuracy", "[cpu][demo][slow]") {
  const auto work = std::filesystem::temp_directory_path() / ("hone_demo_test_" + std::to_string(::getpid()));
  demo::DemoOptions o;
  o.pretrain_steps = 40;
  o.finetune_steps = 300;
  o.hidden = 64;
  o.layers = 2;
  o.progress = false;
  o.out = work.string();
  const demo::DemoReport r = demo::run_demo(o);
  INFO(r.to_json());
  CHECK(r.pretrain_loss_first > 5.0);  // near log(264) at initialisation
  CHECK(r.pretrain_loss_last < r.pretrain_loss_first - 2.5);
  CHECK(r.eval_loss_after < r.eval_loss_before / 4);
  CHECK(r.accuracy_before < 0.2);
  CHECK(r.accuracy_after > 0.7);  // 0.81 at these settings; chance is 0.5
  CHECK(r.samples.size() == 4);
  CHECK(nlohmann::json::parse(r.to_json())["accuracy_after"] == r.accuracy_after);
  // The kept folders are models with their tokenizer.
  for (const char* sub : {"base", "finetuned"}) {
    Model m = Model::load((work / sub).string());
    const Tokenizer t = Tokenizer::from_dir((work / sub).string());
    CHECK(m.info().vocab_size >= t.vocab_size());
  }
  CHECK(std::filesystem::exists(work / "finetuned" / "metrics.jsonl"));
  std::filesystem::remove_all(work);
}

// Prompting and evaluation: task examples from JSONL, prompt templates with k few-shot
// demonstrations drawn (seeded) from a pool, chat-template application, and accuracy by
// generation (exact, normalised, contains) or by multiple choice (log-likelihood), with the
// per-token loss and perplexity of the targets. Zero-shot, few-shot, adapter and fine-tuned
// runs of one task differ only in options and in the model passed.
//
//   auto task = hone::read_task("eval.jsonl");
//   hone::EvalOptions o;  o.metric = hone::Metric::exact_match;  o.prompt.shots = 3;
//   hone::EvalSummary s = hone::evaluate(model, tokenizer, task, task, o);  // pool = task
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "hone/dataset.h"
#include "hone/generator.h"
#include "hone/model.h"

namespace hone {

class Tokenizer;

// One line of a task file. Every string, number or boolean field is kept as text; "choices"
// (a list of strings) makes a multiple-choice example.
struct TaskExample {
  std::map<std::string, std::string> fields;
  std::vector<std::string> choices;
  std::string target;       // the target field's text (multiple choice: the right choice's text)
  std::int64_t answer = -1;  // multiple choice: index of the right choice
  std::int64_t line = 0;     // 1-based line in the file
};

// Reads a JSONL task. The target is field `target_field`; for multiple choice it may be the
// index of the right choice or its text. Errors name the file, line and field.
std::vector<TaskExample> read_task(const std::string& path, const std::string& target_field = "completion");

// "{name}" is replaced by the field's text ("{{" and "}}" are literal braces); a field the
// example lacks is an error naming it.
std::string fill_template(const std::string& text, const std::map<std::string, std::string>& fields);

struct PromptFormat {
  std::string instruction;               // first, before the demonstrations ("" for none)
  std::string input = "{prompt}";        // an example's prompt, with {field} placeholders
  std::string separator = "\n\n";        // after the instruction and after each demonstration
  std::int64_t shots = 0;                // demonstrations: prompt + target of pool examples
  std::uint64_t seed = 0;                // which demonstrations each query gets
  // Chat: the instruction becomes the system message, each demonstration a user turn and an
  // assistant turn, the query the last user turn, rendered by the tokenizer's chat template
  // ("auto") or a family named here (chatml, llama3, …) with the generation prompt.
  bool chat = false;
  std::string chat_template = "auto";
};

// Renders prompts for one pool of demonstrations.
class Prompter {
 public:
  Prompter(PromptFormat format, std::vector<TaskExample> pool);
  // The pool indices of query `index`'s demonstrations: `shots` distinct examples drawn by
  // Philox(seed) keyed on the index, never one whose fields equal the query's (so the task
  // itself can be the pool). Errors when the pool is too small.
  std::vector<std::size_t> demonstrations(const TaskExample& query, std::uint64_t index) const;
  // Plain text: instruction + separator, then input + target + separator per demonstration,
  // then the query's input.
  std::string render(const TaskExample& query, std::uint64_t index) const;
  // The conversation the chat form renders (without the generation prompt).
  std::vector<data::Message> messages(const TaskExample& query, std::uint64_t index) const;
  // The prompt's text and ids for `tokenizer`: plain (BOS as training adds it) or chat.
  std::string text(const TaskExample& query, std::uint64_t index, const Tokenizer& tokenizer) const;
  const PromptFormat& format() const { return format_; }

 private:
  PromptFormat format_;
  std::vector<TaskExample> pool_;
};

enum class Metric {
  exact_match,       // the generated text equals the target
  normalized_match,  // equal after lower-casing, dropping punctuation and a/an/the, and collapsing spaces
  contains,          // the normalised target occurs in the normalised generated text
  multiple_choice,   // the choice with the largest log-likelihood after the prompt is the answer
};
Metric parse_metric(std::string_view name);  // "exact", "normalized", "contains", "choice"
const char* metric_name(Metric m);
// The normalisation of normalized_match and contains.
std::string normalize_answer(std::string_view text);

struct EvalOptions {
  Metric metric = Metric::exact_match;
  PromptFormat prompt;
  // Generation for the generative metrics. With demonstrations, the separator (when it is not
  // only spaces) is also a stop string: the model would go on with another example.
  GenerateOptions generation;
  std::int64_t batch = 8;   // examples per generation batch / scoring forward
  std::int64_t limit = 0;   // the first `limit` examples (0: all)
  bool loss = true;         // score the targets' per-token loss (teacher forcing)
};

struct ExampleResult {
  std::int64_t index = 0, line = 0;
  std::string prompt, target, prediction;
  bool correct = false;
  std::vector<double> choice_logprobs;  // multiple choice: Σ log p over each choice's tokens
  double target_logprob = 0;            // Σ log p of the target tokens (and EOS, non-chat)
  std::int64_t target_tokens = 0;
  std::vector<std::size_t> demonstrations;
  FinishReason finish = FinishReason::length;
};

struct EvalSummary {
  Metric metric = Metric::exact_match;
  std::int64_t examples = 0, correct = 0, shots = 0;
  double accuracy = 0;
  std::int64_t target_tokens = 0;
  double loss = 0;        // mean negative log-likelihood per target token (nats)
  double perplexity = 0;  // exp(loss)
  std::int64_t generated_tokens = 0;
  double seconds = 0;
  std::string to_json() const;
};

// Evaluates `model` (with whatever adapter is attached) on `task`, demonstrations from `pool`.
// Fills `results` (one per example, in order) when given. A model on a CUDA device scores and
// generates there; only per-token losses and generated ids come back to the host.
EvalSummary evaluate(Model& model, const Tokenizer& tokenizer, const std::vector<TaskExample>& task,
                     const std::vector<TaskExample>& pool, const EvalOptions& options,
                     std::vector<ExampleResult>* results = nullptr);

// Writes `results` as JSONL (one object per example) and `summary` as JSON, each atomically.
void write_eval_outputs(const std::string& results_path, const std::string& summary_path, const EvalSummary& summary,
                        const std::vector<ExampleResult>& results);

}  // namespace hone

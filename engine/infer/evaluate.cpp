// Evaluation (include/hone/evaluate.h): prompts rendered per example, answers generated in
// batches or choices scored by log-likelihood, targets scored by teacher forcing; per-example
// results and a summary.
#include "hone/evaluate.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hone/error.h"
#include "hone/tokenizer.h"
#include "infer/decoder.h"
#include "model/transformer.h"
#include "ops/ops.h"

namespace hone {

namespace {

constexpr const char* kOp = "eval";

// Σ log p(ids[t] | ids[<t]) over t ≥ from[s] for every sequence, one packed forward per
// `batch` sequences.
std::vector<double> log_likelihoods(model::Transformer& m, const std::vector<std::vector<std::int32_t>>& seqs,
                                    const std::vector<std::size_t>& from, std::int64_t batch) {
  std::vector<double> out(seqs.size(), 0.0);
  for (std::size_t b0 = 0; b0 < seqs.size(); b0 += static_cast<std::size_t>(batch)) {
    const std::size_t b1 = std::min(seqs.size(), b0 + static_cast<std::size_t>(batch));
    std::vector<std::int64_t> ids, pos, targets;
    std::vector<std::int32_t> cu = {0};
    for (std::size_t s = b0; s < b1; ++s) {
      for (std::size_t t = 0; t < seqs[s].size(); ++t) {
        ids.push_back(seqs[s][t]);
        pos.push_back(static_cast<std::int64_t>(t));
        // The logits at t predict token t + 1.
        targets.push_back(t + 1 < seqs[s].size() && t + 1 >= from[s] ? seqs[s][t + 1] : data::kIgnoreLabel);
      }
      cu.push_back(static_cast<std::int32_t>(ids.size()));
    }
    const auto N = static_cast<std::int64_t>(ids.size());
    model::Batch batch_in;
    batch_in.ids = Tensor::from_vector<std::int64_t>({N}, ids);
    batch_in.positions = Tensor::from_vector<std::int64_t>({N}, pos);
    batch_in.cu_seqlens = Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(cu.size())}, cu);
    // On a device the logits stay there (bf16) and the per-token losses (f32, stat_dtype) are
    // what comes back to the host.
    const Tensor logits = m.forward(batch_in);
    const Tensor losses = Tensor::empty({N}, m.stat_dtype(), m.device());
    const Tensor lse = Tensor::empty({N}, m.stat_dtype(), m.device());
    ops::cross_entropy_fwd(logits, Tensor::from_vector<std::int64_t>({N}, targets).to(m.device()), {}, losses, lse);
    const std::vector<double> l = losses.to_vector<double>();
    for (std::size_t s = b0; s < b1; ++s)
      for (std::int32_t t = cu[s - b0]; t < cu[s - b0 + 1]; ++t) out[s] -= l[static_cast<std::size_t>(t)];
  }
  return out;
}

// Tokens shared by the start of a and b: where b's continuation begins (a token spanning the
// boundary belongs to the continuation, as in the data pipeline).
std::size_t common_prefix(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  std::size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

bool is_space_only(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

std::string write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    HONE_CHECK(out.good(), kOp, "cannot write ", tmp);
    out << text;
    HONE_CHECK(out.good(), kOp, "cannot write ", tmp);
  }
  std::filesystem::rename(tmp, path);
  return path;
}

}  // namespace

Metric parse_metric(std::string_view name) {
  if (name == "exact") return Metric::exact_match;
  if (name == "normalized") return Metric::normalized_match;
  if (name == "contains") return Metric::contains;
  if (name == "choice") return Metric::multiple_choice;
  fail(kOp, cat("metric '", name, "' is not one of exact, normalized, contains, choice"));
}

const char* metric_name(Metric m) {
  switch (m) {
    case Metric::exact_match: return "exact";
    case Metric::normalized_match: return "normalized";
    case Metric::contains: return "contains";
    case Metric::multiple_choice: return "choice";
  }
  return "?";
}

std::string normalize_answer(std::string_view text) {
  std::string words, out;
  for (char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (u < 128 && std::ispunct(u)) continue;
    words += u < 128 && std::isspace(u) ? ' ' : static_cast<char>(u < 128 ? std::tolower(u) : u);
  }
  std::size_t i = 0;
  while (i < words.size()) {
    const std::size_t b = words.find_first_not_of(' ', i);
    if (b == std::string::npos) break;
    std::size_t e = words.find(' ', b);
    if (e == std::string::npos) e = words.size();
    const std::string w = words.substr(b, e - b);
    if (w != "a" && w != "an" && w != "the") out += (out.empty() ? "" : " ") + w;
    i = e;
  }
  return out;
}

std::string EvalSummary::to_json() const {
  return nlohmann::json{{"metric", metric_name(metric)}, {"examples", examples}, {"correct", correct},
                        {"accuracy", accuracy}, {"shots", shots}, {"target_tokens", target_tokens},
                        {"loss", loss}, {"perplexity", perplexity}, {"generated_tokens", generated_tokens},
                        {"seconds", seconds}}
      .dump(1);
}

EvalSummary evaluate(Model& model, const Tokenizer& tokenizer, const std::vector<TaskExample>& task_all,
                     const std::vector<TaskExample>& pool, const EvalOptions& o, std::vector<ExampleResult>* results) {
  HONE_CHECK(o.batch >= 1, kOp, "batch ", o.batch, " must be ≥ 1");
  HONE_CHECK(o.limit >= 0, kOp, "limit ", o.limit, " must be ≥ 0");
  const auto start = std::chrono::steady_clock::now();
  std::vector<TaskExample> task = task_all;
  if (o.limit > 0 && static_cast<std::size_t>(o.limit) < task.size()) task.resize(static_cast<std::size_t>(o.limit));
  model::Transformer& m = model.transformer();
  const std::int64_t context = infer::max_sequence_tokens(m);
  const Prompter prompter(o.prompt, pool);
  const bool chat = o.prompt.chat;
  std::vector<std::int32_t> eos = o.generation.eos_ids;
  if (eos.empty())
    for (std::int64_t id : m.config().eos_token_ids) eos.push_back(static_cast<std::int32_t>(id));

  std::vector<ExampleResult> res(task.size());
  std::vector<std::vector<std::int32_t>> prompt_ids(task.size());
  for (std::size_t i = 0; i < task.size(); ++i) {
    ExampleResult& r = res[i];
    r.index = static_cast<std::int64_t>(i);
    r.line = task[i].line;
    r.target = task[i].target;
    r.demonstrations = prompter.demonstrations(task[i], i);
    r.prompt = prompter.text(task[i], i, tokenizer);
    prompt_ids[i] = encode_prompt(tokenizer, r.prompt, chat);
    HONE_CHECK(static_cast<std::int64_t>(prompt_ids[i].size()) < context, kOp, "example ", i, " (line ", r.line,
               "): the prompt has ", prompt_ids[i].size(), " tokens; the model holds at most ", context,
               " (use fewer shots or a shorter template)");
  }
  // Teacher-forced sequences: prompt + target (+ EOS outside chat, as training ends examples),
  // or prompt + each choice.
  auto continuation = [&](std::size_t i, const std::string& text, bool add_eos) {
    std::vector<std::int32_t> ids = encode_prompt(tokenizer, res[i].prompt + text, chat);
    const std::size_t from = common_prefix(prompt_ids[i], ids);
    if (add_eos && !eos.empty()) ids.push_back(eos.front());
    HONE_CHECK(static_cast<std::int64_t>(ids.size()) <= context, kOp, "example ", i, " (line ", res[i].line,
               "): prompt and answer have ", ids.size(), " tokens; the model holds at most ", context);
    return std::make_pair(ids, from);
  };

  if (o.loss || o.metric == Metric::multiple_choice) {
    std::vector<std::vector<std::int32_t>> seqs;
    std::vector<std::size_t> from;
    std::vector<std::pair<std::size_t, std::int64_t>> owner;  // (example, choice or −1 for the target)
    for (std::size_t i = 0; i < task.size(); ++i) {
      if (o.loss) {
        auto [ids, f] = continuation(i, task[i].target, !chat);
        res[i].target_tokens = static_cast<std::int64_t>(ids.size() - f);
        seqs.push_back(std::move(ids));
        from.push_back(f);
        owner.emplace_back(i, -1);
      }
      if (o.metric == Metric::multiple_choice) {
        HONE_CHECK(!task[i].choices.empty(), kOp, "example ", i, " (line ", task[i].line,
                   ") has no 'choices': the choice metric needs them");
        for (std::size_t c = 0; c < task[i].choices.size(); ++c) {
          auto [ids, f] = continuation(i, task[i].choices[c], false);
          seqs.push_back(std::move(ids));
          from.push_back(f);
          owner.emplace_back(i, static_cast<std::int64_t>(c));
        }
      }
    }
    const std::vector<double> ll = log_likelihoods(m, seqs, from, o.batch);
    for (std::size_t k = 0; k < ll.size(); ++k) {
      ExampleResult& r = res[owner[k].first];
      if (owner[k].second < 0)
        r.target_logprob = ll[k];
      else
        r.choice_logprobs.push_back(ll[k]);
    }
  }

  EvalSummary s;
  s.metric = o.metric;
  s.shots = o.prompt.shots;
  if (o.metric == Metric::multiple_choice) {
    for (std::size_t i = 0; i < task.size(); ++i) {
      ExampleResult& r = res[i];
      const auto best = std::max_element(r.choice_logprobs.begin(), r.choice_logprobs.end()) - r.choice_logprobs.begin();
      r.prediction = task[i].choices[static_cast<std::size_t>(best)];
      r.correct = best == task[i].answer;
    }
  } else {
    GenerateOptions g = o.generation;
    if (o.prompt.shots > 0 && !is_space_only(o.prompt.separator)) g.stop.push_back(o.prompt.separator);
    Generator gen(model, &tokenizer);
    for (std::size_t b0 = 0; b0 < task.size(); b0 += static_cast<std::size_t>(o.batch)) {
      const std::size_t b1 = std::min(task.size(), b0 + static_cast<std::size_t>(o.batch));
      g.stream_offset = b0;  // the same draws whatever the batch size
      const std::vector<Generation> out =
          gen.generate({prompt_ids.begin() + static_cast<long>(b0), prompt_ids.begin() + static_cast<long>(b1)}, g);
      for (std::size_t i = b0; i < b1; ++i) {
        ExampleResult& r = res[i];
        r.prediction = out[i - b0].text;
        r.finish = out[i - b0].finish;
        s.generated_tokens += static_cast<std::int64_t>(out[i - b0].ids.size());
        const std::string p = normalize_answer(r.prediction), t = normalize_answer(r.target);
        r.correct = o.metric == Metric::exact_match        ? r.prediction == r.target
                    : o.metric == Metric::normalized_match ? p == t
                                                           : !t.empty() && p.find(t) != std::string::npos;
      }
    }
  }
  double nll = 0;
  for (const ExampleResult& r : res) {
    s.correct += r.correct;
    s.target_tokens += r.target_tokens;
    nll -= r.target_logprob;
  }
  s.examples = static_cast<std::int64_t>(res.size());
  s.accuracy = s.examples ? static_cast<double>(s.correct) / static_cast<double>(s.examples) : 0.0;
  if (o.loss && s.target_tokens > 0) {
    s.loss = nll / static_cast<double>(s.target_tokens);
    s.perplexity = std::exp(s.loss);
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (results) *results = std::move(res);
  return s;
}

void write_eval_outputs(const std::string& results_path, const std::string& summary_path, const EvalSummary& summary,
                        const std::vector<ExampleResult>& results) {
  std::string lines;
  for (const ExampleResult& r : results) {
    nlohmann::json j{{"index", r.index}, {"line", r.line}, {"prompt", r.prompt}, {"target", r.target},
                     {"prediction", r.prediction}, {"correct", r.correct}, {"target_tokens", r.target_tokens},
                     {"target_logprob", r.target_logprob}, {"demonstrations", r.demonstrations}};
    if (!r.choice_logprobs.empty()) j["choice_logprobs"] = r.choice_logprobs;
    else j["finish"] = finish_reason_name(r.finish);
    lines += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (!results_path.empty()) write_atomically(results_path, lines);
  if (!summary_path.empty()) write_atomically(summary_path, summary.to_json() + "\n");
}

}  // namespace hone

// hone::Generator: text generation from a hone::Model — a batch of prompts of different lengths
// prefilled together, then decoded with a KV cache; greedy or sampled (temperature, top-k,
// top-p, repetition penalty, seeded); stopping on the model's EOS ids, stop strings or a token
// budget; with a streaming callback.
//
//   hone::Model model = hone::Model::load("model-dir");
//   hone::Tokenizer tok = hone::Tokenizer::from_dir("model-dir");
//   hone::Generator gen(model, &tok);
//   hone::GenerateOptions o;  o.max_new_tokens = 32;  o.eos_ids = hone::generation_eos_ids("model-dir");
//   std::string text = gen.generate_text({"Once upon a time"}, o)[0].text;
//
// Devices: a model on a CUDA device (Model::load(dir, DType::bf16, false, Device::cuda(0)))
// generates there: bf16 weights, activations and KV caches, f32 norm/attention statistics; each
// step uploads the new ids and reads back only the chosen ids (greedy and sampling run on the
// device; with a repetition penalty each step's logits come to the host as f32 first). Sampled
// draws equal the CPU's for the same logits; a bf16 model's logits differ from an f32 model's by
// bf16 rounding, so their tokens agree except where two logits are that close.
//
// Adapters: whatever adapter is attached to the model when generate() is called (hone/peft.h:
// load_adapter, remove_adapter) applies to that whole batch, unmerged: LoRA's term in every
// adapted linear layer, prompt tuning's virtual tokens before every prompt.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hone/model.h"

namespace hone {

class Tokenizer;

// How each next token is chosen. The rule for temperature/top-k/top-p is ops::sample's
// (exact and device-independent); sequence i of a call draws its t-th token from Philox block
// ((stream_offset + i) · 2³² + t) under `seed` (GenerateOptions::stream_offset), so a
// sequence's tokens do not depend on the others in its batch.
struct SamplingOptions {
  double temperature = 0.0;         // ≥ 0; 0 → greedy (the lowest id of the largest logit)
  std::int64_t top_k = 0;           // ≥ 0; 0 → off
  double top_p = 1.0;               // in (0, 1]; 1 → off
  // > 0; 1 → off. As transformers: over every id of the prompt and of the text generated so
  // far, a positive logit is divided by the penalty and a negative one multiplied by it.
  double repetition_penalty = 1.0;
  std::uint64_t seed = 0;
};

enum class FinishReason {
  eos,     // an EOS id was generated (it is the last of `ids`)
  stop,    // a stop string appeared in the text
  length,  // max_new_tokens generated
  context  // the sequence reached the model's max_position_embeddings
};
const char* finish_reason_name(FinishReason r);  // "eos", "stop", "length", "context"

struct GenerateOptions {
  std::int64_t max_new_tokens = 64;  // ≥ 0
  SamplingOptions sampling;
  // Ids that end a sequence; empty: the eos_token_id of the model's config.json. See
  // generation_eos_ids for a folder's generation_config.json.
  std::vector<std::int32_t> eos_ids;
  bool ignore_eos = false;
  // Generation ends when the decoded text contains one of these; the text is cut just before
  // it (the stop string itself is never returned or streamed). Needs a tokenizer.
  std::vector<std::string> stop;
  // false: no KV cache; every step reruns the model's whole forward (the reference).
  bool use_cache = true;
  // Sequence i of the call samples from stream stream_offset + i: a job split into batches
  // draws what it would draw in one call when each batch passes its first index here.
  std::uint64_t stream_offset = 0;
};

struct Generation {
  std::vector<std::int32_t> ids;  // generated ids (not the prompt)
  // Their text without the final EOS, special tokens skipped ("" without a tokenizer).
  std::string text;
  FinishReason finish = FinishReason::length;
  std::int64_t prompt_tokens = 0;
};

// One streaming update: sequence `index` of the call produced `token`; `text` is the text that
// became final with it (possibly empty: an incomplete UTF-8 character or a possible start of a
// stop string is held back until it resolves). `finished` marks the sequence's last update.
struct StreamEvent {
  std::int64_t index = 0;
  std::int32_t token = -1;
  std::string text;
  bool finished = false;
  FinishReason finish = FinishReason::length;  // when finished
};
using StreamCallback = std::function<void(const StreamEvent&)>;

class Generator {
 public:
  // [not null] model outlives the generator; tokenizer may be null (ids in, ids out: no text,
  // no stop strings).
  explicit Generator(Model& model, const Tokenizer* tokenizer = nullptr);

  // Continues every prompt (ids, each non-empty and shorter than the model's context).
  std::vector<Generation> generate(const std::vector<std::vector<std::int32_t>>& prompts,
                                   const GenerateOptions& options = {},
                                   const StreamCallback& on_token = {});
  // The same from text, encoded as training encodes a prompt: the tokenizer's BOS when its
  // post-processor adds one, then the text's ids.
  std::vector<Generation> generate_text(const std::vector<std::string>& prompts,
                                        const GenerateOptions& options = {},
                                        const StreamCallback& on_token = {});

 private:
  Model& model_;
  const Tokenizer* tokenizer_;
};

// The ids that end generation for model folder `dir`: eos_token_id of generation_config.json
// (a number or a list) when the file exists and sets it, else that of config.json; empty when
// neither does.
std::vector<std::int32_t> generation_eos_ids(const std::string& dir);

// The sampling settings a model folder asks for, as transformers reads generation_config.json:
// greedy unless do_sample is true; then temperature (default 1), top_k (default 50), top_p
// (default 1). repetition_penalty (default 1) applies either way. No file: greedy. A value of
// the wrong type is an error naming the file and key.
SamplingOptions generation_sampling_defaults(const std::string& dir);

// The prompt's ids as the data pipeline encodes a prompt (BOS when the tokenizer's
// post-processor adds one); a chat-rendered prompt gets none (its template carries it).
std::vector<std::int32_t> encode_prompt(const Tokenizer& tokenizer, const std::string& text, bool chat = false);

}  // namespace hone

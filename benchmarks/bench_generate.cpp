// CPU generation throughput: prefill tokens/s and decode tokens/s at batch 1 and 8 with the
// KV cache, against the same steps without a cache (the whole forward rerun per token),
// measured in the same run. Random Llama-shaped models; greedy tokens.
//   bench_generate [--quick] [--prompt N] [--new N] [--json FILE]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hone/model.h"
#include "infer/decoder.h"
#include "model/transformer.h"
#include "ops/ops.h"

using namespace hone;
using nlohmann::json;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::vector<std::int32_t> argmax_rows(const Tensor& logits) {
  const Tensor out = Tensor::empty({logits.size(0)}, DType::i64);
  ops::argmax(logits, out);
  std::vector<std::int32_t> ids;
  for (std::int64_t v : out.to_vector<std::int64_t>()) ids.push_back(static_cast<std::int32_t>(v));
  return ids;
}

struct Timing {
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
};

// Prefill of `batch` prompts of `prompt` tokens, then `steps` decode steps; best of `reps`.
Timing run(model::Transformer& m, bool cached, std::int64_t batch, std::int64_t prompt, std::int64_t steps, int reps) {
  std::vector<std::vector<std::int32_t>> prompts(static_cast<std::size_t>(batch));
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t t = 0; t < prompt; ++t)
      prompts[static_cast<std::size_t>(b)].push_back(static_cast<std::int32_t>((b * 131 + t * 17) % m.config().vocab_size));
  Timing best;
  for (int r = 0; r < reps; ++r) {
    auto dec = cached ? infer::make_cached_decoder(m) : infer::make_recompute_decoder(m);
    double t0 = now();
    Tensor logits = dec->prefill(prompts);
    const double t_prefill = now() - t0;
    t0 = now();
    for (std::int64_t s = 0; s < steps; ++s) logits = dec->step(argmax_rows(logits));
    const double t_decode = now() - t0;
    best.prefill_tokens_per_s = std::max(best.prefill_tokens_per_s, static_cast<double>(batch * prompt) / t_prefill);
    best.decode_tokens_per_s = std::max(best.decode_tokens_per_s, static_cast<double>(batch * steps) / t_decode);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::int64_t prompt = 128, new_tokens = 32;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--new") && i + 1 < argc) new_tokens = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_generate [--quick] [--prompt N] [--new N] [--json FILE]\n");
      return 2;
    }
  }
  if (quick) prompt = std::min<std::int64_t>(prompt, 32), new_tokens = std::min<std::int64_t>(new_tokens, 8);
  const json config = quick ? json{{"model_type", "llama"}, {"vocab_size", 512}, {"hidden_size", 64},
                                   {"intermediate_size", 176}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                                   {"num_key_value_heads", 2}, {"max_position_embeddings", 256}}
                            : json{{"model_type", "llama"}, {"vocab_size", 32000}, {"hidden_size", 512},
                                   {"intermediate_size", 1408}, {"num_hidden_layers", 8}, {"num_attention_heads", 8},
                                   {"num_key_value_heads", 4}, {"max_position_embeddings", 1024},
                                   {"tie_word_embeddings", false}};
  Model model = Model::from_config(config.dump(), 1, 0.02, DType::f32, /*train_base=*/false);
  model::Transformer& m = model.transformer();
  const int reps = quick ? 1 : 3;
  // Without a cache each step reruns every token: a few steps show the rate.
  const std::int64_t baseline_steps = std::max<std::int64_t>(2, new_tokens / 8);
  json out = {{"benchmark", "generate"}, {"model", quick ? "llama-tiny" : "llama-40M"},
              {"parameters", model.info().parameters}, {"threads", omp_get_max_threads()},
              {"prompt_tokens", prompt}, {"new_tokens", new_tokens}, {"results", json::array()}};
  std::printf("%-6s %16s %16s %18s %10s\n", "batch", "prefill tok/s", "decode tok/s", "no-cache decode", "speedup");
  for (std::int64_t batch : {1, 8}) {
    const Timing c = run(m, true, batch, prompt, new_tokens, reps);
    const Timing r = run(m, false, batch, prompt, baseline_steps, 1);
    const double speedup = c.decode_tokens_per_s / r.decode_tokens_per_s;
    std::printf("%-6lld %16.0f %16.1f %18.1f %9.1fx\n", static_cast<long long>(batch), c.prefill_tokens_per_s,
                c.decode_tokens_per_s, r.decode_tokens_per_s, speedup);
    out["results"].push_back({{"batch", batch}, {"prefill_tokens_per_s", c.prefill_tokens_per_s},
                              {"decode_tokens_per_s", c.decode_tokens_per_s},
                              {"baseline_no_cache_decode_tokens_per_s", r.decode_tokens_per_s},
                              {"baseline_no_cache_prefill_tokens_per_s", r.prefill_tokens_per_s},
                              {"decode_speedup", speedup}});
    if (!(c.decode_tokens_per_s > 0) || !(c.prefill_tokens_per_s > 0)) {
      std::fprintf(stderr, "bench_generate: no throughput measured\n");
      return 1;
    }
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(1) << "\n";
  return 0;
}

// Generation throughput: prefill tokens/s and decode tokens/s at batch 1 and 8 with the KV
// cache, against the same steps without a cache (the whole forward rerun per token), measured
// in the same run. Random Llama-shaped models; greedy tokens.
//   bench_generate [--quick] [--device cpu|cuda[:N]] [--prompt N] [--new N] [--json FILE]
// On the CPU: f32, a 40M-parameter model. On CUDA (benchmarks/gpu_check.sh): bf16, a
// Llama-3.2-1B-shaped model, and for each batch the bytes a decode step must read (every weight
// but the untied embedding table, plus each sequence's K/V cache at its mean length) over the
// step's time, against the device-to-device copy bandwidth measured in the same run: decode at
// batch 1 is memory-bound, so that fraction is how close it comes to the memory's limit.
// Times include the host work of each step (the ids of the step's tokens are read back).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "hone/device.h"
#include "hone/error.h"
#include "hone/model.h"
#include "infer/decoder.h"
#include "model/transformer.h"
#include "ops/ops.h"
#include "random_weights.h"

using namespace hone;
using nlohmann::json;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The greedy ids, read back to the host (on a device this waits for the step's work).
std::vector<std::int32_t> argmax_rows(const Tensor& logits) {
  const Tensor out = Tensor::empty({logits.size(0)}, DType::i64, logits.device());
  ops::argmax(logits, out);
  std::vector<std::int32_t> ids;
  for (std::int64_t v : out.to_vector<std::int64_t>()) ids.push_back(static_cast<std::int32_t>(v));
  return ids;
}

struct Timing {
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
};

// Prefill of `batch` prompts of `prompt` tokens (up to the first tokens' ids on the host), then
// `steps` decode steps; best of `reps`.
Timing run(model::Transformer& m, bool cached, std::int64_t batch, std::int64_t prompt, std::int64_t steps, int reps) {
  std::vector<std::vector<std::int32_t>> prompts(static_cast<std::size_t>(batch));
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t t = 0; t < prompt; ++t)
      prompts[static_cast<std::size_t>(b)].push_back(static_cast<std::int32_t>((b * 131 + t * 17) % m.config().vocab_size));
  Timing best;
  for (int r = 0; r < reps; ++r) {
    auto dec = cached ? infer::make_cached_decoder(m) : infer::make_recompute_decoder(m);
    double t0 = now();
    std::vector<std::int32_t> next = argmax_rows(dec->prefill(prompts));
    const double t_prefill = now() - t0;
    t0 = now();
    for (std::int64_t s = 0; s < steps; ++s) next = argmax_rows(dec->step(next));
    const double t_decode = now() - t0;
    best.prefill_tokens_per_s = std::max(best.prefill_tokens_per_s, static_cast<double>(batch * prompt) / t_prefill);
    best.decode_tokens_per_s = std::max(best.decode_tokens_per_s, static_cast<double>(batch * steps) / t_decode);
  }
  return best;
}

// Device-to-device copy GB/s (bytes read + written) of a 1 GiB buffer (256 MiB with --quick):
// the bandwidth reference of the decode figures.
double copy_gbps(Device device, bool quick) {
  const std::int64_t n = quick ? (std::int64_t{256} << 20) : (std::int64_t{1} << 30);
  const Tensor a = Tensor::zeros({n}, DType::u8, device), b = Tensor::zeros({n}, DType::u8, device);
  const int iters = quick ? 5 : 10;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    (void)b.slice(0, 1).to_vector<double>();  // waits for the work before
    const double t0 = now();
    for (int i = 0; i < iters; ++i) b.copy_from(a);
    (void)b.slice(0, 1).to_vector<double>();
    best = std::max(best, 2.0 * static_cast<double>(n) * iters / (now() - t0) / 1e9);
  }
  return best;
}

int bench_main(int argc, char** argv) {
  bool quick = false;
  std::optional<std::int64_t> prompt_arg, new_arg;
  std::string json_path;
  Device device = Device::cpu();
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--prompt") && i + 1 < argc) prompt_arg = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--new") && i + 1 < argc) new_arg = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device = Device::parse(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: bench_generate [--quick] [--device cpu|cuda[:N]] [--prompt N] [--new N] [--json FILE]\n");
      return 2;
    }
  }
  const bool gpu = device.is_cuda();
  if (gpu && device.index >= cuda_device_count()) {
    std::fprintf(stderr, "bench_generate: %s is not available (%d CUDA devices%s)\n", device.str().c_str(),
                 cuda_device_count(), cuda_built() ? "" : "; hone was built without CUDA");
    return 2;
  }
  std::int64_t prompt = prompt_arg.value_or(gpu ? 512 : 128), new_tokens = new_arg.value_or(gpu ? 128 : 32);
  if (quick) {
    prompt = std::min<std::int64_t>(prompt, gpu ? 128 : 32);
    new_tokens = std::min<std::int64_t>(new_tokens, gpu ? 32 : 8);
  }
  HONE_CHECK(prompt >= 1 && new_tokens >= 1, "bench_generate", "--prompt ", prompt, " and --new ", new_tokens,
             " must be ≥ 1");
  json config;
  std::string name;
  if (gpu && quick) {
    name = "llama-0.2B";
    config = {{"model_type", "llama"}, {"vocab_size", 32000}, {"hidden_size", 1024}, {"intermediate_size", 4096},
              {"num_hidden_layers", 8}, {"num_attention_heads", 16}, {"num_key_value_heads", 4},
              {"max_position_embeddings", 1024}, {"tie_word_embeddings", true}};
  } else if (gpu) {  // Llama 3.2 1B's shapes
    name = "llama-1.2B";
    config = {{"model_type", "llama"}, {"vocab_size", 128256}, {"hidden_size", 2048}, {"intermediate_size", 8192},
              {"num_hidden_layers", 16}, {"num_attention_heads", 32}, {"num_key_value_heads", 8},
              {"max_position_embeddings", 2048}, {"tie_word_embeddings", true}};
  } else if (quick) {
    name = "llama-tiny";
    config = {{"model_type", "llama"}, {"vocab_size", 512}, {"hidden_size", 64}, {"intermediate_size", 176},
              {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
              {"max_position_embeddings", 256}};
  } else {
    name = "llama-40M";
    config = {{"model_type", "llama"}, {"vocab_size", 32000}, {"hidden_size", 512}, {"intermediate_size", 1408},
              {"num_hidden_layers", 8}, {"num_attention_heads", 8}, {"num_key_value_heads", 4},
              {"max_position_embeddings", 1024}, {"tie_word_embeddings", false}};
  }
  // On a device: zero weights from the model (no host temporaries), then random ones.
  Model model = Model::from_config(config.dump(), 1, gpu ? 0.0 : 0.02, Model::compute_dtype(device),
                                   /*train_base=*/false, device);
  model::Transformer& m = model.transformer();
  if (gpu) bench::fill_random_bf16(m.params());
  const model::TransformerConfig& c = m.config();
  HONE_CHECK(prompt + new_tokens < c.max_position_embeddings, "bench_generate", "--prompt ", prompt, " + --new ",
             new_tokens, " must stay below the model's ", c.max_position_embeddings, " positions");
  const int reps = quick ? 1 : 3;
  // Without a cache each step reruns every token: a few steps show the rate.
  const std::int64_t baseline_steps = std::max<std::int64_t>(2, new_tokens / 8);
  json out = {{"benchmark", "generate"}, {"device", device.str()}, {"dtype", dtype_name(m.dtype())},
              {"model", name}, {"parameters", model.info().parameters}, {"threads", omp_get_max_threads()},
              {"prompt_tokens", prompt}, {"new_tokens", new_tokens}, {"results", json::array()}};
  // What one decode step reads: the weights (the embedding table only through a tied head) and
  // each sequence's K and V at its mean length over the run.
  double weight_bytes = static_cast<double>(m.params().nbytes());
  for (const model::Param& p : m.named_params())
    if (p.name == "embed" && !c.tie_word_embeddings) weight_bytes -= static_cast<double>(p.value.nbytes());
  const double mean_len = static_cast<double>(prompt) + 0.5 * static_cast<double>(new_tokens + 1);
  const double kv_bytes_per_seq = 2.0 * static_cast<double>(c.num_layers * c.num_kv_heads * c.head_dim) * mean_len *
                                  static_cast<double>(dtype_size(m.dtype()));
  const double copy = gpu ? copy_gbps(device, quick) : 0.0;
  if (gpu) {
    out["copy_gbps"] = copy;
    std::printf("device-to-device copy: %.0f GB/s (read + write)\n", copy);
  }
  std::printf("%-6s %16s %16s %18s %10s%s\n", "batch", "prefill tok/s", "decode tok/s", "no-cache decode", "speedup",
              gpu ? "   decode GB/s  of copy" : "");
  for (std::int64_t batch : {1, 8}) {
    const Timing t = run(m, true, batch, prompt, new_tokens, reps);
    const Timing r = run(m, false, batch, prompt, baseline_steps, 1);
    const double speedup = t.decode_tokens_per_s / r.decode_tokens_per_s;
    json row = {{"batch", batch}, {"prefill_tokens_per_s", t.prefill_tokens_per_s},
                {"decode_tokens_per_s", t.decode_tokens_per_s},
                {"baseline_no_cache_decode_tokens_per_s", r.decode_tokens_per_s},
                {"baseline_no_cache_prefill_tokens_per_s", r.prefill_tokens_per_s}, {"decode_speedup", speedup}};
    std::printf("%-6lld %16.0f %16.1f %18.1f %9.1fx", static_cast<long long>(batch), t.prefill_tokens_per_s,
                t.decode_tokens_per_s, r.decode_tokens_per_s, speedup);
    if (gpu) {
      const double step_bytes = weight_bytes + static_cast<double>(batch) * kv_bytes_per_seq;
      const double steps_per_s = t.decode_tokens_per_s / static_cast<double>(batch);
      const double gbps = step_bytes * steps_per_s / 1e9;
      row["decode_bytes_per_step"] = step_bytes;
      row["decode_gbps"] = gbps;
      row["decode_of_copy"] = gbps / copy;
      std::printf(" %14.0f %7.0f%%", gbps, 100.0 * gbps / copy);
    }
    std::printf("\n");
    out["results"].push_back(row);
    if (!(t.decode_tokens_per_s > 0) || !(t.prefill_tokens_per_s > 0)) {
      std::fprintf(stderr, "bench_generate: no throughput measured\n");
      return 1;
    }
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(1) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return bench_main(argc, argv);
  } catch (const Error& e) {  // bad options, or a device the build or the machine lacks
    std::fprintf(stderr, "bench_generate: %s\n", e.what());
    return 2;
  }
}

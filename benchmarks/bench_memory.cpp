// Memory and step time of full fine-tuning, LoRA (r = 16 on every linear layer) and prompt tuning
// (20 virtual tokens) on the same Llama-shaped model and batch, each method in its own process so
// that its peak is its own. Writes JSON. On the CPU the peak is the resident set (VmHWM); with
// --device cuda (bf16 weights, the trainer's fp32 master weights and moments) it is the peak of
// device memory handed out by hone's caching allocator, and a missing device exits 77.
//   bench_memory [--quick] [--steps N] [--json FILE] [--device cpu|cuda]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/caching_allocator.h"
#include "hone/device.h"
#include "hone/peft.h"
#include "hone/random.h"
#include "hone/trainer.h"
#include "model/transformer.h"
#include "ops/ops.h"
#include "train/internal.h"

using namespace hone;
using nlohmann::json;

namespace {

struct Setup {
  json config;
  std::int64_t rows, seq, steps;
};

Setup setup(bool quick, std::int64_t steps) {
  if (quick)
    return {{{"model_type", "llama"}, {"vocab_size", 2000}, {"hidden_size", 64}, {"intermediate_size", 176},
             {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 4},
             {"max_position_embeddings", 256}, {"tie_word_embeddings", false}, {"torch_dtype", "float32"}},
            2, 32, steps};
  return {{{"model_type", "llama"}, {"vocab_size", 32000}, {"hidden_size", 1024}, {"intermediate_size", 2816},
           {"num_hidden_layers", 8}, {"num_attention_heads", 16}, {"num_key_value_heads", 16},
           {"max_position_embeddings", 2048}, {"tie_word_embeddings", false}, {"torch_dtype", "float32"}},
          2, 128, steps};
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Whole rows of random tokens with loss on every token after the first.
std::vector<data::TokenizedExample> examples(std::int64_t n, std::int64_t len, std::int64_t vocab) {
  std::vector<data::TokenizedExample> out;
  for (std::int64_t i = 0; i < n; ++i) {
    data::TokenizedExample ex;
    for (std::int64_t k = 0; k < len; ++k) {
      const Philox4 r = philox_block(17, static_cast<std::uint64_t>(i * len + k));
      ex.ids.push_back(static_cast<std::int32_t>(r.x[0] % static_cast<std::uint32_t>(vocab)));
      ex.labels.push_back(k == 0 ? data::kIgnoreLabel : ex.ids.back());
    }
    ex.line = i + 1;
    out.push_back(std::move(ex));
  }
  return out;
}

// One method in this process: the model, the adapter, warm-up and timed steps.
// The peak of the method's memory so far: the process's resident set, or the device's allocations.
std::int64_t peak_bytes(Device device) {
  if (device.is_cuda()) return static_cast<std::int64_t>(cuda_allocator(device.index).stats().peak_allocated);
  return train::peak_rss_bytes();
}

json run_method(const std::string& method, const Setup& s, Device device) {
  const bool full = method == "full";
  // Zero weights (no temporaries), then uniform(−0.02, 0.02) written tensor by tensor.
  Model model = Model::from_config(s.config.dump(), 0, 0.0, Model::compute_dtype(device), full, device);
  std::uint64_t offset = 0;
  for (const model::Param& p : model.transformer().named_params()) {
    if (p.name.find("norm") != std::string::npos) continue;
    const Tensor host = Tensor::empty(p.value.shape(), DType::f32);
    ops::uniform_(host, 3, offset);
    offset += static_cast<std::uint64_t>(p.value.numel() + 3) / 4;
    float* v = host.data<float>();
    for (std::int64_t i = 0; i < host.numel(); ++i) v[i] = (v[i] - 0.5f) * 0.04f;
    p.value.copy_from(host.to(p.value.dtype()));
  }
  const std::int64_t model_bytes = peak_bytes(device);
  if (method == "lora") {
    LoraConfig c;
    c.r = 16;
    c.alpha = 32;
    c.target_modules = {"all-linear"};
    add_lora(model, c);
  } else if (method == "prompt-tuning") {
    PromptTuningConfig c;
    c.num_virtual_tokens = 20;
    c.init = PromptInit::sample_vocab;
    add_prompt_tuning(model, c);
  }
  const std::int64_t vocab = s.config["vocab_size"];
  VectorSource source(examples(64, s.seq, vocab), 1);
  TrainConfig tc;
  tc.lr = 1e-4;
  tc.schedule = LrSchedule::constant;
  tc.batch_rows = s.rows;
  tc.seq_len = s.seq;
  tc.steps = s.steps + 1;
  tc.progress = false;
  Trainer trainer(model, source, tc, 0);
  trainer.step();  // warm-up: every buffer of a step exists afterwards
  std::vector<double> times;
  double loss = 0;
  for (std::int64_t i = 0; i < s.steps; ++i) {
    const double t0 = now();
    loss = trainer.step().loss;
    times.push_back(now() - t0);
  }
  std::sort(times.begin(), times.end());
  json r;
  r["method"] = method;
  r["parameters"] = model.info().parameters;
  r["trainable_parameters"] = full ? model.info().parameters : adapter_info(model).trainable_parameters;
  r["after_model_bytes"] = model_bytes;
  r["peak_bytes"] = peak_bytes(device);
  r["step_seconds_median"] = times[times.size() / 2];
  r["step_seconds_min"] = times.front();
  r["step_seconds_max"] = times.back();
  r["tokens_per_step"] = s.rows * s.seq;
  r["loss"] = loss;
  return r;
}

// Runs run_method in a child process and reads its JSON through a pipe.
json run_isolated(const std::string& method, const Setup& s, Device device) {
  int fd[2];
  if (pipe(fd) != 0) throw Error("[bench_memory] pipe failed");
  const pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    std::string out;
    int code = 0;
    try {
      if (device.is_cuda() && cuda_device_count() == 0)
        out = json{{"method", method}, {"no_device", true}}.dump();
      else
        out = run_method(method, s, device).dump();
    } catch (const std::exception& e) {
      out = json{{"method", method}, {"error", e.what()}}.dump();
      code = 1;
    }
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      const ssize_t n = write(fd[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    close(fd[1]);
    _exit(code);
  }
  close(fd[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (text.empty()) throw Error(cat("[bench_memory] the ", method, " run died (status ", status, ")"));
  json r = json::parse(text);
  if (r.contains("error")) throw Error(cat("[bench_memory] ", method, ": ", r["error"].get<std::string>()));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::int64_t steps = 2;
  std::string json_path;
  Device device = Device::cpu();
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device = Device::parse(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_memory [--quick] [--steps N] [--json FILE] [--device cpu|cuda]\n");
      return 2;
    }
  }
  try {
    // Nothing here touches OpenMP or CUDA before the forks: each child starts its own. A child
    // tells a missing device apart from a failure.
    const Setup s = setup(quick, steps);
    json report;
    report["device"] = device.str();
    report["memory_measure"] = device.is_cuda()
                                   ? "peak device memory allocated by hone (caching allocator) in a process running only that method"
                                   : "peak resident set size (VmHWM) of a process running only that method";
    report["model"] = s.config;
    report["batch"] = {{"rows", s.rows}, {"seq_len", s.seq}};
    report["lora"] = {{"r", 16}, {"alpha", 32}, {"targets", "all-linear"}};
    report["prompt_tuning"] = {{"num_virtual_tokens", 20}};
    std::printf("%-14s %14s %12s %14s %10s\n", "method", "trainable", "peak MiB", "model MiB", "step s");
    for (const char* method : {"full", "lora", "prompt-tuning"}) {
      const json r = run_isolated(method, s, device);
      if (r.contains("no_device")) {
        std::printf("bench_memory: no CUDA device\n");
        return 77;
      }
      std::printf("%-14s %14lld %12.1f %14.1f %10.3f\n", method, static_cast<long long>(r["trainable_parameters"]),
                  r["peak_bytes"].get<double>() / 1048576.0, r["after_model_bytes"].get<double>() / 1048576.0,
                  r["step_seconds_median"].get<double>());
      report["methods"].push_back(r);
    }
    const double full = report["methods"][0]["peak_bytes"], lora = report["methods"][1]["peak_bytes"],
                 prompt = report["methods"][2]["peak_bytes"];
    report["lora_peak_over_full"] = lora / full;
    report["prompt_tuning_peak_over_full"] = prompt / full;
    std::printf("LoRA peak / full peak = %.3f (target <= 0.5), prompt tuning / full = %.3f\n", lora / full, prompt / full);
    if (!json_path.empty()) std::ofstream(json_path) << report.dump(2) << "\n";
    // Sanity, not a target: the adapters must need less memory than training every weight.
    return lora < full && prompt < full ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_memory: %s\n", e.what());
    return 1;
  }
}

// Full fine-tuning step: tokens/s and achieved GFLOP/s of hone's trainer, with PyTorch's step on
// the same model and batch measured in the same run (when torch is installed).
//   CPU (default): a GPT-2-small-shaped (124M) and a small Llama-shaped model in f32, with the
//     machine's matmul GFLOP/s.
//   --device cuda: the models in bf16 with fp32 master weights on cuda:0 (GPT-2 124M and
//     TinyLlama-1.1B's shape), tokens/s, TFLOP/s, MFU against the device's dense bf16 peak (known for
//     A100/H100/H200, else --peak-tflops) and peak device memory; PyTorch in fp32 with bf16
//     autocast and fused AdamW. Exit 77 without a device.
//   bench_train [--quick] [--steps N] [--json FILE] [--python EXE | --no-torch] [--device cpu|cuda]
//               [--case NAME (one model only)] [--rounds N (hone then PyTorch N times: medians)]
//               [--peak-tflops X] [--torch-script FILE (default: bench_train_torch.py of the source tree)]
#include <omp.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>
#include <vector>

#include "cpu/gemm_kernel.h"
#include "hone/device.h"
#include "hone/random.h"
#include "hone/trainer.h"
#include "model/transformer.h"
#include "ops/ops.h"
#include "random_weights.h"
#ifdef HONE_WITH_CUDA
#include <cuda_runtime.h>
#endif

using namespace hone;
using nlohmann::json;

namespace {

struct Case {
  std::string name;
  json config;  // config.json of the model
  std::int64_t batch, seq;
};

std::vector<Case> cases(bool quick) {
  if (quick)
    return {{"gpt2-tiny", {{"model_type", "gpt2"}, {"vocab_size", 512}, {"n_embd", 64}, {"n_layer", 2}, {"n_head", 4},
                           {"n_positions", 128}}, 2, 64},
            {"llama-tiny", {{"model_type", "llama"}, {"vocab_size", 512}, {"hidden_size", 64}, {"intermediate_size", 176},
                            {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                            {"max_position_embeddings", 128}}, 2, 64}};
  return {{"gpt2-124M", {{"model_type", "gpt2"}, {"vocab_size", 50257}, {"n_embd", 768}, {"n_layer", 12}, {"n_head", 12},
                         {"n_positions", 1024}}, 1, 256},
          {"llama-40M", {{"model_type", "llama"}, {"vocab_size", 32000}, {"hidden_size", 512}, {"intermediate_size", 1408},
                         {"num_hidden_layers", 8}, {"num_attention_heads", 8}, {"num_key_value_heads", 4},
                         {"max_position_embeddings", 1024}, {"tie_word_embeddings", false}}, 2, 256}};
}

// Shapes for a GPU step: enough work per step to fill the device.
std::vector<Case> device_cases(bool quick) {
  const json gpt2 = {{"model_type", "gpt2"}, {"vocab_size", 50257}, {"n_embd", 768}, {"n_layer", 12}, {"n_head", 12},
                     {"n_positions", 2048}};
  // TinyLlama-1.1B's shape.
  const json llama = {{"model_type", "llama"}, {"vocab_size", 32000}, {"hidden_size", 2048},
                      {"intermediate_size", 5632}, {"num_hidden_layers", 22}, {"num_attention_heads", 32},
                      {"num_key_value_heads", 4}, {"max_position_embeddings", 4096}, {"tie_word_embeddings", false}};
  if (quick) return {{"gpt2-124M", gpt2, 4, 512}};
  return {{"gpt2-124M", gpt2, 8, 1024}, {"llama-1.1B", llama, 4, 1024}};
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// hone's matmul (f32) at n³: best of 5.
double matmul_gflops(std::int64_t n) {
  const Tensor a = Tensor::empty({n, n}, DType::f32), b = Tensor::empty({n, n}, DType::f32), c = Tensor::empty({n, n}, DType::f32);
  ops::uniform_(a, 1, 0);
  ops::uniform_(b, 2, 0);
  ops::matmul(a, b, c);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const double t0 = now();
    ops::matmul(a, b, c);
    best = std::min(best, now() - t0);
  }
  return 2.0 * static_cast<double>(n * n * n) / best / 1e9;
}

// FLOPs per trained token: 6·(parameters in matmuls) + 12·layers·hidden·seq (attention), the
// usual count; an untied input embedding is a lookup, not a matmul, and does not count.
double flops_per_token(const ModelInfo& info, bool tied, std::int64_t seq) {
  const double lookup = tied ? 0.0 : static_cast<double>(info.vocab_size * info.hidden_size);
  return 6.0 * (static_cast<double>(info.parameters) - lookup) +
         12.0 * static_cast<double>(info.layers * info.hidden_size * seq);
}

json run_hone(const Case& c, int steps, Device device) {
  // On a device: random bf16 weights from a cheap generator (normals drawn in double would take
  // longer than the benchmark), before the trainer copies them into its master weights.
  Model model = Model::from_config(c.config.dump(), 1, device.is_cuda() ? 0.0 : 0.02, Model::compute_dtype(device),
                                   true, device);
  if (device.is_cuda()) bench::fill_random_bf16(model.transformer().params());
  std::vector<data::TokenizedExample> ex;
  const std::int64_t vocab = model.info().vocab_size;
  for (int i = 0; i < 8; ++i) {
    data::TokenizedExample e;
    for (std::int64_t t = 0; t < c.seq; ++t) {
      e.ids.push_back(3 + static_cast<std::int32_t>(philox_block(7, i * 100000 + t).x[0] % (vocab - 3)));
      e.labels.push_back(e.ids.back());
    }
    ex.push_back(e);
  }
  VectorSource source(ex, 1);
  TrainConfig cfg;
  cfg.steps = steps + 1;
  cfg.batch_rows = c.batch;
  cfg.seq_len = c.seq;
  cfg.lr = 1e-4;
  cfg.progress = false;
  Trainer trainer(model, source, cfg, 0);
  std::vector<double> times;
  std::int64_t peak_device = 0;
  trainer.train([&](const StepMetrics& m) {
    times.push_back(m.seconds);
    peak_device = std::max(peak_device, m.peak_device_bytes);
  });
  times.erase(times.begin());  // warm-up
  std::sort(times.begin(), times.end());
  const double step = times[times.size() / 2];
  const double tokens = static_cast<double>(c.batch * c.seq);
  json out = {{"parameters", model.info().parameters}, {"seconds_per_step", step}, {"tokens_per_second", tokens / step},
              {"gflops", flops_per_token(model.info(), model.transformer().config().tie_word_embeddings, c.seq) * tokens /
                         step / 1e9}};
  if (device.is_cuda()) out["peak_device_bytes"] = peak_device;
  return out;
}

json run_torch(const std::string& python, const std::string& script, const Case& c, int steps, Device device) {
  const auto dir = std::filesystem::temp_directory_path() / ("hone_bench_train_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cfg = (dir / "config.json").string();
  std::ofstream(cfg) << c.config.dump();
  const std::string cmd = "'" + python + "' '" + script + "' '" + cfg + "' " +
                          std::to_string(c.batch) + " " + std::to_string(c.seq) + " " + std::to_string(steps) + " " +
                          (device.is_cuda() ? "cuda" : "cpu") + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  for (std::size_t n; p && (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = p ? pclose(p) : -1;
  std::filesystem::remove_all(dir);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const std::size_t last = out.find_last_of('{');
  json j = json::parse(last == std::string::npos ? "" : out.substr(last), nullptr, false);
  if (j.is_object() && (code == 0 || j.contains("error"))) return j;
  return {{"error", "exit " + std::to_string(code) + ": " + out.substr(0, 300)}};
}

// The median of values (the upper one of an even count).
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// rounds[i][side] of the round with the median rounds[i][side][key] (an entry without that key,
// such as an error, when no round has one).
json median_by(const json& rounds, const char* side, const char* key) {
  std::vector<std::pair<double, std::size_t>> v;
  for (std::size_t i = 0; i < rounds.size(); ++i)
    if (rounds[i].contains(side) && rounds[i][side].contains(key)) v.emplace_back(rounds[i][side][key].get<double>(), i);
  if (v.empty()) return rounds[0].contains(side) ? rounds[0][side] : json();
  std::sort(v.begin(), v.end());
  return rounds[v[v.size() / 2].second][side];
}

// The device's dense bf16 tensor-core peak in TFLOP/s, from its name (0: unknown).
double known_peak_tflops(const std::string& name) {
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) return 989.4;
  if (name.find("A100") != std::string::npos) return 312.0;
  return 0.0;
}

std::string device_name() {
#ifdef HONE_WITH_CUDA
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) return prop.name;
#endif
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, torch = true;
  int steps = 3, rounds = 1;
  double peak_tflops = 0;
  Device device = Device::cpu();
  std::string json_path, only, python = "python3", script = HONE_BENCH_DIR "/bench_train_torch.py";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
    else if (!std::strcmp(argv[i], "--no-torch")) torch = false;
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device = Device::parse(argv[++i]);
    else if (!std::strcmp(argv[i], "--case") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--peak-tflops") && i + 1 < argc) peak_tflops = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--torch-script") && i + 1 < argc) script = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_train [--quick] [--steps N] [--json FILE] [--python EXE | --no-torch] "
                           "[--device cpu|cuda] [--case NAME] [--rounds N] [--peak-tflops X] [--torch-script FILE]\n");
      return 2;
    }
  }
  json report;
  if (device.is_cuda()) {
    if (cuda_device_count() == 0) {
      std::printf("bench_train: no CUDA device\n");
      return 77;
    }
    const std::string name = device_name();
    if (peak_tflops <= 0) peak_tflops = known_peak_tflops(name);
    report = {{"benchmark", "gpu_train_step"}, {"device", name}, {"peak_bf16_tflops", peak_tflops}};
  } else {
    report = {{"benchmark", "cpu_train_step"}, {"threads", omp_get_max_threads()},
              {"fma_peak_gflops", cpu::fma_peak_gflops(quick ? 0.1 : 0.5)},
              {"hone_matmul_gflops_1024", matmul_gflops(quick ? 256 : 1024)}};
    std::printf("f32 FMA peak %.1f GFLOP/s, hone matmul %lld³ %.1f GFLOP/s (%d threads)\n",
                report["fma_peak_gflops"].get<double>(), quick ? 256LL : 1024LL,
                report["hone_matmul_gflops_1024"].get<double>(), omp_get_max_threads());
  }
  std::printf("%-12s %12s %12s %10s %14s %8s\n", "model", "hone tok/s", "hone GF/s", "torch tok/s", "torch GF/s", "ratio");
  for (const Case& c : device.is_cuda() ? device_cases(quick) : cases(quick)) {
    if (!only.empty() && c.name != only) continue;
    // Rounds of hone then PyTorch, back to back, so that a machine whose speed drifts affects
    // both sides of each ratio alike; the row reports the median round of each side and the
    // median of the rounds' ratios.
    json all = json::array();
    for (int r = 0; r < rounds; ++r) {
      json round = {{"hone", run_hone(c, steps, device)}};
      if (device.is_cuda() && peak_tflops > 0)
        round["hone"]["mfu"] = round["hone"]["gflops"].get<double>() / 1e3 / peak_tflops;
      if (torch) {
        round["torch"] = run_torch(python, script, c, steps, device);
        if (round["torch"].contains("tokens_per_second"))
          round["ratio"] = round["hone"]["tokens_per_second"].get<double>() /
                           round["torch"]["tokens_per_second"].get<double>();
      }
      all.push_back(round);
    }
    json row = {{"model", c.name}, {"batch", c.batch}, {"seq", c.seq},
                {"hone", median_by(all, "hone", "tokens_per_second")}};
    if (torch) row["torch"] = median_by(all, "torch", "tokens_per_second");
    std::vector<double> ratios;
    for (const json& round : all)
      if (round.contains("ratio")) ratios.push_back(round["ratio"].get<double>());
    if (!ratios.empty() && ratios.size() == all.size()) row["ratio"] = median(ratios);
    if (rounds > 1) row["rounds"] = all;
    const bool t = row.contains("ratio");
    std::printf("%-12s %12.0f %12.2f %10s %14s %8s\n", c.name.c_str(), row["hone"]["tokens_per_second"].get<double>(),
                row["hone"]["gflops"].get<double>(),
                t ? std::to_string(static_cast<long long>(row["torch"]["tokens_per_second"].get<double>())).c_str() : "-",
                t ? std::to_string(row["torch"]["tokens_per_second"].get<double>() * row["hone"]["gflops"].get<double>() /
                                   row["hone"]["tokens_per_second"].get<double>()).substr(0, 6).c_str() : "-",
                t ? std::to_string(row["ratio"].get<double>()).substr(0, 5).c_str() : "-");
    if (rounds > 1)
      for (std::size_t r = 0; r < all.size(); ++r) {
        const json& round = all[r];
        std::printf("  round %zu: hone %.0f tok/s", r + 1, round["hone"]["tokens_per_second"].get<double>());
        if (round.contains("ratio"))
          std::printf(", torch %.0f tok/s, ratio %.3f", round["torch"]["tokens_per_second"].get<double>(),
                      round["ratio"].get<double>());
        std::printf("\n");
      }
    report["cases"].push_back(row);
  }
  if (!report.contains("cases")) {
    std::fprintf(stderr, "bench_train: no model named '%s' (--case)\n", only.c_str());
    return 2;
  }
  if (!device.is_cuda()) {
    // The ceiling again after the steps: a slow phase of a shared machine only lowers it.
    const double again = cpu::fma_peak_gflops(quick ? 0.1 : 0.5);
    report["fma_peak_gflops"] = std::max(report["fma_peak_gflops"].get<double>(), again);
    std::printf("f32 FMA peak, the higher of the readings before and after: %.1f GFLOP/s\n",
                report["fma_peak_gflops"].get<double>());
  }
  const std::string text = report.dump(1);
  if (!json_path.empty()) {
    std::ofstream(json_path + ".tmp") << text << "\n";
    std::filesystem::rename(json_path + ".tmp", json_path);
  } else {
    std::printf("%s\n", text.c_str());
  }
  for (const json& row : report["cases"])
    if (!(row["hone"]["tokens_per_second"].get<double>() > 0)) return 1;
  return 0;
}

// CPU f32 GEMM on the shapes of a training step: GFLOP/s of hone's packed kernel
// (gemm_strided) and, in the same run, of the Eigen tiling it replaced (gemm_eigen), with the
// ratio and their largest disagreement relative to Σ|a||b|, and which operand the packed
// kernel's plan packs once for all tasks ("A", "B" or "-", gemm_plan). Writes JSON.
//   bench_gemm [--quick] [--filter TEXT] [--json FILE]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cpu/gemm_kernel.h"
#include "cpu/matmul.h"

namespace {

struct Shape {
  std::string name;  // where the product occurs
  std::int64_t m, n, k;
  bool ta, tb;
  std::int64_t count;  // independent products (attention heads)
};

// GPT-2 124M with 256 tokens (hidden 768, 3·768 for q/k/v, 4·768 MLP, vocabulary 50257, 12
// heads of 64), a Llama-shaped model with 512 tokens (hidden 512, intermediate 1408, vocabulary
// 32000) and the 1024³ headline. Forward x·Wᵀ is NT, dX = dY·W is NN, dW += dYᵀ·X is TN.
std::vector<Shape> shapes(bool quick) {
  if (quick) return {{"square", 256, 256, 256, false, false, 1},
                     {"gpt2 qkv fwd", 256, 2304, 768, false, true, 1},
                     {"gpt2 fc dW", 3072, 768, 256, true, false, 1}};
  return {
      {"square", 1024, 1024, 1024, false, false, 1},
      {"gpt2 attn.proj fwd", 256, 768, 768, false, true, 1},
      {"gpt2 qkv fwd", 256, 2304, 768, false, true, 1},
      {"gpt2 fc fwd", 256, 3072, 768, false, true, 1},
      {"gpt2 mlp.proj fwd", 256, 768, 3072, false, true, 1},
      {"gpt2 lm_head fwd", 256, 50257, 768, false, true, 1},
      {"gpt2 qkv dX", 256, 768, 2304, false, false, 1},
      {"gpt2 fc dX", 256, 768, 3072, false, false, 1},
      {"gpt2 mlp.proj dX", 256, 3072, 768, false, false, 1},
      {"gpt2 lm_head dX", 256, 768, 50257, false, false, 1},
      {"gpt2 attn.proj dW", 768, 768, 256, true, false, 1},
      {"gpt2 qkv dW", 2304, 768, 256, true, false, 1},
      {"gpt2 fc dW", 3072, 768, 256, true, false, 1},
      {"gpt2 mlp.proj dW", 768, 3072, 256, true, false, 1},
      {"gpt2 lm_head dW", 50257, 768, 256, true, false, 1},
      {"gpt2 attn q·kT", 256, 256, 64, false, true, 12},
      {"gpt2 attn p·v", 256, 64, 256, false, false, 12},
      {"llama o fwd", 512, 512, 512, false, true, 1},
      {"llama k fwd", 512, 256, 512, false, true, 1},
      {"llama gate fwd", 512, 1408, 512, false, true, 1},
      {"llama down fwd", 512, 512, 1408, false, true, 1},
      {"llama lm_head fwd", 512, 32000, 512, false, true, 1},
      {"llama down dX", 512, 1408, 512, false, false, 1},
      {"llama gate dX", 512, 512, 1408, false, false, 1},
      {"llama lm_head dX", 512, 512, 32000, false, false, 1},
      {"llama gate dW", 1408, 512, 512, true, false, 1},
      {"llama lm_head dW", 32000, 512, 512, true, false, 1},
  };
}

std::vector<float> uniform(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

struct Timing {
  double median_s, best_s;
};

// Seconds per call of f and g, called in turn (so that both meet the same load on a shared
// machine) at least `reps` times each and for `min_s` seconds, after one warm-up: the median,
// and the best (the figure that compares kernels when other work comes and goes; the median
// shows the spread).
std::pair<Timing, Timing> time_pair(const std::function<void()>& f, const std::function<void()>& g,
                                    int reps, double min_s) {
  f();
  g();
  std::vector<double> sf, sg;
  double total = 0;
  auto once = [&](const std::function<void()>& h, std::vector<double>& s) {
    const auto t0 = std::chrono::steady_clock::now();
    h();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    total += s.back();
  };
  while (static_cast<int>(sf.size()) < reps || total < min_s) {
    once(f, sf);
    once(g, sg);
  }
  auto summary = [](std::vector<double>& s) {
    std::sort(s.begin(), s.end());
    return Timing{s[s.size() / 2], s.front()};
  };
  return {summary(sf), summary(sg)};
}

struct Row {
  Shape shape;
  double flops;
  Timing hone, eigen;
  double rel_err;
  char share;
  std::string json() const {
    char buf[640];
    std::snprintf(buf, sizeof buf,
                  "{\"op\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"layout\": \"%c%c\", "
                  "\"count\": %lld, \"dtype\": \"f32\", \"flops\": %.0f, \"hone_ms\": %.3f, "
                  "\"hone_best_ms\": %.3f, \"hone_gflops\": %.2f, \"eigen_ms\": %.3f, "
                  "\"eigen_best_ms\": %.3f, \"eigen_gflops\": %.2f, \"speedup\": %.3f, "
                  "\"max_rel_err\": %.3g, \"shared_operand\": \"%c\"}",
                  shape.name.c_str(), static_cast<long long>(shape.m),
                  static_cast<long long>(shape.n), static_cast<long long>(shape.k),
                  shape.ta ? 'T' : 'N', shape.tb ? 'T' : 'N', static_cast<long long>(shape.count),
                  flops, hone.median_s * 1e3, hone.best_s * 1e3, flops / hone.best_s * 1e-9,
                  eigen.median_s * 1e3, eigen.best_s * 1e3, flops / eigen.best_s * 1e-9,
                  eigen.best_s / hone.best_s, rel_err, share);
    return buf;
  }
};

Row run(const Shape& s, bool quick) {
  hone::cpu::StridedGemm g;
  g.m = s.m, g.n = s.n, g.k = s.k;
  g.trans_a = s.ta, g.trans_b = s.tb;
  g.count = s.count;
  g.a_step = s.m * s.k, g.b_step = s.k * s.n, g.c_step = s.m * s.n;
  const std::vector<float> a = uniform(s.count * s.m * s.k, 1), b = uniform(s.count * s.k * s.n, 2);
  std::vector<float> c_hone(static_cast<std::size_t>(s.count * s.m * s.n));
  std::vector<float> c_eigen(c_hone.size());
  // beta = 1 (gradient accumulation) for dW, beta = 0 elsewhere, as in a training step.
  const float beta = s.ta ? 1.0f : 0.0f;
  const int reps = quick ? 3 : 5;
  const double min_s = quick ? 0.05 : 0.3;
  const auto [hone, eigen] = time_pair(
      [&] { hone::cpu::gemm_strided(a.data(), b.data(), c_hone.data(), g, 1.0f, beta); },
      [&] { hone::cpu::gemm_eigen(a.data(), b.data(), c_eigen.data(), g, 1.0f, beta); }, reps,
      2 * min_s);
  // One more product of each from the same C, and the scale of its rounding: Σ|a||b| (computed
  // in f64 by the Eigen path).
  std::vector<float> c0 = uniform(static_cast<std::int64_t>(c_hone.size()), 3);
  c_hone = c0, c_eigen = c0;
  hone::cpu::gemm_strided(a.data(), b.data(), c_hone.data(), g, 1.0f, beta);
  hone::cpu::gemm_eigen(a.data(), b.data(), c_eigen.data(), g, 1.0f, beta);
  std::vector<double> abs_a(a.size()), abs_b(b.size()), scale(c_hone.size());
  for (std::size_t i = 0; i < a.size(); ++i) abs_a[i] = std::fabs(a[i]);
  for (std::size_t i = 0; i < b.size(); ++i) abs_b[i] = std::fabs(b[i]);
  hone::cpu::gemm_eigen(abs_a.data(), abs_b.data(), scale.data(), g, 1.0, 0.0);
  double rel = 0;
  for (std::size_t i = 0; i < scale.size(); ++i) {
    const double mag = scale[i] + (beta != 0 ? std::fabs(c0[i]) : 0.0);
    rel = std::max(rel, std::fabs(static_cast<double>(c_hone[i]) - c_eigen[i]) / mag);
  }
  const hone::cpu::GemmShare plan = hone::cpu::gemm_plan(g).share;
  const char share = plan == hone::cpu::GemmShare::kA ? 'A'
                     : plan == hone::cpu::GemmShare::kB ? 'B'
                                                        : '-';
  return {s, 2.0 * s.count * s.m * s.n * s.k, hone, eigen, rel, share};
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path, filter;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_gemm [--quick] [--filter TEXT] [--json FILE]\n");
      return 2;
    }
  }
  const hone::cpu::GemmKernelInfo kernel = hone::cpu::gemm_kernel_info();
  const char* isa = kernel.isa;
  const double peak = hone::cpu::fma_peak_gflops();
  std::printf("kernel %s (%d×%d), %d threads, f32 FMA peak %.1f GFLOP/s (measured)\n",
              *isa ? isa : "none (Eigen)", kernel.mr, kernel.nr, omp_get_max_threads(), peak);
  std::printf("%-20s %6s %6s %6s %3s %5s %10s %10s %8s %9s %6s\n", "op", "m", "n", "k", "op",
              "count", "hone GF/s", "eigen GF/s", "speedup", "rel err", "shared");
  std::vector<Row> rows;
  double hone_total = 0, eigen_total = 0;
  for (const Shape& s : shapes(quick)) {
    if (!filter.empty() && s.name.find(filter) == std::string::npos) continue;
    rows.push_back(run(s, quick));
    const Row& r = rows.back();
    hone_total += r.hone.best_s, eigen_total += r.eigen.best_s;
    std::printf("%-20s %6lld %6lld %6lld  %c%c %5lld %10.1f %10.1f %7.2fx %9.1e %6c\n",
                s.name.c_str(), static_cast<long long>(s.m), static_cast<long long>(s.n),
                static_cast<long long>(s.k), s.ta ? 'T' : 'N', s.tb ? 'T' : 'N',
                static_cast<long long>(s.count), r.flops / r.hone.best_s * 1e-9,
                r.flops / r.eigen.best_s * 1e-9, r.eigen.best_s / r.hone.best_s, r.rel_err,
                r.share);
    std::fflush(stdout);
  }
  std::printf("GF/s and speedup from the best time of each; the JSON also has the medians\n");
  std::printf("all shapes, one call each: hone %.1f ms, eigen %.1f ms (%.2fx)\n", hone_total * 1e3,
              eigen_total * 1e3, hone_total > 0 ? eigen_total / hone_total : 0.0);
  std::string json = "{\"benchmark\": \"gemm\", \"threads\": " +
                     std::to_string(omp_get_max_threads()) + ", \"fma_peak_gflops\": " +
                     std::to_string(peak) + ", \"kernel\": \"" + isa +
                     "\", \"baseline\": \"Eigen, one product per fixed tile\", \"results\": [\n";
  for (std::size_t i = 0; i < rows.size(); ++i)
    json += "  " + rows[i].json() + (i + 1 < rows.size() ? ",\n" : "\n");
  json += "]}\n";
  if (!json_path.empty()) std::ofstream(json_path) << json;
  else std::fputs(json.c_str(), stdout);
  // Both are f32 sums of the same products in different orders: they may differ by a few
  // roundings of the largest partial sums, never by more.
  for (const Row& r : rows)
    if (!(r.rel_err < 1e-5)) {
      std::fprintf(stderr, "bench_gemm: %s disagrees with Eigen (max rel err %g)\n",
                   r.shape.name.c_str(), r.rel_err);
      return 1;
    }
  return 0;
}

// CPU benchmark of the reference matmul and attention: GFLOP/s of hone's implementation and,
// measured in the same run, of a plain triple-loop baseline, with the ratio. Writes JSON.
//   bench_cpu [--quick] [--json FILE]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "hone/tensor.h"
#include "ops/ops.h"

using hone::DType;
using hone::Tensor;

namespace {

Tensor random_f32(const hone::Shape& shape, std::uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::f32);
  hone::ops::uniform_(t, seed, 0);
  hone::ops::add_(t, Tensor::full(shape, -0.5, DType::f32));
  return t;
}

// Median wall time (seconds) of `reps` runs after one warm-up.
double time_median(const std::function<void()>& f, int reps) {
  f();
  std::vector<double> s;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

// c = a · b, the textbook i-j-k loop, one thread.
void matmul_baseline(const float* a, const float* b, float* c, int M, int N, int K) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float acc = 0;
      for (int k = 0; k < K; ++k) acc += a[i * K + k] * b[k * N + j];
      c[i * N + j] = acc;
    }
}

// Causal attention, one thread, q/k/v/out (T, H, hd): scores, softmax and weighted sum per row.
void attention_baseline(const float* q, const float* k, const float* v, float* out, int T, int H, int hd) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> p(T);
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < T; ++i) {
      float mx = -INFINITY;
      for (int j = 0; j <= i; ++j) {
        float s = 0;
        for (int d = 0; d < hd; ++d) s += q[(i * H + h) * hd + d] * k[(j * H + h) * hd + d];
        p[j] = s * scale;
        mx = std::max(mx, p[j]);
      }
      float sum = 0;
      for (int j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
      for (int d = 0; d < hd; ++d) {
        float acc = 0;
        for (int j = 0; j <= i; ++j) acc += p[j] * v[(j * H + h) * hd + d];
        out[(i * H + h) * hd + d] = acc / sum;
      }
    }
}

double max_abs_diff(const Tensor& a, const std::vector<float>& b) {
  const float* pa = a.data<float>();
  double m = 0;
  for (std::size_t i = 0; i < b.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(pa[i] - b[i])));
  return m;
}

struct Row {
  std::string op, shape;
  double flops, hone_s, base_s, diff;
  std::string json() const {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "{\"op\": \"%s\", \"shape\": \"%s\", \"dtype\": \"f32\", \"flops\": %.0f, "
                  "\"hone_ms\": %.3f, \"hone_gflops\": %.2f, \"baseline_ms\": %.3f, "
                  "\"baseline_gflops\": %.2f, \"speedup\": %.2f, \"max_abs_diff\": %.3g}",
                  op.c_str(), shape.c_str(), flops, hone_s * 1e3, flops / hone_s * 1e-9,
                  base_s * 1e3, flops / base_s * 1e-9, base_s / hone_s, diff);
    return buf;
  }
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_cpu [--quick] [--json FILE]\n");
      return 2;
    }
  }
  const int reps = quick ? 3 : 5;
  std::vector<Row> rows;

  const std::vector<int> gemm_sizes = quick ? std::vector<int>{128, 256} : std::vector<int>{128, 256, 512};
  for (int n : gemm_sizes) {
    const Tensor a = random_f32({n, n}, 1), b = random_f32({n, n}, 2), c = Tensor::empty({n, n}, DType::f32);
    std::vector<float> ref(static_cast<std::size_t>(n) * n);
    const double hone_s = time_median([&] { hone::ops::matmul(a, b, c); }, reps);
    const double base_s = time_median([&] { matmul_baseline(a.data<float>(), b.data<float>(), ref.data(), n, n, n); },
                                      std::max(1, reps / 2));
    rows.push_back({"matmul", std::to_string(n) + "x" + std::to_string(n) + "x" + std::to_string(n),
                    2.0 * n * n * n, hone_s, base_s, max_abs_diff(c, ref)});
  }

  const std::vector<int> seqs = quick ? std::vector<int>{128} : std::vector<int>{256, 512};
  for (int T : seqs) {
    const int H = 8, hd = 64;
    const Tensor q = random_f32({1, T, H, hd}, 3), k = random_f32({1, T, H, hd}, 4), v = random_f32({1, T, H, hd}, 5);
    const Tensor out = Tensor::empty({1, T, H, hd}, DType::f32), lse = Tensor::empty({1, H, T}, DType::f32);
    std::vector<float> ref(static_cast<std::size_t>(T) * H * hd);
    const double hone_s = time_median([&] { hone::ops::attention_fwd(q, k, v, {}, out, lse); }, reps);
    const double base_s = time_median(
        [&] { attention_baseline(q.data<float>(), k.data<float>(), v.data<float>(), ref.data(), T, H, hd); },
        std::max(1, reps / 2));
    // Causal: half of the 4·T²·hd·H of full attention.
    rows.push_back({"attention_fwd_causal", "B1 T" + std::to_string(T) + " H8 hd64",
                    2.0 * T * T * hd * H, hone_s, base_s, max_abs_diff(out, ref)});
  }

  std::string json = "{\"benchmark\": \"cpu\", \"threads\": " + std::to_string(omp_get_max_threads()) +
                     ", \"baseline\": \"single-thread triple loop\", \"results\": [\n";
  for (std::size_t i = 0; i < rows.size(); ++i) json += "  " + rows[i].json() + (i + 1 < rows.size() ? ",\n" : "\n");
  json += "]}\n";
  std::printf("%-22s %-18s %10s %10s %10s %8s\n", "op", "shape", "hone GF/s", "loop GF/s", "speedup", "maxdiff");
  for (const Row& r : rows)
    std::printf("%-22s %-18s %10.2f %10.2f %9.1fx %8.1e\n", r.op.c_str(), r.shape.c_str(),
                r.flops / r.hone_s * 1e-9, r.flops / r.base_s * 1e-9, r.base_s / r.hone_s, r.diff);
  if (!json_path.empty()) {
    std::ofstream(json_path) << json;
  } else {
    std::fputs(json.c_str(), stdout);
  }
  for (const Row& r : rows)
    if (!(r.diff < 1e-3)) {
      std::fprintf(stderr, "bench_cpu: %s %s disagrees with the baseline (max diff %g)\n", r.op.c_str(),
                   r.shape.c_str(), r.diff);
      return 1;
    }
  return 0;
}

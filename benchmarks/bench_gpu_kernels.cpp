// Bandwidth of the memory-bound kernels, launched through engine/ops so the figures are what the
// engine gets: norms, RoPE, activations, element-wise ops, embedding, cross-entropy, AdamW, the
// gradient norm and sampling, at Llama-8B-like training sizes (hidden 4096, 8192 tokens, MLP
// 14336, vocabulary 128256, AdamW over 2³⁰ ≈ 1.07B parameters), against the device-to-device
// copy measured in the same run. Each case states the bytes it must move (the tensors it reads
// and writes once; not workspace or cache traffic) and is timed with CUDA events per launch;
// the median of the timed launches is reported with the spread. Writes JSON.
//   bench_gpu_kernels [--quick] [--json FILE] [--iters N] [--only NAME]
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "hone/tensor.h"
#include "ops/ops.h"
#include "gpu_timing.h"

using namespace hone;

namespace {

using bench::Timing;
using bench::time_launches;

// A device tensor of values uniform in [lo, hi): a host block of up to 2²⁴ elements from a
// counter-based hash (in parallel), converted to the dtype, then repeated over the tensor with
// device copies (a 1B-element tensor is not generated on the host).
Tensor random_device(const Shape& shape, DType dtype, std::uint64_t seed, double lo = -1.0,
                     double hi = 1.0) {
  const Tensor dev = Tensor::empty(shape, dtype, Device::cuda(0));
  const std::int64_t n = dev.numel();
  const std::int64_t block = std::min<std::int64_t>(n, std::int64_t{1} << 24);
  if (block == 0) return dev;
  const Tensor host = Tensor::empty({block}, DType::f64);
  double* p = host.data<double>();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < block; ++i) {
    std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(i);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    p[i] = lo + (hi - lo) * (static_cast<double>(z >> 11) * 0x1.0p-53);
  }
  const Tensor typed = host.to(dtype);
  const std::size_t es = dtype_size(dtype);
  for (std::int64_t at = 0; at < n; at += block) {
    const std::int64_t len = std::min(block, n - at);
    CUDA_CHECK(cudaMemcpy(static_cast<char*>(dev.raw()) + at * es, typed.raw(), len * es,
                          cudaMemcpyHostToDevice));
  }
  return dev;
}

// Token ids / positions / targets in [0, n) on the device, and how many distinct ones.
Tensor random_ids(std::int64_t count, std::int64_t n, std::uint64_t seed, std::int64_t* distinct) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(count));
  std::uint64_t z = seed;
  for (auto& x : v) {
    z = z * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<std::int64_t>((z >> 33) % static_cast<std::uint64_t>(n));
  }
  if (distinct) *distinct = static_cast<std::int64_t>(std::set<std::int64_t>(v.begin(), v.end()).size());
  return Tensor::from_vector<std::int64_t>({count}, v).to(Device::cuda(0));
}

std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

// Sizes: the full run at the sizes above; --quick at a quarter of the tokens and parameters.
struct Sizes {
  std::int64_t tokens, hidden = 4096, mlp = 14336, gelu_mlp = 16384, heads = 32, head_dim = 128,
                       vocab = 128256, ce_rows, params, sample_rows = 256;
  std::size_t copy_bytes;
};

Sizes sizes_for(bool quick) {
  Sizes s;
  s.tokens = quick ? 2048 : 8192;
  s.ce_rows = quick ? 2048 : 8192;
  s.params = quick ? (std::int64_t{1} << 28) : (std::int64_t{1} << 30);
  s.copy_bytes = quick ? (std::size_t{512} << 20) : (std::size_t{2} << 30);
  return s;
}

// A case: its name, what it runs, and a setup that allocates the inputs, states the bytes one
// launch must move, and returns the launch.
struct Case {
  std::string name, what;
  std::function<std::function<void()>(double& bytes)> setup;
};

std::vector<Case> cases(const Sizes& z) {
  const Device gpu = Device::cuda(0);
  const std::int64_t N = z.tokens, D = z.hidden;
  std::vector<Case> c;
  c.push_back({"d2d_copy", cat("cudaMemcpyAsync device to device, ", z.copy_bytes >> 20, " MiB"),
               [z, gpu](double& bytes) {
                 const std::int64_t n = static_cast<std::int64_t>(z.copy_bytes);
                 const Tensor src = Tensor::zeros({n}, DType::u8, gpu), dst = Tensor::empty({n}, DType::u8, gpu);
                 bytes = 2.0 * n;  // read + written
                 return std::function<void()>([src, dst, n] {
                   CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), n, cudaMemcpyDeviceToDevice,
                                              cuda::current_stream(0)));
                 });
               }});
  // ---- norms: x (N, D) bf16, w/b (D) bf16, statistics (N) f32, weight gradients (D) f32 (+=).
  c.push_back({"rmsnorm_fwd", cat("x ", N, "×", D, " bf16"), [=](double& bytes) {
                 const Tensor x = random_device({N, D}, DType::bf16, 1), w = random_device({D}, DType::bf16, 2, 0.5, 1.5);
                 const Tensor y = Tensor::empty({N, D}, DType::bf16, gpu), r = Tensor::empty({N}, DType::f32, gpu);
                 bytes = 2.0 * N * D * 2 + D * 2 + N * 4;  // x in, y out, w, rstd out
                 return std::function<void()>([=] { ops::rmsnorm_fwd(x, w, 1e-5, y, r); });
               }});
  c.push_back({"rmsnorm_bwd", cat("dy, x ", N, "×", D, " bf16 → dx bf16, dw f32 +="), [=](double& bytes) {
                 const Tensor x = random_device({N, D}, DType::bf16, 3), w = random_device({D}, DType::bf16, 4, 0.5, 1.5);
                 const Tensor dy = random_device({N, D}, DType::bf16, 5);
                 const Tensor y = Tensor::empty({N, D}, DType::bf16, gpu), r = Tensor::empty({N}, DType::f32, gpu);
                 ops::rmsnorm_fwd(x, w, 1e-5, y, r);
                 const Tensor dx = Tensor::empty({N, D}, DType::bf16, gpu), dw = Tensor::zeros({D}, DType::f32, gpu);
                 bytes = 3.0 * N * D * 2 + N * 4 + D * 2 + 2.0 * D * 4;  // dy, x in, dx out, rstd, w, dw ±
                 return std::function<void()>([=] { ops::rmsnorm_bwd(dy, x, w, r, dx, dw); });
               }});
  c.push_back({"layernorm_fwd", cat("x ", N, "×", D, " bf16"), [=](double& bytes) {
                 const Tensor x = random_device({N, D}, DType::bf16, 6), w = random_device({D}, DType::bf16, 7, 0.5, 1.5);
                 const Tensor b = random_device({D}, DType::bf16, 8);
                 const Tensor y = Tensor::empty({N, D}, DType::bf16, gpu);
                 const Tensor mean = Tensor::empty({N}, DType::f32, gpu), r = Tensor::empty({N}, DType::f32, gpu);
                 bytes = 2.0 * N * D * 2 + 2.0 * D * 2 + 2.0 * N * 4;  // x, y, w, b, mean, rstd
                 return std::function<void()>([=] { ops::layernorm_fwd(x, w, b, 1e-5, y, mean, r); });
               }});
  c.push_back({"layernorm_bwd", cat("dy, x ", N, "×", D, " bf16 → dx bf16, dw db f32 +="), [=](double& bytes) {
                 const Tensor x = random_device({N, D}, DType::bf16, 9), w = random_device({D}, DType::bf16, 10, 0.5, 1.5);
                 const Tensor b = random_device({D}, DType::bf16, 11), dy = random_device({N, D}, DType::bf16, 12);
                 const Tensor y = Tensor::empty({N, D}, DType::bf16, gpu);
                 const Tensor mean = Tensor::empty({N}, DType::f32, gpu), r = Tensor::empty({N}, DType::f32, gpu);
                 ops::layernorm_fwd(x, w, b, 1e-5, y, mean, r);
                 const Tensor dx = Tensor::empty({N, D}, DType::bf16, gpu);
                 const Tensor dw = Tensor::zeros({D}, DType::f32, gpu), db = Tensor::zeros({D}, DType::f32, gpu);
                 bytes = 3.0 * N * D * 2 + 2.0 * N * 4 + D * 2 + 4.0 * D * 4;  // dy, x, dx, mean, rstd, w, dw ±, db ±
                 return std::function<void()>([=] { ops::layernorm_bwd(dy, x, w, mean, r, dx, dw, db); });
               }});
  // ---- RoPE: q (N, 32, 128) bf16, i64 positions.
  for (bool bwd : {false, true}) {
    c.push_back({bwd ? "rope_bwd" : "rope_fwd", cat("q ", N, "×", z.heads, "×", z.head_dim, " bf16"),
                 [=](double& bytes) {
                   const Tensor x = random_device({N, z.heads, z.head_dim}, DType::bf16, 13);
                   const Tensor pos = random_ids(N, 8192, 14, nullptr);
                   const Tensor y = Tensor::empty(x.shape(), DType::bf16, gpu);
                   ops::RopeArgs args;
                   args.theta = 500000.0;
                   bytes = 2.0 * x.numel() * 2 + N * 8.0;  // x in, y out, positions
                   if (bwd) return std::function<void()>([=] { ops::rope_bwd(x, pos, args, y); });
                   return std::function<void()>([=] { ops::rope_fwd(x, pos, args, y); });
                 }});
  }
  // ---- activations: SwiGLU over (N, 14336), GELU over (N, 16384), bf16.
  c.push_back({"swiglu_fwd", cat("gate, up ", N, "×", z.mlp, " bf16"), [=](double& bytes) {
                 const Tensor g = random_device({N, z.mlp}, DType::bf16, 15, -4, 4), u = random_device({N, z.mlp}, DType::bf16, 16);
                 const Tensor out = Tensor::empty(g.shape(), DType::bf16, gpu);
                 bytes = 3.0 * g.numel() * 2;  // gate, up in, out
                 return std::function<void()>([=] { ops::swiglu_fwd(g, u, out); });
               }});
  c.push_back({"swiglu_bwd", cat("dout, gate, up ", N, "×", z.mlp, " bf16"), [=](double& bytes) {
                 const Tensor g = random_device({N, z.mlp}, DType::bf16, 17, -4, 4), u = random_device({N, z.mlp}, DType::bf16, 18);
                 const Tensor d = random_device({N, z.mlp}, DType::bf16, 19);
                 const Tensor dg = Tensor::empty(g.shape(), DType::bf16, gpu), du = Tensor::empty(g.shape(), DType::bf16, gpu);
                 bytes = 5.0 * g.numel() * 2;  // dout, gate, up in, dgate, dup out
                 return std::function<void()>([=] { ops::swiglu_bwd(d, g, u, dg, du); });
               }});
  c.push_back({"gelu_fwd", cat("x ", N, "×", z.gelu_mlp, " bf16"), [=](double& bytes) {
                 const Tensor x = random_device({N, z.gelu_mlp}, DType::bf16, 20, -4, 4);
                 const Tensor y = Tensor::empty(x.shape(), DType::bf16, gpu);
                 bytes = 2.0 * x.numel() * 2;
                 return std::function<void()>([=] { ops::gelu_fwd(x, y); });
               }});
  c.push_back({"gelu_bwd", cat("dy, x ", N, "×", z.gelu_mlp, " bf16"), [=](double& bytes) {
                 const Tensor x = random_device({N, z.gelu_mlp}, DType::bf16, 21, -4, 4);
                 const Tensor dy = random_device(x.shape(), DType::bf16, 22);
                 const Tensor dx = Tensor::empty(x.shape(), DType::bf16, gpu);
                 bytes = 3.0 * x.numel() * 2;
                 return std::function<void()>([=] { ops::gelu_bwd(dy, x, dx); });
               }});
  // ---- element-wise over the residual stream (N, D) bf16.
  c.push_back({"add_", cat("dst += 0.5·src, ", N, "×", D, " bf16"), [=](double& bytes) {
                 const Tensor d = random_device({N, D}, DType::bf16, 23), s = random_device({N, D}, DType::bf16, 24);
                 bytes = 3.0 * d.numel() * 2;  // dst in and out, src
                 return std::function<void()>([=] { ops::add_(d, s, 0.5); });
               }});
  c.push_back({"scale_", cat("x *= 0.999, ", N, "×", D, " bf16"), [=](double& bytes) {
                 const Tensor x = random_device({N, D}, DType::bf16, 25);
                 bytes = 2.0 * x.numel() * 2;
                 return std::function<void()>([=] { ops::scale_(x, 0.999); });
               }});
  c.push_back({"bias_add_", cat("x ", N, "×", D, " bf16 += b"), [=](double& bytes) {
                 const Tensor x = random_device({N, D}, DType::bf16, 26), b = random_device({D}, DType::bf16, 27, -1e-3, 1e-3);
                 bytes = 2.0 * x.numel() * 2 + D * 2;
                 return std::function<void()>([=] { ops::bias_add_(x, b); });
               }});
  c.push_back({"bias_bwd", cat("dy ", N, "×", D, " bf16 → db f32 +="), [=](double& bytes) {
                 const Tensor dy = random_device({N, D}, DType::bf16, 28);
                 const Tensor db = Tensor::zeros({D}, DType::f32, gpu);
                 bytes = 1.0 * dy.numel() * 2 + 2.0 * D * 4;
                 return std::function<void()>([=] { ops::bias_bwd(dy, db); });
               }});
  // ---- embedding: table (128256, 4096) bf16, N ids.
  c.push_back({"embedding_fwd", cat(N, " ids from ", z.vocab, "×", D, " bf16"), [=](double& bytes) {
                 const Tensor t = random_device({z.vocab, D}, DType::bf16, 29);
                 const Tensor ids = random_ids(N, z.vocab, 30, nullptr);
                 const Tensor out = Tensor::empty({N, D}, DType::bf16, gpu);
                 bytes = 2.0 * N * D * 2 + N * 8.0;  // rows read, rows written, ids
                 return std::function<void()>([=] { ops::embedding_fwd(ids, t, out); });
               }});
  c.push_back({"embedding_bwd", cat("dout ", N, "×", D, " bf16 → dtable f32 +="), [=](double& bytes) {
                 std::int64_t distinct = 0;
                 const Tensor ids = random_ids(N, z.vocab, 31, &distinct);
                 const Tensor dout = random_device({N, D}, DType::bf16, 32);
                 const Tensor dt = Tensor::zeros({z.vocab, D}, DType::f32, gpu);
                 // dout once, ids, and each touched row of dtable read and written.
                 bytes = 1.0 * N * D * 2 + N * 8.0 + 2.0 * distinct * D * 4;
                 return std::function<void()>([=] { ops::embedding_bwd(ids, dout, dt); });
               }});
  // ---- cross-entropy over the vocabulary: logits (rows, 128256) bf16.
  c.push_back({"cross_entropy_fwd", cat("logits ", z.ce_rows, "×", z.vocab, " bf16"), [=](double& bytes) {
                 const Tensor l = random_device({z.ce_rows, z.vocab}, DType::bf16, 33, -8, 8);
                 const Tensor t = random_ids(z.ce_rows, z.vocab, 34, nullptr);
                 const Tensor losses = Tensor::empty({z.ce_rows}, DType::f32, gpu), lse = Tensor::empty({z.ce_rows}, DType::f32, gpu);
                 bytes = 1.0 * l.numel() * 2 + z.ce_rows * (8.0 + 4 + 4);  // logits once, targets, losses, lse
                 return std::function<void()>([=] { ops::cross_entropy_fwd(l, t, {}, losses, lse); });
               }});
  c.push_back({"cross_entropy_bwd", cat("logits ", z.ce_rows, "×", z.vocab, " bf16 → dlogits bf16"), [=](double& bytes) {
                 const Tensor l = random_device({z.ce_rows, z.vocab}, DType::bf16, 35, -8, 8);
                 const Tensor t = random_ids(z.ce_rows, z.vocab, 36, nullptr);
                 const Tensor losses = Tensor::empty({z.ce_rows}, DType::f32, gpu), lse = Tensor::empty({z.ce_rows}, DType::f32, gpu);
                 ops::cross_entropy_fwd(l, t, {}, losses, lse);
                 const Tensor dl = Tensor::full({z.ce_rows}, 1.0 / static_cast<double>(z.ce_rows), DType::f32, gpu);
                 const Tensor dlogits = Tensor::empty(l.shape(), DType::bf16, gpu);
                 bytes = 2.0 * l.numel() * 2 + z.ce_rows * (8.0 + 4 + 4);  // logits in, dlogits out, targets, lse, dlosses
                 return std::function<void()>([=] { ops::cross_entropy_bwd(dl, l, t, lse, {}, dlogits); });
               }});
  // ---- optimizer: 2³⁰ parameters, fp32 master weights and moments, bf16 gradient.
  c.push_back({"adamw_step", cat(z.params, " params: p, m, v f32, grad bf16"), [=](double& bytes) {
                 const Tensor p = random_device({z.params}, DType::f32, 37), g = random_device({z.params}, DType::bf16, 38);
                 const Tensor m = Tensor::zeros({z.params}, DType::f32, gpu), v = Tensor::zeros({z.params}, DType::f32, gpu);
                 bytes = z.params * (3.0 * 2 * 4 + 2);  // p, m, v read and written, grad read
                 ops::AdamWArgs args;
                 args.weight_decay = 0.1;
                 return std::function<void()>([=] { ops::adamw_step(p, g, m, v, args); });
               }});
  c.push_back({"grad_norm", cat(z.params, " bf16 gradients (includes the read-back of the norm)"), [=](double& bytes) {
                 const Tensor g = random_device({z.params}, DType::bf16, 39);
                 bytes = z.params * 2.0;
                 return std::function<void()>([=] { (void)ops::grad_norm({g}); });
               }});
  // ---- sampling: one decode step of 256 rows over the vocabulary (logits read at least once).
  c.push_back({"sample", cat("top-k 50, top-p 0.9 over ", z.sample_rows, "×", z.vocab, " bf16"), [=](double& bytes) {
                 const Tensor l = random_device({z.sample_rows, z.vocab}, DType::bf16, 40, -8, 8);
                 const Tensor out = Tensor::empty({z.sample_rows}, DType::i64, gpu);
                 ops::SampleArgs args;
                 args.temperature = 0.8, args.top_k = 50, args.top_p = 0.9, args.seed = 7;
                 bytes = 1.0 * l.numel() * 2 + z.sample_rows * 8.0;
                 return std::function<void()>([=] { ops::sample(l, args, out); });
               }});
  c.push_back({"argmax", cat(z.sample_rows, "×", z.vocab, " bf16"), [=](double& bytes) {
                 const Tensor l = random_device({z.sample_rows, z.vocab}, DType::bf16, 41, -8, 8);
                 const Tensor out = Tensor::empty({z.sample_rows}, DType::i64, gpu);
                 bytes = 1.0 * l.numel() * 2 + z.sample_rows * 8.0;
                 return std::function<void()>([=] { ops::argmax(l, out); });
               }});
  return c;
}

struct Row {
  std::string name, what;
  double bytes;
  Timing t;
  double gbps() const { return bytes / (t.median_ms * 1e-3) / 1e9; }
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path, only;
  int iters = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_gpu_kernels [--quick] [--json FILE] [--iters N] [--only NAME]\n");
      return 2;
    }
  }
  if (iters <= 0) iters = quick ? 10 : 30;
  const int warmup = quick ? 2 : 5;
  try {
    if (cuda_device_count() == 0) {
      std::printf("bench_gpu_kernels: no CUDA device\n");
      return 77;
    }
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("bench_gpu_kernels: %s, %.1f GB; median of %d timed launches per case%s\n", prop.name,
                prop.totalGlobalMem / 1e9, iters, quick ? " (quick)" : "");
    const Sizes z = sizes_for(quick);
    std::vector<Row> rows;
    for (const Case& c : cases(z)) {
      if (!only.empty() && c.name != only && c.name != "d2d_copy") continue;
      double bytes = 0;
      {
        const std::function<void()> launch = c.setup(bytes);
        const Timing t = time_launches(launch, cuda::current_stream(0), warmup, iters);
        rows.push_back({c.name, c.what, bytes, t});
      }
      cuda::synchronize(0);
      cuda_allocator(0).empty_cache();  // the next case's tensors start from an empty cache
      const Row& r = rows.back();
      std::printf("%-18s %8.3f GB moved %9.3f ms %8.0f GB/s %5.0f%% of copy   %s\n", r.name.c_str(),
                  r.bytes / 1e9, r.t.median_ms, r.gbps(), 100 * r.gbps() / rows.front().gbps(),
                  r.what.c_str());
      std::fflush(stdout);
    }
    if (!json_path.empty()) {
      std::string j = cat("{\"benchmark\": \"gpu_kernels\", \"device\": {\"name\": \"", prop.name,
                          "\", \"memory_bytes\": ", prop.totalGlobalMem, ", \"cc\": \"", prop.major,
                          ".", prop.minor, "\"}, \"quick\": ", quick ? "true" : "false",
                          ", \"iters\": ", iters, ", \"tokens\": ", z.tokens, ", \"hidden\": ",
                          z.hidden, ", \"vocab\": ", z.vocab, ", \"adamw_params\": ", z.params,
                          ",\n\"bandwidth\": [\n");
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        j += cat("  {\"name\": \"", r.name, "\", \"what\": \"", r.what, "\", \"bytes\": ", num(r.bytes),
                 ", \"ms\": ", num(r.t.median_ms), ", \"ms_min\": ", num(r.t.min_ms),
                 ", \"ms_max\": ", num(r.t.max_ms), ", \"gbps\": ", num(r.gbps()),
                 ", \"of_copy\": ", num(r.gbps() / rows.front().gbps()), "}",
                 i + 1 < rows.size() ? ",\n" : "\n");
      }
      j += "]}\n";
      std::ofstream(json_path) << j;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_kernels: %s\n", e.what());
    return 1;
  }
  return 0;
}

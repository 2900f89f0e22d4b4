// GPU kernel benchmarks: GEMM TFLOP/s of hone's kernel and of cuBLASLt, measured in the same run
// through ops::matmul (so the figures are what the engine gets), at 8192³ and at the linear
// layers of a Llama-8B-like model with 8192 tokens; flash-attention forward and backward
// TFLOP/s (kernels/attention; head dims 64/128, 512-16k tokens per sequence, causal and not) and,
// in the same run on the same inputs, those of cuDNN's fused attention (cudnn_attention.h, when
// built with the cuDNN frontend; benchmarks/gpu_check.sh adds PyTorch's SDPA backends); the
// device-to-device copy bandwidth as the ceiling of memory-bound kernels; and a table those
// kernels join as they arrive. Each case is validated once (GEMM: hone against cuBLAS;
// attention: hone's forward against engine/cpu at 512 tokens and against cuDNN at every shape),
// warmed up, and timed with CUDA events per launch; medians are reported with the spread.
// Writes JSON.
//   bench_gpu [--quick] [--json FILE] [--iters N] [--no-cudnn]
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cpu/attention.h"
#include "cuda/gemm_backend.h"
#include "hone/tensor.h"
#include "kernels/attention/attention.h"
#include "ops/ops.h"
#include "gpu_timing.h"
#ifdef HONE_WITH_CUDNN_ATTENTION
#include "cudnn_attention.h"
#endif

using namespace hone;

namespace {

using bench::Timing;
using bench::time_launches;

// A device tensor of uniform values in [-1, 1), filled on the host (the device has no bf16
// random fill yet) from a counter-based hash, in parallel.
Tensor random_device(const Shape& shape, DType dtype, std::uint64_t seed) {
  const Tensor host = Tensor::empty(shape, DType::f32);
  float* p = host.data<float>();
  const std::int64_t n = host.numel();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(i);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    p[i] = static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0);
  }
  return host.to(dtype).to(Device::cuda(0));
}

// max |x − ref| / max |ref| over all elements.
double relative_difference(const Tensor& x, const Tensor& ref) {
  const std::vector<float> a = x.to(Device::cpu()).to(DType::f32).to_vector<float>();
  const std::vector<float> b = ref.to(Device::cpu()).to(DType::f32).to_vector<float>();
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return std::isfinite(diff) ? diff / std::max(scale, 1e-30) : INFINITY;
}

std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

std::string num(const std::optional<double>& x) { return x ? num(*x) : "null"; }

// A string as a JSON value's contents: quotes and backslashes escaped, control characters blanked.
std::string json_escape(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\', out += ch;
    else if (static_cast<unsigned char>(ch) < 0x20) out += ' ';
    else out += ch;
  }
  return out;
}

// ---------------------------------------------------------------- GEMM
// Row-major layouts as ops::matmul takes them: "NT" is a·bᵀ (the forward y = x·Wᵀ).
struct GemmCase {
  const char* name;
  std::int64_t m, n, k;
  bool a_trans, b_trans;
  DType out;
  double beta;
  const char* what;
  bool quick;
};

const std::vector<GemmCase> kGemmCases = {
    {"square", 8192, 8192, 8192, false, true, DType::bf16, 0.0, "8192³", true},
    {"attn_fwd", 8192, 4096, 4096, false, true, DType::bf16, 0.0, "y = x·Wᵀ, W 4096×4096 (q, o)", false},
    {"mlp_up_fwd", 8192, 14336, 4096, false, true, DType::bf16, 0.0, "y = x·Wᵀ, W 14336×4096 (gate, up)", true},
    {"mlp_down_fwd", 8192, 4096, 14336, false, true, DType::bf16, 0.0, "y = x·Wᵀ, W 4096×14336 (down)", false},
    {"mlp_up_dx", 8192, 4096, 14336, false, false, DType::bf16, 0.0, "dx = dy·W, W 14336×4096", false},
    {"mlp_up_dw", 14336, 4096, 8192, true, false, DType::f32, 1.0, "dW += dyᵀ·x (f32 accumulate)", true},
};

struct GemmRow {
  const GemmCase* c;
  std::optional<Timing> hone, cublas;
  std::optional<double> rel_diff;
  double tflops(const Timing& t) const { return 2.0 * c->m * c->n * c->k / (t.median_ms * 1e-3) / 1e12; }
  std::string layout() const { return std::string(c->a_trans ? "T" : "N") + (c->b_trans ? "T" : "N"); }
};

GemmRow bench_gemm(const GemmCase& gc, int warmup, int iters) {
  GemmRow row{&gc, {}, {}, {}};
  const Tensor a = random_device(gc.a_trans ? Shape{gc.k, gc.m} : Shape{gc.m, gc.k}, DType::bf16, 1);
  const Tensor b = random_device(gc.b_trans ? Shape{gc.n, gc.k} : Shape{gc.k, gc.n}, DType::bf16, 2);
  ops::MatmulArgs args;
  args.trans_a = gc.a_trans;
  args.trans_b = gc.b_trans;
  args.beta = gc.beta;
  const Tensor c = Tensor::zeros({gc.m, gc.n}, gc.out, Device::cuda(0));
  const cudaStream_t stream = cuda::current_stream(0);
  const bool have_hone = ops::gemm_backend_available(ops::GemmBackend::hone);

  // Validation: one product per backend from the same zeroed C.
  ops::set_gemm_backend(ops::GemmBackend::cublas);
  ops::matmul(a, b, c, args);
  const Tensor reference = c.clone();
  if (have_hone) {
    ops::set_gemm_backend(ops::GemmBackend::hone);
    c.fill(0.0);
    ops::matmul(a, b, c, args);
    row.rel_diff = relative_difference(c, reference);
  }

  auto run = [&] { ops::matmul(a, b, c, args); };
  if (have_hone) {
    ops::set_gemm_backend(ops::GemmBackend::hone);
    row.hone = time_launches(run, stream, warmup, iters);
  }
  ops::set_gemm_backend(ops::GemmBackend::cublas);
  row.cublas = time_launches(run, stream, warmup, iters);
  return row;
}

// ---------------------------------------------------------------- attention
// FlashAttention's benchmark shapes: 16k tokens per batch (batch = 16384 / seq), a model width
// of 2048 (heads = 2048 / hd), one kv head per query head. FLOPs: 4·batch·seq²·hd·heads per
// forward, half of it when causal; the backward counts 2.5 forwards.
struct AttentionCase {
  int hd, seq;
  bool causal;
  bool quick;
  int batch() const { return 16384 / seq; }
  int heads() const { return 2048 / hd; }
  std::string name() const { return cat("attn_hd", hd, "_s", seq, causal ? "_causal" : ""); }
  double fwd_flop() const {
    return 4.0 * batch() * static_cast<double>(seq) * seq * hd * heads() / (causal ? 2 : 1);
  }
};

std::vector<AttentionCase> attention_cases() {
  std::vector<AttentionCase> cases;
  for (int hd : {64, 128})
    for (int seq : {512, 2048, 8192, 16384})
      for (bool causal : {false, true})
        cases.push_back({hd, seq, causal, hd == 128 && (seq == 2048 || seq == 16384)});
  return cases;
}

struct AttentionRow {
  AttentionCase c;
  Timing fwd, bwd;
  std::optional<double> rel_diff;  // forward against engine/cpu on the first sequence (seq 512)
  // cuDNN on the same inputs: its times, hone's forward output against cuDNN's, and why there
  // are none when it failed.
  std::optional<Timing> cudnn_fwd, cudnn_bwd;
  std::optional<double> cudnn_rel_diff;
  std::string cudnn_error;
  double fwd_tflops() const { return tflops(c.fwd_flop(), fwd); }
  double bwd_tflops() const { return tflops(2.5 * c.fwd_flop(), bwd); }
  std::optional<double> cudnn_fwd_tflops() const {
    return cudnn_fwd ? std::optional<double>(tflops(c.fwd_flop(), *cudnn_fwd)) : std::nullopt;
  }
  std::optional<double> cudnn_bwd_tflops() const {
    return cudnn_bwd ? std::optional<double>(tflops(2.5 * c.fwd_flop(), *cudnn_bwd)) : std::nullopt;
  }
  static double tflops(double flop, const Timing& t) { return flop / (t.median_ms * 1e-3) / 1e12; }
};

#ifdef HONE_WITH_CUDNN_ATTENTION
using CudnnBaseline = bench::CudnnAttention;
#else
struct CudnnBaseline {};  // not compiled in: bench_attention times hone's kernel alone
#endif

AttentionRow bench_attention(const AttentionCase& ac, int warmup, int iters, CudnnBaseline* cudnn) {
  namespace hk = hone::kernels;
  const std::int64_t b = ac.batch(), t = ac.seq, h = ac.heads(), hd = ac.hd;
  const Tensor q = random_device({b, t, h, hd}, DType::bf16, 11);
  const Tensor k = random_device({b, t, h, hd}, DType::bf16, 12);
  const Tensor v = random_device({b, t, h, hd}, DType::bf16, 13);
  const Tensor dout = random_device({b, t, h, hd}, DType::bf16, 14);
  const Tensor out = Tensor::empty({b, t, h, hd}, DType::bf16, Device::cuda(0));
  const Tensor lse = Tensor::empty({b, h, t}, DType::f32, Device::cuda(0));
  const Tensor dq = Tensor::empty({b, t, h, hd}, DType::bf16, Device::cuda(0));
  const Tensor dk = Tensor::empty({b, t, h, hd}, DType::bf16, Device::cuda(0));
  const Tensor dv = Tensor::empty({b, t, h, hd}, DType::bf16, Device::cuda(0));
  auto view = [&](const Tensor& x) {
    hk::AttentionTensor a;
    a.ptr = x.raw();
    a.batch_stride = t * h * hd, a.row_stride = h * hd, a.head_stride = hd;
    return a;
  };
  hk::AttentionParams p;
  p.q = view(q), p.k = view(k), p.v = view(v), p.out = view(out);
  p.lse = static_cast<float*>(lse.raw());
  p.lse_batch_stride = h * t, p.lse_head_stride = t;
  p.batch = static_cast<int>(b), p.seqlen = static_cast<int>(t);
  p.heads = p.kv_heads = static_cast<int>(h), p.head_dim = static_cast<int>(hd);
  p.causal = ac.causal;
  hk::AttentionBwdParams bp;
  bp.fwd = p;
  bp.dout = view(dout), bp.dq = view(dq), bp.dk = view(dk), bp.dv = view(dv);
  const Tensor ws = Tensor::empty({static_cast<std::int64_t>(hk::attention_bwd_workspace_bytes(p))},
                                  DType::u8, Device::cuda(0));
  bp.workspace = ws.raw(), bp.workspace_bytes = ws.nbytes();
  const cudaStream_t stream = cuda::current_stream(0);

  AttentionRow row;
  row.c = ac;
  if (ac.seq == 512) {  // validation: sequence 0 against the CPU reference in f32
    hk::attention_fwd(p, stream);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    auto first = [&](const Tensor& x) {
      return x.to(Device::cpu()).to(DType::f32).slice(0, 1).clone();
    };
    const Tensor qh = first(q), kh = first(k), vh = first(v), oh = first(out);
    const Tensor ref = Tensor::empty(qh.shape(), DType::f32);
    const Tensor ref_lse = Tensor::empty({h, t}, DType::f32);
    const std::vector<std::int64_t> cu = {0, t};
    cpu::AttentionShape sh;
    sh.cu_seqlens = cu.data(), sh.n_seqs = 1, sh.hq = sh.hkv = h, sh.hd = hd;
    sh.lse_seq_mul = 1, sh.lse_head_stride = t;
    sh.scale = 1.0 / std::sqrt(static_cast<double>(hd)), sh.causal = ac.causal;
    cpu::attention_fwd<float>(qh.data<float>(), kh.data<float>(), vh.data<float>(), sh,
                              ref.data<float>(), ref_lse.data<float>());
    row.rel_diff = relative_difference(oh, ref);
  }
  row.fwd = time_launches([&] { hk::attention_fwd(p, stream); }, stream, warmup, iters);
  row.bwd = time_launches([&] { hk::attention_bwd(bp, stream); }, stream, warmup, iters);
#ifdef HONE_WITH_CUDNN_ATTENTION
  if (cudnn) {
    // cuDNN into its own out/lse/gradients from the same q, k, v, dout; its backward reads its
    // own forward's out and lse. A failure (a shape cuDNN does not take, a library too old)
    // leaves the row without cuDNN figures rather than ending the benchmark.
    try {
      const Tensor c_out = Tensor::empty(out.shape(), DType::bf16, Device::cuda(0));
      const Tensor c_lse = Tensor::empty(lse.shape(), DType::f32, Device::cuda(0));
      const Tensor c_dq = Tensor::empty(dq.shape(), DType::bf16, Device::cuda(0));
      const Tensor c_dk = Tensor::empty(dk.shape(), DType::bf16, Device::cuda(0));
      const Tensor c_dv = Tensor::empty(dv.shape(), DType::bf16, Device::cuda(0));
      hk::AttentionBwdParams cp = bp;
      cp.fwd.out = view(c_out), cp.fwd.lse = static_cast<float*>(c_lse.raw());
      cp.dq = view(c_dq), cp.dk = view(c_dk), cp.dv = view(c_dv);
      cudnn->fwd(cp.fwd, stream);  // builds the graphs outside the timed launches
      cudnn->bwd(cp, stream);
      row.cudnn_rel_diff = relative_difference(out, c_out);  // out: hone's, from the timed launches
      row.cudnn_fwd = time_launches([&] { cudnn->fwd(cp.fwd, stream); }, stream, warmup, iters);
      row.cudnn_bwd = time_launches([&] { cudnn->bwd(cp, stream); }, stream, warmup, iters);
    } catch (const std::exception& e) {
      row.cudnn_error = e.what();
      CUDA_CHECK(cudaStreamSynchronize(stream));
    }
  }
#else
  (void)cudnn;
#endif
  return row;
}

// ---------------------------------------------------------------- memory-bound kernels
// Each entry: bytes read + written per launch and a launch on the stream. The copy is the
// ceiling; norm, rope, activation, adamw... add an entry here as their kernels land (allocate in
// the setup lambda, launch through ops so the figure is what the engine gets).
struct BandwidthCase {
  std::string name;
  std::string what;
  std::function<std::function<void(cudaStream_t)>(double& bytes)> setup;
};

struct BandwidthRow {
  std::string name, what;
  double bytes;
  Timing t;
  double gbps() const { return bytes / (t.median_ms * 1e-3) / 1e9; }
};

std::vector<BandwidthCase> bandwidth_cases(bool quick) {
  std::vector<BandwidthCase> cases;
  const std::size_t copy_bytes = quick ? (std::size_t{512} << 20) : (std::size_t{2} << 30);
  cases.push_back({"d2d_copy", "cudaMemcpyAsync device to device", [copy_bytes](double& bytes) {
                     const Tensor src = Tensor::zeros({static_cast<std::int64_t>(copy_bytes)}, DType::u8,
                                                      Device::cuda(0));
                     const Tensor dst = Tensor::empty(src.shape(), DType::u8, Device::cuda(0));
                     bytes = 2.0 * static_cast<double>(copy_bytes);  // read + written
                     return std::function<void(cudaStream_t)>([src, dst, copy_bytes](cudaStream_t s) {
                       CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), copy_bytes,
                                                  cudaMemcpyDeviceToDevice, s));
                     });
                   }});
  return cases;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  int iters = 0;
  bool use_cudnn = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--no-cudnn")) use_cudnn = false;
    else {
      std::fprintf(stderr, "usage: bench_gpu [--quick] [--json FILE] [--iters N] [--no-cudnn]\n");
      return 2;
    }
  }
  if (iters <= 0) iters = quick ? 10 : 30;
  const int warmup = quick ? 2 : 5;
  try {
    if (cuda_device_count() == 0) {
      std::printf("bench_gpu: no CUDA device\n");
      return 77;
    }
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("bench_gpu: %s, %d SMs, %.0f MB L2, %.1f GB; %d timed launches per case%s\n",
                prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6, prop.totalGlobalMem / 1e9,
                iters, quick ? " (quick)" : "");
    const bool have_hone = ops::gemm_backend_available(ops::GemmBackend::hone);
    if (!have_hone) std::printf("bench_gpu: hone's GEMM kernel is not compiled in; cuBLAS only\n");

    std::vector<GemmRow> gemms;
    std::printf("%-14s %-24s %-6s %10s %10s %7s %10s\n", "gemm", "m×n×k", "layout", "hone", "cuBLAS",
                "ratio", "rel.diff");
    for (const GemmCase& gc : kGemmCases) {
      if (quick && !gc.quick) continue;
      gemms.push_back(bench_gemm(gc, warmup, iters));
      const GemmRow& r = gemms.back();
      const std::string shape = cat(gc.m, "×", gc.n, "×", gc.k);
      std::printf("%-14s %-24s %-6s %10s %10.1f %7s %10s  TFLOP/s\n", gc.name, shape.c_str(),
                  r.layout().c_str(), r.hone ? num(r.tflops(*r.hone)).c_str() : "-",
                  r.tflops(*r.cublas), r.hone ? num(r.tflops(*r.hone) / r.tflops(*r.cublas)).c_str() : "-",
                  r.rel_diff ? num(*r.rel_diff).c_str() : "-");
      std::fflush(stdout);
    }
    ops::set_gemm_backend(ops::default_gemm_backend());

    // The cuDNN baseline: compiled in with the cuDNN frontend, and created here so that a cuDNN
    // that cannot load or is too old is reported once and leaves hone's figures standing.
    std::unique_ptr<CudnnBaseline> cudnn;
    std::string cudnn_status = "not compiled in (no cuDNN frontend headers at configure time)";
#ifdef HONE_WITH_CUDNN_ATTENTION
    cudnn_status = "off (--no-cudnn)";
    if (use_cudnn) {
      try {
        cudnn = std::make_unique<CudnnBaseline>();
        cudnn_status = cudnn->version();
      } catch (const std::exception& e) {
        cudnn_status = cat("unavailable: ", e.what());
      }
    }
#else
    (void)use_cudnn;
#endif
    std::printf("attention baseline: %s\n", cudnn_status.c_str());
    std::vector<AttentionRow> attns;
    std::printf("%-26s %-16s %9s %9s %16s %16s %9s  TFLOP/s (hone/cuDNN)\n", "attention",
                "batch×seq×heads", "forward", "backward", "cuDNN fwd", "cuDNN bwd", "rel.diff");
    for (const AttentionCase& ac : attention_cases()) {
      if (quick && !ac.quick) continue;
      attns.push_back(bench_attention(ac, warmup, iters, cudnn.get()));
      const AttentionRow& r = attns.back();
      const std::string shape = cat(ac.batch(), "×", ac.seq, "×", ac.heads());
      auto with_ratio = [](std::optional<double> c, double h) {
        if (!c) return std::string("-");
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.1f (%.2f)", *c, h / *c);
        return std::string(buf);
      };
      std::printf("%-26s %-16s %9.1f %9.1f %16s %16s %9s\n", ac.name().c_str(), shape.c_str(),
                  r.fwd_tflops(), r.bwd_tflops(), with_ratio(r.cudnn_fwd_tflops(), r.fwd_tflops()).c_str(),
                  with_ratio(r.cudnn_bwd_tflops(), r.bwd_tflops()).c_str(),
                  r.rel_diff ? num(*r.rel_diff).c_str() : "-");
      if (!r.cudnn_error.empty()) std::printf("  cuDNN: %s\n", r.cudnn_error.c_str());
      std::fflush(stdout);
    }
    double cudnn_build_s = 0.0;
#ifdef HONE_WITH_CUDNN_ATTENTION
    if (cudnn) {
      cudnn_build_s = cudnn->build_seconds();
      std::printf("cuDNN: %zu graphs built in %.1f s (outside the timed launches)\n", cudnn->cached_graphs(),
                  cudnn_build_s);
    }
#endif

    std::vector<BandwidthRow> bws;
    for (const BandwidthCase& bc : bandwidth_cases(quick)) {
      double bytes = 0;
      const auto launch = bc.setup(bytes);
      const cudaStream_t stream = cuda::current_stream(0);
      const Timing t = time_launches([&] { launch(stream); }, stream, warmup, iters);
      bws.push_back({bc.name, bc.what, bytes, t});
      std::printf("%-14s %8.2f GB moved %37.0f GB/s (read + write)\n", bc.name.c_str(), bytes / 1e9,
                  bws.back().gbps());
    }

    if (!json_path.empty()) {
      std::string j = cat("{\"benchmark\": \"gpu\", \"device\": {\"name\": \"", prop.name,
                          "\", \"sm_count\": ", prop.multiProcessorCount, ", \"l2_bytes\": ",
                          prop.l2CacheSize, ", \"memory_bytes\": ", prop.totalGlobalMem,
                          ", \"cc\": \"", prop.major, ".", prop.minor, "\"}, \"quick\": ",
                          quick ? "true" : "false", ", \"iters\": ", iters,
                          ", \"hone_gemm_kernel\": ", have_hone ? "true" : "false",
                          ", \"attention_baseline\": \"", json_escape(cudnn_status), "\", \"cudnn_available\": ",
                          cudnn ? "true" : "false", ", \"cudnn_build_s\": ", num(cudnn_build_s),
                          ",\n\"gemm\": [\n");
      for (std::size_t i = 0; i < gemms.size(); ++i) {
        const GemmRow& r = gemms[i];
        const double cu = r.tflops(*r.cublas);
        const std::optional<double> ho = r.hone ? std::optional<double>(r.tflops(*r.hone)) : std::nullopt;
        j += cat("  {\"name\": \"", r.c->name, "\", \"what\": \"", r.c->what, "\", \"m\": ", r.c->m,
                 ", \"n\": ", r.c->n, ", \"k\": ", r.c->k, ", \"a_trans\": ", r.c->a_trans ? "true" : "false",
                 ", \"b_trans\": ", r.c->b_trans ? "true" : "false", ", \"layout\": \"", r.layout(),
                 "\", \"out\": \"", dtype_name(r.c->out), "\", \"beta\": ", num(r.c->beta),
                 ", \"hone_tflops\": ", num(ho), ", \"hone_ms\": ", r.hone ? num(r.hone->median_ms) : "null",
                 ", \"hone_ms_min\": ", r.hone ? num(r.hone->min_ms) : "null",
                 ", \"hone_ms_max\": ", r.hone ? num(r.hone->max_ms) : "null",
                 ", \"cublas_tflops\": ", num(cu), ", \"cublas_ms\": ", num(r.cublas->median_ms),
                 ", \"cublas_ms_min\": ", num(r.cublas->min_ms), ", \"cublas_ms_max\": ", num(r.cublas->max_ms),
                 ", \"ratio\": ", ho ? num(*ho / cu) : "null", ", \"rel_diff\": ", num(r.rel_diff), "}",
                 i + 1 < gemms.size() ? ",\n" : "\n");
      }
      j += "],\n\"attention\": [\n";
      for (std::size_t i = 0; i < attns.size(); ++i) {
        const AttentionRow& r = attns[i];
        j += cat("  {\"name\": \"", r.c.name(), "\", \"hd\": ", r.c.hd, ", \"seq\": ", r.c.seq,
                 ", \"batch\": ", r.c.batch(), ", \"heads\": ", r.c.heads(), ", \"causal\": ",
                 r.c.causal ? "true" : "false", ", \"fwd_flop\": ", num(r.c.fwd_flop()),
                 ", \"fwd_ms\": ", num(r.fwd.median_ms), ", \"fwd_ms_min\": ", num(r.fwd.min_ms),
                 ", \"fwd_ms_max\": ", num(r.fwd.max_ms), ", \"fwd_tflops\": ", num(r.fwd_tflops()),
                 ", \"bwd_ms\": ", num(r.bwd.median_ms), ", \"bwd_ms_min\": ", num(r.bwd.min_ms),
                 ", \"bwd_ms_max\": ", num(r.bwd.max_ms), ", \"bwd_tflops\": ", num(r.bwd_tflops()),
                 ", \"rel_diff\": ", num(r.rel_diff));
        // cuDNN's figures of the same run (null without the baseline); ratios are hone / cuDNN.
        auto ms = [](const std::optional<Timing>& t, double Timing::*f) {
          return t ? num((*t).*f) : std::string("null");
        };
        auto ratio = [](double h, const std::optional<double>& c) { return c ? num(h / *c) : std::string("null"); };
        j += cat(", \"cudnn_fwd_ms\": ", ms(r.cudnn_fwd, &Timing::median_ms),
                 ", \"cudnn_fwd_ms_min\": ", ms(r.cudnn_fwd, &Timing::min_ms),
                 ", \"cudnn_fwd_ms_max\": ", ms(r.cudnn_fwd, &Timing::max_ms),
                 ", \"cudnn_fwd_tflops\": ", num(r.cudnn_fwd_tflops()),
                 ", \"cudnn_bwd_ms\": ", ms(r.cudnn_bwd, &Timing::median_ms),
                 ", \"cudnn_bwd_ms_min\": ", ms(r.cudnn_bwd, &Timing::min_ms),
                 ", \"cudnn_bwd_ms_max\": ", ms(r.cudnn_bwd, &Timing::max_ms),
                 ", \"cudnn_bwd_tflops\": ", num(r.cudnn_bwd_tflops()),
                 ", \"fwd_ratio_cudnn\": ", ratio(r.fwd_tflops(), r.cudnn_fwd_tflops()),
                 ", \"bwd_ratio_cudnn\": ", ratio(r.bwd_tflops(), r.cudnn_bwd_tflops()),
                 ", \"cudnn_rel_diff\": ", num(r.cudnn_rel_diff), ", \"cudnn_error\": ",
                 r.cudnn_error.empty() ? std::string("null") : cat("\"", json_escape(r.cudnn_error), "\""),
                 "}", i + 1 < attns.size() ? ",\n" : "\n");
      }
      j += "],\n\"bandwidth\": [\n";
      for (std::size_t i = 0; i < bws.size(); ++i) {
        const BandwidthRow& r = bws[i];
        j += cat("  {\"name\": \"", r.name, "\", \"what\": \"", r.what, "\", \"bytes\": ", num(r.bytes),
                 ", \"ms\": ", num(r.t.median_ms), ", \"ms_min\": ", num(r.t.min_ms), ", \"ms_max\": ",
                 num(r.t.max_ms), ", \"gbps\": ", num(r.gbps()), ", \"of_copy\": ",
                 num(r.gbps() / bws.front().gbps()), "}", i + 1 < bws.size() ? ",\n" : "\n");
      }
      j += "]}\n";
      std::ofstream(json_path) << j;
    }
    // hone and cuBLAS must agree (bf16 inputs, fp32 accumulation: differences of the order of
    // the output rounding).
    for (const GemmRow& r : gemms)
      if (r.rel_diff && !(*r.rel_diff < 2e-2)) {
        std::fprintf(stderr, "bench_gpu: %s: hone and cuBLAS differ by %g (relative)\n", r.c->name,
                     *r.rel_diff);
        return 1;
      }
    // The attention forward against the CPU reference and against cuDNN: bf16 outputs of f32
    // math.
    for (const AttentionRow& r : attns) {
      if (r.rel_diff && !(*r.rel_diff < 2e-2)) {
        std::fprintf(stderr, "bench_gpu: %s: forward differs from engine/cpu by %g (relative)\n",
                     r.c.name().c_str(), *r.rel_diff);
        return 1;
      }
      if (r.cudnn_rel_diff && !(*r.cudnn_rel_diff < 2e-2)) {
        std::fprintf(stderr, "bench_gpu: %s: forward differs from cuDNN's by %g (relative)\n",
                     r.c.name().c_str(), *r.cudnn_rel_diff);
        return 1;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}

// The tensor-core GEMM (kernels/gemm) on a CUDA device: exact agreement with engine/cpu on
// small-integer inputs (ragged shapes, every layout, epilogues, batches, skinny and split-K),
// agreement with cuBLAS on fractional inputs, deterministic split-K, the loaders' fragments
// against the PTX layouts (the same golden check the emulator passes), and a timing against
// cuBLAS printed for the record. The binary exits with the skip code without a device.
#include <catch2/catch.hpp>

#if defined(HONE_WITH_CUDA)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/matmul.h"
#include "cuda/check.h"
#include "hone/dtype.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_probe.h"
#include "support/device.h"

using hone::kernels::GemmParams;
using hone::kernels::GemmType;

namespace {

std::uint16_t bf16_bits(float x) { return hone::to_bf16(x).bits; }
float bf16_value(std::uint16_t b) { return hone::from_bf16(hone::bf16{b}); }

using DeviceBuffer = hone::test::DeviceArray;

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { CUDA_CHECK(cudaStreamCreate(&s)); }
  ~Stream() { cudaStreamDestroy(s); }
};

// A dense problem: op(A) m×k and op(B) k×n stored per the trans flags with ld = the stored
// width, C f32 m×n (ldc = n); batch entries back to back.
struct Problem {
  std::int64_t m, n, k, batch = 1;
  bool a_trans = false, b_trans = false;
  bool integers = true;
  std::vector<std::uint16_t> a, b;
  std::vector<float> c0, bias;  // prior C, bias (f32)

  Problem(std::int64_t m_, std::int64_t n_, std::int64_t k_, bool ta, bool tb, bool ints,
          std::uint64_t seed, std::int64_t batch_ = 1)
      : m(m_), n(n_), k(k_), batch(batch_), a_trans(ta), b_trans(tb), integers(ints) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> small(-4, 4);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    auto value = [&] { return integers ? static_cast<float>(small(rng)) : uniform(rng); };
    a.resize(batch * m * k), b.resize(batch * k * n), c0.resize(batch * m * n), bias.resize(n);
    for (auto& x : a) x = bf16_bits(value());
    for (auto& x : b) x = bf16_bits(value());
    for (auto& x : c0) x = value();
    for (auto& x : bias) x = value();
  }
  std::int64_t lda() const { return a_trans ? m : k; }
  std::int64_t ldb() const { return b_trans ? k : n; }

  // engine/cpu on the bf16 values; then alpha·acc + beta·C + bias in that order.
  std::vector<float> reference(float alpha, float beta, bool with_bias) const {
    std::vector<float> fa(a.size()), fb(b.size()), acc(m * n), out(c0.size());
    for (std::size_t i = 0; i < a.size(); ++i) fa[i] = bf16_value(a[i]);
    for (std::size_t i = 0; i < b.size(); ++i) fb[i] = bf16_value(b[i]);
    hone::cpu::MatmulDims d;
    d.m = m, d.n = n, d.k = k, d.trans_a = a_trans, d.trans_b = b_trans;
    for (std::int64_t e = 0; e < batch; ++e) {
      hone::cpu::matmul<float>(fa.data() + e * m * k, fb.data() + e * k * n, acc.data(), d, 1.0f,
                               0.0f);
      for (std::int64_t i = 0; i < m * n; ++i) {
        float v = alpha * acc[i];
        if (beta != 0.0f) v += beta * c0[e * m * n + i];
        if (with_bias) v += bias[i % n];
        out[e * m * n + i] = v;
      }
    }
    return out;
  }
};

// Runs the GEMM on the device; returns C.
std::vector<float> run_device(const Problem& pr, float alpha, float beta, bool with_bias,
                              int split_k, cudaStream_t stream) {
  DeviceBuffer a(pr.a), b(pr.b), c(pr.c0), bias(pr.bias);
  GemmParams p;
  p.m = pr.m, p.n = pr.n, p.k = pr.k, p.batch = pr.batch;
  p.a = a.get(), p.lda = pr.lda(), p.a_trans = pr.a_trans, p.stride_a = pr.m * pr.k;
  p.b = b.get(), p.ldb = pr.ldb(), p.b_trans = pr.b_trans, p.stride_b = pr.k * pr.n;
  p.c = c.get(), p.ldc = pr.n, p.stride_c = pr.m * pr.n, p.c_type = GemmType::f32;
  p.alpha = alpha, p.beta = beta;
  if (with_bias) p.bias = bias.get(), p.bias_type = GemmType::f32;
  p.split_k = split_k;
  DeviceBuffer ws(hone::kernels::gemm_workspace_bytes(p));
  p.workspace = ws.get(), p.workspace_bytes = ws.bytes();
  hone::kernels::gemm(p, stream);
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return c.to_host<float>();
}

std::size_t mismatches(const std::vector<float>& got, const std::vector<float>& want,
                       double atol, double rtol) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i]))) ++bad;
  return bad;
}

// cuBLAS on the same row-major problem: C (m×n row-major) is Cᵀ column-major = op(B)ᵀ·op(A)ᵀ.
void cublas_gemm(cublasHandle_t h, const Problem& pr, const void* a, const void* b, float* c) {
  const float alpha = 1.0f, beta = 0.0f;
  const cublasOperation_t ob = pr.b_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t oa = pr.a_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasGemmEx(h, ob, oa, static_cast<int>(pr.n), static_cast<int>(pr.m),
                            static_cast<int>(pr.k), &alpha, b, CUDA_R_16BF,
                            static_cast<int>(pr.ldb()), a, CUDA_R_16BF, static_cast<int>(pr.lda()),
                            &beta, c, CUDA_R_32F, static_cast<int>(pr.n), CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

}  // namespace

TEST_CASE("gemm on the device equals engine/cpu exactly on small integers", "[gpu]") {
  Stream stream;
  const std::int64_t shapes[][3] = {{1, 1, 1},     {17, 33, 129}, {129, 17, 33}, {1, 4096, 512},
                                    {16, 200, 1000}, {127, 129, 255}, {300, 520, 1024}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const auto& s : shapes) {
        const Problem pr(s[0], s[1], s[2], ta, tb, true, s[0] + 7 * s[1] + 31 * s[2]);
        for (int split : {0, 1, 3}) {
          const auto got = run_device(pr, 2.0f, -0.5f, true, split, stream.s);
          INFO("m " << s[0] << " n " << s[1] << " k " << s[2] << " a_trans " << ta << " b_trans "
                    << tb << " split " << split);
          REQUIRE(got == pr.reference(2.0f, -0.5f, true));
        }
      }
  const Problem batched(40, 72, 96, true, false, true, 5, 3);
  REQUIRE(run_device(batched, 1.0f, 1.0f, false, 0, stream.s) == batched.reference(1.0f, 1.0f, false));
}

TEST_CASE("gemm split-K on the device is deterministic", "[gpu]") {
  Stream stream;
  const Problem pr(4, 1000, 8192, false, true, false, 11);
  const auto first = run_device(pr, 1.0f, 0.0f, false, 8, stream.s);
  for (int i = 0; i < 3; ++i) REQUIRE(run_device(pr, 1.0f, 0.0f, false, 8, stream.s) == first);
  REQUIRE(mismatches(first, pr.reference(1.0f, 0.0f, false), 1e-3, 1e-3) == 0);
}

TEST_CASE("gemm agrees with cuBLAS on fractional inputs", "[gpu]") {
  Stream stream;
  cublasHandle_t h;
  CUBLAS_CHECK(cublasCreate(&h));
  CUBLAS_CHECK(cublasSetStream(h, stream.s));
  const std::int64_t shapes[][3] = {{1, 4096, 4096}, {8, 11008, 4096}, {512, 768, 1024},
                                    {1000, 1000, 1000}, {2048, 2048, 2048}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const auto& s : shapes) {
        const Problem pr(s[0], s[1], s[2], ta, tb, false, 3);
        const auto got = run_device(pr, 1.0f, 0.0f, false, 0, stream.s);
        DeviceBuffer a(pr.a), b(pr.b), c(pr.m * pr.n * sizeof(float));
        cublas_gemm(h, pr, a.get(), b.get(), static_cast<float*>(c.get()));
        CUDA_CHECK(cudaStreamSynchronize(stream.s));
        const auto want = c.to_host<float>();
        INFO("m " << s[0] << " n " << s[1] << " k " << s[2] << " a_trans " << ta << " b_trans "
                  << tb);
        // Both accumulate in f32 in different orders: |error| grows like sqrt(k)·ε·|terms|.
        REQUIRE(mismatches(got, want, 1e-4 * std::sqrt(static_cast<double>(s[2])), 1e-3) == 0);
      }
  cublasDestroy(h);
}

TEST_CASE("gemm loaders hand mma the PTX fragment layouts on the device", "[gpu]") {
  using D = hone::kernels::GemmFragmentDump;
  std::vector<std::uint16_t> a(D::kM * D::kK), b(D::kK * D::kN);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint16_t>(i + 1);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint16_t>(0x8000u + i);
  const auto want = hone::kernels::expected_gemm_fragments(a, b);
  Stream stream;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      std::vector<std::uint16_t> sa(a.size()), sb(b.size());
      for (int m = 0; m < D::kM; ++m)
        for (int k = 0; k < D::kK; ++k) sa[ta ? k * D::kM + m : m * D::kK + k] = a[m * D::kK + k];
      for (int k = 0; k < D::kK; ++k)
        for (int n = 0; n < D::kN; ++n) sb[tb ? n * D::kK + k : k * D::kN + n] = b[k * D::kN + n];
      DeviceBuffer da(sa), db(sb), out(D::kTotal * sizeof(std::uint32_t));
      hone::kernels::gemm_dump_fragments(da.get(), ta, db.get(), tb,
                                         static_cast<std::uint32_t*>(out.get()), stream.s);
      CUDA_CHECK(cudaStreamSynchronize(stream.s));
      INFO("a_trans " << ta << " b_trans " << tb);
      REQUIRE(out.to_host<std::uint32_t>() == want);
    }
}

TEST_CASE("gemm speed against cuBLAS (printed)", "[gpu]") {
  Stream stream;
  cublasHandle_t h;
  CUBLAS_CHECK(cublasCreate(&h));
  CUBLAS_CHECK(cublasSetStream(h, stream.s));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  const std::int64_t shapes[][3] = {{8192, 8192, 8192}, {4096, 4096, 4096}, {1, 4096, 4096}};
  for (const auto& s : shapes) {
    const Problem pr(s[0], s[1], s[2], false, true, false, 1);
    DeviceBuffer a(pr.a), b(pr.b), c(pr.m * pr.n * sizeof(float)), ref(c.bytes());
    GemmParams p;
    p.m = pr.m, p.n = pr.n, p.k = pr.k, p.b_trans = true;
    p.a = a.get(), p.lda = pr.k, p.b = b.get(), p.ldb = pr.k, p.c = c.get(), p.ldc = pr.n;
    DeviceBuffer ws(hone::kernels::gemm_workspace_bytes(p));
    p.workspace = ws.get(), p.workspace_bytes = ws.bytes();
    auto time_ms = [&](auto&& fn) {
      fn();  // warm-up
      CUDA_CHECK(cudaEventRecord(start, stream.s));
      constexpr int kReps = 5;
      for (int i = 0; i < kReps; ++i) fn();
      CUDA_CHECK(cudaEventRecord(stop, stream.s));
      CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      return ms / kReps;
    };
    const float ours = time_ms([&] { hone::kernels::gemm(p, stream.s); });
    const float theirs =
        time_ms([&] { cublas_gemm(h, pr, a.get(), b.get(), static_cast<float*>(ref.get())); });
    const double flop = 2.0 * s[0] * s[1] * s[2];
    std::printf("gemm %lldx%lldx%lld (b_trans): hone %.1f TFLOP/s, cuBLAS %.1f TFLOP/s (%.0f%%)\n",
                static_cast<long long>(s[0]), static_cast<long long>(s[1]),
                static_cast<long long>(s[2]), flop / ours * 1e-9, flop / theirs * 1e-9,
                100.0 * theirs / ours);
    // The timed outputs agree (the figures are of correct products).
    CHECK(mismatches(c.to_host<float>(), ref.to_host<float>(),
                     1e-4 * std::sqrt(static_cast<double>(s[2])), 1e-3) == 0);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cublasDestroy(h);
}

#endif  // HONE_WITH_CUDA

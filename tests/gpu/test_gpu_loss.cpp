// Cross-entropy kernels on a CUDA device against engine/cpu/loss, at a real vocabulary size
// (not a multiple of the chunk), bf16 logits, fused and separate backward, and bitwise
// repeatability. Skipped without a device.
#include <catch2/catch.hpp>

#ifdef HONE_WITH_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cpu/loss.h"
#include "cuda/runtime.h"
#include "support/device.h"
#include "hone/dtype.h"
#include "kernels/loss/loss.h"
#include "support/tolerance.h"

using namespace hone;
using test::DeviceBuffer;
using test::DeviceCopy;
using test::sync;

namespace {

}  // namespace

TEST_CASE("cross entropy on the device matches the CPU reference", "[gpu][loss]") {
  const std::int64_t rows = 67, vocab = 50257;  // vocab not a multiple of the 2048-logit chunk
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> xd(-6.0f, 6.0f), wd(0.5f, 1.5f);
  std::uniform_int_distribution<std::int64_t> td(0, vocab - 1);
  std::vector<std::uint16_t> xb(rows * vocab);
  std::vector<float> x(rows * vocab);
  for (std::size_t i = 0; i < x.size(); ++i) {
    xb[i] = to_bf16(xd(rng)).bits;
    x[i] = from_bf16(bf16{xb[i]});
  }
  std::vector<std::int64_t> t(rows);
  std::vector<float> w(rows), g(rows);
  for (std::int64_t n = 0; n < rows; ++n) {
    t[n] = n % 9 == 4 ? -100 : td(rng);
    w[n] = wd(rng);
    g[n] = 1.0f / rows;
  }
  DeviceBuffer dx(xb.size() * 2), dt(rows * 8), dw(rows * 4), dg(rows * 4), dloss(rows * 4),
      dlse(rows * 4), dgrad(xb.size() * 2), dfused(xb.size() * 2);
  dx.upload(xb);
  dt.upload(t);
  dw.upload(w);
  dg.upload(g);
  kernels::CrossEntropyParams p;
  p.rows = rows;
  p.vocab = vocab;
  p.logits = dx.ptr;
  p.targets = dt.ptr;
  p.weights = dw.as<float>();
  p.losses = dloss.as<float>();
  p.lse = dlse.as<float>();
  p.dlosses = dg.as<float>();
  kernels::cross_entropy_fwd(p, nullptr);
  p.dlogits = dgrad.ptr;
  kernels::cross_entropy_bwd(p, nullptr);
  sync();
  const std::vector<float> losses = dloss.download<float>(rows), lse = dlse.download<float>(rows);
  const std::vector<std::uint16_t> grad = dgrad.download<std::uint16_t>(xb.size());

  std::vector<float> want_loss(rows), want_lse(rows), want_grad(x.size());
  cpu::cross_entropy_fwd<float, std::int64_t>(x.data(), t.data(), w.data(), rows, vocab, -100,
                                              want_loss.data(), want_lse.data());
  cpu::cross_entropy_bwd<float, std::int64_t>(g.data(), x.data(), t.data(), lse.data(), w.data(),
                                              rows, vocab, -100, want_grad.data());
  const test::Tolerance fwd{5e-5, 5e-5};
  CHECK(test::compare(std::vector<double>(lse.begin(), lse.end()),
                      std::vector<double>(want_lse.begin(), want_lse.end()), fwd) == "");
  CHECK(test::compare(std::vector<double>(losses.begin(), losses.end()),
                      std::vector<double>(want_loss.begin(), want_loss.end()), fwd) == "");
  std::vector<double> got_grad(grad.size()), ref_grad(grad.size());
  for (std::size_t i = 0; i < grad.size(); ++i) {
    got_grad[i] = from_bf16(bf16{grad[i]});
    ref_grad[i] = from_bf16(to_bf16(want_grad[i]));
  }
  CHECK(test::compare(got_grad, ref_grad, {1e-9, 8e-3}) == "");

  // The fused forward writes the same gradient; a second run gives the same bits.
  p.dlogits = dfused.ptr;
  kernels::cross_entropy_fwd(p, nullptr);
  sync();
  CHECK(dfused.download<std::uint16_t>(xb.size()) == grad);
  CHECK(dloss.download<float>(rows) == losses);
  CHECK(dlse.download<float>(rows) == lse);
}
#endif

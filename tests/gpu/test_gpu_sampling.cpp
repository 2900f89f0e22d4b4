// The sampling kernel on a CUDA device draws the CPU reference's tokens at a real vocabulary
// size (bf16 logits), for greedy, temperature, top-k and top-p, over several steps. Skipped
// without a device.
#include <catch2/catch.hpp>

#ifdef HONE_WITH_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/runtime.h"
#include "support/device.h"
#include "hone/dtype.h"

#include "cpu/sampling.h"
#include "kernels/sampling/sampling.h"

using namespace hone;
using test::DeviceBuffer;
using test::DeviceCopy;
using test::sync;

namespace {

}  // namespace

TEST_CASE("sampling on the device draws the CPU reference's tokens", "[gpu][sampling]") {
  const std::int64_t rows = 16, vocab = 128256;
  std::mt19937_64 rng(8);
  std::normal_distribution<float> val(0.0f, 3.0f);
  std::vector<std::uint16_t> xb(rows * vocab);
  std::vector<float> x(xb.size());
  for (std::size_t i = 0; i < xb.size(); ++i) {
    xb[i] = to_bf16(val(rng)).bits;
    x[i] = from_bf16(bf16{xb[i]});
  }
  DeviceBuffer d_x(xb.size() * 2), d_out(rows * 8);
  d_x.upload(xb);
  struct Config {
    double temperature;
    std::int64_t top_k;
    double top_p;
  };
  for (const Config& c : {Config{0.0, 0, 1.0}, Config{1.0, 0, 1.0}, Config{0.7, 50, 1.0},
                          Config{1.0, 0, 0.9}, Config{0.8, 1000, 0.95}}) {
    for (std::uint64_t step = 0; step < 4; ++step) {
      CAPTURE(c.temperature, c.top_k, c.top_p, step);
      kernels::SampleParams p;
      p.rows = rows;
      p.vocab = vocab;
      p.logits = d_x.ptr;
      p.out = d_out.as<std::int64_t>();
      p.temperature = c.temperature;
      p.top_k = c.top_k;
      p.top_p = c.top_p;
      p.seed = 99;
      p.offset = step * 4;
      kernels::sample(p, nullptr);
      sync();
      cpu::SampleConfig sc;
      sc.greedy = c.temperature == 0.0;
      sc.inv_temperature = sc.greedy ? 1.0f : cpu::sampling_inv_temperature(c.temperature);
      sc.top_k = c.top_k;
      sc.top_p = cpu::sampling_top_p_fixed(c.top_p);
      sc.seed = 99;
      sc.offset = step * 4;
      std::vector<std::int64_t> want(rows);
      cpu::sample<float>(x.data(), rows, vocab, sc, want.data());
      CHECK(d_out.download<std::int64_t>(rows) == want);
    }
  }
}
#endif

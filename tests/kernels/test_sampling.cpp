// The sampling kernel under the emulator draws exactly the tokens engine/cpu/sampling draws:
// ragged vocabularies and row counts, bf16 and f32 logits with ties, −inf and NaN entries,
// greedy, temperature, top-k, top-p and both; bit-identical under the fwd/rev/rand schedules.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "cpu/sampling.h"
#include "hone/dtype.h"
#include "kernels/emu/emu.h"
#include "kernels/sampling/sampling.h"

using namespace hone;
using hone::emu::Schedule;
using kernels::SampleLogitsType;

namespace {

const Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};

struct Config {
  double temperature;
  std::int64_t top_k;
  double top_p;
};

// Logits with ties (values on a coarse grid), a few −inf and one NaN per row after the first.
std::vector<float> make_logits(std::int64_t rows, std::int64_t vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(-40, 40);
  std::vector<float> x(static_cast<std::size_t>(rows * vocab));
  for (std::int64_t i = 0; i < rows * vocab; ++i) x[i] = 0.125f * static_cast<float>(d(rng));
  for (std::int64_t r = 1; r < rows && vocab > 3; ++r) {
    x[r * vocab + 1] = -std::numeric_limits<float>::infinity();
    x[r * vocab + vocab - 1] = std::numeric_limits<float>::quiet_NaN();
  }
  if (rows > 2) for (std::int64_t v = 0; v < vocab; ++v) x[2 * vocab + v] = -0.0f;  // all tied
  return x;
}

std::vector<std::int64_t> cpu_sample(const std::vector<float>& x, std::int64_t rows,
                                     std::int64_t vocab, const Config& c, std::uint64_t seed,
                                     std::uint64_t offset) {
  cpu::SampleConfig sc;
  sc.greedy = c.temperature == 0.0;
  sc.inv_temperature = sc.greedy ? 1.0f : cpu::sampling_inv_temperature(c.temperature);
  sc.top_k = c.top_k;
  sc.top_p = cpu::sampling_top_p_fixed(c.top_p);
  sc.seed = seed;
  sc.offset = offset;
  std::vector<std::int64_t> out(static_cast<std::size_t>(rows), -1);
  cpu::sample<float>(x.data(), rows, vocab, sc, out.data());
  return out;
}

std::vector<std::int64_t> kernel_sample(const void* logits, SampleLogitsType type,
                                        std::int64_t rows, std::int64_t vocab, const Config& c,
                                        std::uint64_t seed, std::uint64_t offset) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(rows), -1);
  kernels::SampleParams p;
  p.rows = rows;
  p.vocab = vocab;
  p.logits = logits;
  p.logits_type = type;
  p.out = out.data();
  p.temperature = c.temperature;
  p.top_k = c.top_k;
  p.top_p = c.top_p;
  p.seed = seed;
  p.offset = offset;
  kernels::sample(p, nullptr);
  return out;
}

}  // namespace

TEST_CASE("emu sampling draws the CPU reference's tokens", "[emu][sampling]") {
  const std::vector<Config> configs = {{0.0, 0, 1.0},  {1.0, 0, 1.0},  {0.6, 1, 1.0},
                                       {1.0, 5, 1.0},  {2.0, 0, 0.5},  {0.8, 40, 0.9},
                                       {1.3, 3, 0.3}};
  struct Shape {
    std::int64_t rows, vocab;
  };
  const std::vector<Shape> shapes = {{3, 1},   {5, 31},  {4, 32},   {6, 33},
                                     {3, 127}, {4, 128}, {33, 129}, {3, 3001}};
  for (const Shape& s : shapes) {
    const std::vector<float> x = make_logits(s.rows, s.vocab, 50 + s.vocab);
    std::vector<std::uint16_t> xb(x.size());
    std::vector<float> xb_values(x.size());  // what the CPU sees for bf16 logits
    for (std::size_t i = 0; i < x.size(); ++i) {
      xb[i] = to_bf16(x[i]).bits;
      xb_values[i] = from_bf16(bf16{xb[i]});
    }
    for (const Config& c : configs) {
      for (SampleLogitsType type : {SampleLogitsType::f32, SampleLogitsType::bf16}) {
        CAPTURE(s.rows, s.vocab, c.temperature, c.top_k, c.top_p, static_cast<int>(type));
        const bool f32 = type == SampleLogitsType::f32;
        const std::uint64_t seed = 77 + s.vocab, offset = 3;
        const std::vector<std::int64_t> want =
            cpu_sample(f32 ? x : xb_values, s.rows, s.vocab, c, seed, offset);
        for (Schedule sch : kSchedules) {
          hone::emu::ScopedSchedule scoped(sch, 13);
          const void* logits = f32 ? static_cast<const void*>(x.data()) : xb.data();
          REQUIRE(kernel_sample(logits, type, s.rows, s.vocab, c, seed, offset) == want);
        }
      }
    }
  }
}

TEST_CASE("emu sampling over many steps matches the CPU at every step", "[emu][sampling]") {
  // A peaked row where top-p and top-k cut inside runs of equal weights.
  const std::int64_t rows = 9, vocab = 200;
  std::vector<float> x = make_logits(rows, vocab, 4);
  for (std::int64_t v = 0; v < vocab; v += 7) x[v] = 3.0f;
  const Config c{0.9, 25, 0.8};
  std::int64_t distinct = 0;
  std::vector<std::int64_t> previous;
  for (std::uint64_t step = 0; step < 12; ++step) {
    const std::uint64_t offset = step * ((rows + 3) / 4);
    const std::vector<std::int64_t> want = cpu_sample(x, rows, vocab, c, 5, offset);
    const std::vector<std::int64_t> got =
        kernel_sample(x.data(), SampleLogitsType::f32, rows, vocab, c, 5, offset);
    REQUIRE(got == want);
    distinct += got != previous;
    previous = got;
  }
  CHECK(distinct > 6);  // the draws do move between steps
}

TEST_CASE("emu sampling needs its barriers (mutation)", "[emu][sampling]") {
  const std::int64_t rows = 4, vocab = 600;
  const std::vector<float> x = make_logits(rows, vocab, 8);
  const Config c{1.0, 30, 0.7};
  const std::vector<std::int64_t> want = cpu_sample(x, rows, vocab, c, 1, 0);
  hone::emu::ScopedSchedule scoped(Schedule::rev);
  for (const char* barrier : {"sample.hist_count", "sample.slices"}) {
    CAPTURE(barrier);
    hone::emu::disable_barrier(barrier);
    const std::vector<std::int64_t> got =
        kernel_sample(x.data(), SampleLogitsType::f32, rows, vocab, c, 1, 0);
    hone::emu::enable_all_barriers();
    CHECK(got != want);
  }
}

TEST_CASE("emu sampling rejects bad parameters", "[emu][sampling]") {
  float x[4] = {};
  std::int64_t out[1];
  kernels::SampleParams p;
  p.rows = 1;
  p.vocab = 4;
  p.logits = x;
  p.out = out;
  p.temperature = -0.5;
  CHECK_THROWS_WITH(kernels::sample(p, nullptr), Catch::Contains("temperature = -0.5"));
  p.temperature = 1.0;
  p.top_p = 0.0;
  CHECK_THROWS_WITH(kernels::sample(p, nullptr), Catch::Contains("top_p = 0"));
  p.top_p = 1.0;
  p.top_k = -1;
  CHECK_THROWS_WITH(kernels::sample(p, nullptr), Catch::Contains("top_k = -1"));
  p.top_k = 0;
  p.vocab = 0;
  CHECK_THROWS_WITH(kernels::sample(p, nullptr), Catch::Contains("vocab = 0"));
}

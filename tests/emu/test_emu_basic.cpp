// Emulator basics: vector add over ragged sizes, shared-memory reduction, warp shuffles,
// votes and atomics, each under the fwd, rev and rand schedules.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/emu/emu.h"

namespace hone::kernels::emu_test {
void run_vector_add(const float* a, const float* b, float* c, int n);
void run_block_sum(const float* x, float* out, int n, int threads);
void run_warp_sum(const int* x, int* out_xor, int* out_down, int* prefix, int* broadcast, int n);
void run_vote(const int* x, unsigned* ballot, int* any, int* all, int n);
void run_atomic(int* count, float* sum, int* max_index, int n);
void run_shared_count(int* out, int blocks, int threads);
}  // namespace hone::kernels::emu_test

using namespace hone::kernels::emu_test;
using hone::emu::Schedule;

namespace {
const Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
}  // namespace

TEST_CASE("emu vector add over ragged sizes", "[emu]") {
  for (Schedule sch : kSchedules) {
    hone::emu::ScopedSchedule scoped(sch, 7);
    for (int n : {1, 31, 32, 33, 127, 128, 129}) {
      std::vector<float> a(n), b(n), c(n + 1, kNaN);
      for (int i = 0; i < n; ++i) {
        a[i] = 0.25f * i;
        b[i] = 3.0f - i;
      }
      run_vector_add(a.data(), b.data(), c.data(), n);
      for (int i = 0; i < n; ++i) REQUIRE(c[i] == a[i] + b[i]);
      CHECK(std::isnan(c[n]));  // nothing written past the end
    }
  }
}

TEST_CASE("emu block reduction through shared memory", "[emu]") {
  const int n = 300, threads = 64, blocks = (n + threads - 1) / threads;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i % 17 - 5);
  for (Schedule sch : kSchedules) {
    hone::emu::ScopedSchedule scoped(sch, 11);
    std::vector<float> out(blocks, kNaN);
    run_block_sum(x.data(), out.data(), n, threads);
    for (int b = 0; b < blocks; ++b) {
      float want = 0;
      for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) want += x[i];
      REQUIRE(out[b] == want);
    }
  }
}

TEST_CASE("emu warp shuffle reductions and scans", "[emu]") {
  const int n = 128;
  std::vector<int> x(n);
  for (int i = 0; i < n; ++i) x[i] = (i * 7) % 13 - 4;
  for (Schedule sch : kSchedules) {
    hone::emu::ScopedSchedule scoped(sch, 3);
    std::vector<int> sx(n / 32, -999), sd(n / 32, -999), prefix(n, -999), bc(n, -999);
    run_warp_sum(x.data(), sx.data(), sd.data(), prefix.data(), bc.data(), n);
    for (int w = 0; w < n / 32; ++w) {
      int sum = 0;
      for (int l = 0; l < 32; ++l) {
        sum += x[w * 32 + l];
        REQUIRE(prefix[w * 32 + l] == sum);
        REQUIRE(bc[w * 32 + l] == x[w * 32 + 7]);
      }
      REQUIRE(sx[w] == sum);
      REQUIRE(sd[w] == sum);
    }
  }
}

TEST_CASE("emu ballot any and all", "[emu]") {
  const int n = 128;
  std::vector<int> x(n, 1);
  for (int l = 0; l < 32; ++l) x[32 + l] = (l % 3 == 0) ? 1 : 0;  // warp 1: mixed
  for (int l = 0; l < 32; ++l) x[64 + l] = 0;                     // warp 2: none
  x[96 + 31] = -1;                                                // warp 3: all but lane 31
  std::vector<unsigned> ballot(4, 0);
  std::vector<int> any(4, -1), all(4, -1);
  run_vote(x.data(), ballot.data(), any.data(), all.data(), n);
  unsigned mixed = 0;
  for (int l = 0; l < 32; l += 3) mixed |= 1u << l;
  CHECK(ballot[0] == 0xffffffffu);
  CHECK(ballot[1] == mixed);
  CHECK(ballot[2] == 0u);
  CHECK(ballot[3] == 0x7fffffffu);
  CHECK(any == std::vector<int>{1, 1, 0, 1});
  CHECK(all == std::vector<int>{1, 0, 0, 0});
}

TEST_CASE("emu atomics across blocks", "[emu]") {
  const int n = 200;
  int count = 0, max_index = -1;
  float sum = 0.0f;
  run_atomic(&count, &sum, &max_index, n);
  CHECK(count == n);
  CHECK(sum == 0.5f * n);
  CHECK(max_index == n - 1);
}

TEST_CASE("emu static shared memory and shared atomics per block", "[emu]") {
  for (Schedule sch : kSchedules) {
    hone::emu::ScopedSchedule scoped(sch, 9);
    std::vector<int> out(4, -1);
    run_shared_count(out.data(), 4, 96);
    CHECK(out == std::vector<int>{96, 96, 96, 96});
  }
}

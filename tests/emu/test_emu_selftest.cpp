// The emulator's self-tests: it must catch the bugs it claims to catch (missing and divergent
// barriers, early exits at a barrier, missing shuffle lanes, missing cp.async waits).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "hone/error.h"
#include "kernels/emu/emu.h"

namespace hone::kernels::emu_test {
void run_rotate(const float* in, float* out, int blocks, int threads, bool sync);
void run_divergent_barrier(int* out);
void run_early_exit(int* out);
void run_missing_lane(int* out);
void run_exited_lane(int* out);
void run_cp_async(const float* in, float* out, int threads, int wait);
}  // namespace hone::kernels::emu_test

using namespace hone::kernels::emu_test;
using hone::emu::Schedule;

namespace {

constexpr int kBlocks = 3, kThreads = 64;

std::vector<float> rotate(Schedule sch, bool sync) {
  hone::emu::ScopedSchedule scoped(sch, 5);
  std::vector<float> in(kBlocks * kThreads), out(in.size(), -1.0f);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
  run_rotate(in.data(), out.data(), kBlocks, kThreads, sync);
  return out;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool correct_rotation(const std::vector<float>& out) {
  for (int b = 0; b < kBlocks; ++b)
    for (int t = 0; t < kThreads; ++t)
      if (out[b * kThreads + t] != static_cast<float>(b * kThreads + (t + 1) % kThreads))
        return false;
  return true;
}

std::string error_of(void (*fn)(int*), int n) {
  std::vector<int> out(n, 0);
  try {
    fn(out.data());
  } catch (const hone::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("emu correct kernel is identical under all schedules", "[emu]") {
  const auto f = rotate(Schedule::fwd, true);
  CHECK(correct_rotation(f));
  CHECK(bit_equal(f, rotate(Schedule::rev, true)));
  CHECK(bit_equal(f, rotate(Schedule::rand, true)));
}

TEST_CASE("emu missing barrier gives schedule dependent results", "[emu]") {
  const auto f = rotate(Schedule::fwd, false);
  const auto r = rotate(Schedule::rev, false);
  const auto x = rotate(Schedule::rand, false);
  CHECK_FALSE(bit_equal(f, r));
  CHECK_FALSE(bit_equal(f, x));
  CHECK_FALSE(correct_rotation(f));
  CHECK(std::isnan(f[0]));  // thread 0 read thread 1's slot before it was written (poison)
}

TEST_CASE("emu disabled barrier turns a correct kernel incorrect", "[emu]") {
  hone::emu::disable_barrier("rotate");
  const auto f = rotate(Schedule::fwd, true);
  hone::emu::enable_all_barriers();
  CHECK_FALSE(correct_rotation(f));
  CHECK(correct_rotation(rotate(Schedule::fwd, true)));
  hone::emu::disable_barrier("selftest.cu:13");  // the same barrier by file:line
  const auto g = rotate(Schedule::fwd, true);
  hone::emu::enable_all_barriers();
  CHECK(bit_equal(f, g));
  hone::emu::disable_barrier("no_such_barrier");
  CHECK(correct_rotation(rotate(Schedule::fwd, true)));
  hone::emu::enable_all_barriers();
}

TEST_CASE("emu divergent barrier names both sites", "[emu]") {
  const std::string e = error_of(run_divergent_barrier, 8);
  INFO(e);
  CHECK(e.find("divergent __syncthreads") != std::string::npos);
  CHECK(e.find("selftest.cu:19") != std::string::npos);
  CHECK(e.find("selftest.cu:21") != std::string::npos);
  // The failed block was torn down: the next launch runs normally.
  CHECK(correct_rotation(rotate(Schedule::rand, true)));
}

TEST_CASE("emu thread exit while others wait at a barrier", "[emu]") {
  for (Schedule sch : {Schedule::fwd, Schedule::rev}) {
    hone::emu::ScopedSchedule scoped(sch);
    const std::string e = error_of(run_early_exit, 8);
    INFO(e);
    CHECK(e.find("exited while") != std::string::npos);
    CHECK(e.find("selftest.cu:28") != std::string::npos);
  }
}

TEST_CASE("emu shuffle with a missing lane raises", "[emu]") {
  const std::string e = error_of(run_missing_lane, 64);
  INFO(e);
  CHECK(e.find("deadlock") != std::string::npos);
  CHECK(e.find("__shfl_xor_sync") != std::string::npos);
  CHECK(e.find("threads 5-5 (warp 0): at __syncthreads selftest.cu:35") != std::string::npos);
}

TEST_CASE("emu exited lanes drop out of a shuffle", "[emu]") {
  std::vector<int> out(32, -1);
  run_exited_lane(out.data());
  for (int l = 0; l < 32; ++l) {
    if (l == 5) {
      CHECK(out[l] == -1);
    } else if ((l ^ 2) == 5) {
      CHECK(out[l] == l);  // source exited: own value
    } else {
      CHECK(out[l] == (l ^ 2));
    }
  }
}

TEST_CASE("emu missing cp.async wait reads poisoned data", "[emu]") {
  const int threads = 16;
  std::vector<float> in(4 * threads);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = 1.0f + i;
  for (int wait : {0, 1, 2}) {
    std::vector<float> out(7 * threads, -1.0f);
    run_cp_async(in.data(), out.data(), threads, wait);
    for (int t = 0; t < threads; ++t) {
      for (int j = 0; j < 4; ++j) {
        if (wait == 0) REQUIRE(std::isnan(out[7 * t + j]));
        else REQUIRE(out[7 * t + j] == in[4 * t + j]);
      }
      for (int j = 0; j < 2; ++j) {
        if (wait == 0) REQUIRE(std::isnan(out[7 * t + 4 + j]));
        else REQUIRE(out[7 * t + 4 + j] == in[4 * t + j]);
      }
      if (wait == 2) REQUIRE(out[7 * t + 6] == in[4 * t]);
      else REQUIRE(std::isnan(out[7 * t + 6]));
    }
  }
}

TEST_CASE("emu schedule comes from HONE_EMU_SCHEDULE", "[emu]") {
  // Registered twice by CMake: without the variable (fwd) and with HONE_EMU_SCHEDULE=rand:42.
  const char* env = std::getenv("HONE_EMU_SCHEDULE");
  if (env && std::string(env) == "rand:42") {
    CHECK(hone::emu::schedule() == Schedule::rand);
    CHECK(hone::emu::schedule_seed() == 42u);
  } else if (env == nullptr) {
    CHECK(hone::emu::schedule() == Schedule::fwd);
  }
  const Schedule before = hone::emu::schedule();
  {
    hone::emu::ScopedSchedule scoped(before == Schedule::rev ? Schedule::fwd : Schedule::rev);
    CHECK(hone::emu::schedule() != before);
  }
  CHECK(hone::emu::schedule() == before);
}

// The RoPE kernels (kernels/rope) under the emulator against engine/cpu: ragged token counts and
// head dims (vector and scalar paths), packed-batch positions with restarts and offsets, plain
// and llama3-scaled frequencies, i32/i64 positions, all three schedules with bit-identical
// results, in place, the table barrier is needed, bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/emu/emu.h"
#include "kernels/rope/rope.h"
#include "ops/ops.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;
using hone::emu::Schedule;
using kernels::RopeIndexType;
using kernels::RopeParams;

namespace {

const Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};

std::vector<unsigned char> bytes(const Tensor& t) {
  std::vector<unsigned char> b(t.nbytes());
  std::memcpy(b.data(), t.raw(), b.size());
  return b;
}

using test::bf16_close;

// Positions of a packed batch: sequences of `seq` tokens, each restarting at its own offset.
Tensor packed_positions(std::int64_t tokens, std::int64_t seq, std::int64_t offset, DType type) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(tokens));
  for (std::int64_t t = 0; t < tokens; ++t) p[t] = (t / seq) * offset + t % seq;
  return Tensor::from_vector<std::int64_t>({tokens}, p).to(type);
}

struct Case {
  std::int64_t tokens, heads, head_dim;
  bool llama3;
  DType pos_type;
  std::int64_t seq, offset;  // packed sequences of `seq` tokens, the k-th starting at k · offset
};

ops::RopeArgs rope_args(bool llama3) {
  ops::RopeArgs args;
  if (llama3) {
    args.theta = 500000.0;
    args.scaling.kind = ops::RopeScaling::Kind::llama3;
    args.scaling.factor = 8.0;
    args.scaling.low_freq_factor = 1.0;
    args.scaling.high_freq_factor = 4.0;
    args.scaling.original_max_position = 8192;
  }
  return args;
}

RopeParams params(const Tensor& x, const Tensor& y, const Tensor& pos,
                  const std::vector<double>& inv, const Case& c) {
  RopeParams p;
  p.x = x.raw();
  p.y = y.raw();
  p.positions = pos.raw();
  p.positions_type = pos.dtype() == DType::i32 ? RopeIndexType::i32 : RopeIndexType::i64;
  p.inv_freq = inv.data();
  p.tokens = c.tokens;
  p.heads = c.heads;
  p.head_dim = c.head_dim;
  return p;
}

}  // namespace

TEST_CASE("rope kernels match engine/cpu on ragged shapes under every schedule", "[emu]") {
  // head_dim multiple of 16: 16-byte vectors; otherwise the scalar path.
  const std::vector<Case> cases = {
      {1, 1, 2, false, DType::i64, 1, 0},        {31, 3, 64, true, DType::i32, 10, 3},
      {32, 2, 128, false, DType::i64, 32, 0},    {33, 1, 6, true, DType::i64, 7, 9000},
      {127, 2, 16, false, DType::i32, 50, 1000}, {128, 4, 32, true, DType::i64, 64, 30000},
      {129, 2, 34, false, DType::i64, 40, 5},    {130, 8, 128, true, DType::i32, 100, 131000},
      {3, 40, 256, false, DType::i64, 2, 7},     {20, 3, 96, true, DType::i64, 6, 100000},
  };
  for (const Case& c : cases) {
    INFO("tokens " << c.tokens << " heads " << c.heads << " head_dim " << c.head_dim
                   << (c.llama3 ? " llama3" : ""));
    const ops::RopeArgs args = rope_args(c.llama3);
    const std::vector<double> inv = ops::rope_inv_freq(c.head_dim, args);
    const Shape shape = {c.tokens, c.heads, c.head_dim};
    const Tensor x = test::random_tensor(shape, DType::bf16, 10 + c.tokens);
    const Tensor pos = packed_positions(c.tokens, c.seq, c.offset, c.pos_type);

    for (bool backward : {false, true}) {
      INFO((backward ? "backward" : "forward"));
      const Tensor ref = Tensor::empty(shape, DType::f32);
      if (backward)
        ops::rope_bwd(x.to(DType::f32), pos, args, ref);
      else
        ops::rope_fwd(x.to(DType::f32), pos, args, ref);

      std::vector<unsigned char> first;
      Tensor y;
      for (int run = 0; run < 4; ++run) {
        hone::emu::ScopedSchedule scoped(kSchedules[run == 3 ? 0 : run], 9 + run);
        y = test::poisoned(shape, DType::bf16);
        const RopeParams p = params(x, y, pos, inv, c);
        if (backward)
          kernels::rope_bwd(p, nullptr);
        else
          kernels::rope_fwd(p, nullptr);
        if (run == 0)
          first = bytes(y);
        else
          REQUIRE(bytes(y) == first);
      }
      CHECK(bf16_close(y, ref, 1e-6) == "");
    }
  }
}

TEST_CASE("rope kernels: in place, backward undoes forward, scalar path equals vector path",
          "[emu]") {
  const Case c{45, 4, 64, true, DType::i64, 20, 4000};
  const std::vector<double> inv = ops::rope_inv_freq(c.head_dim, rope_args(true));
  const Shape shape = {c.tokens, c.heads, c.head_dim};
  const Tensor x = test::random_tensor(shape, DType::bf16, 3);
  const Tensor pos = packed_positions(c.tokens, c.seq, c.offset, c.pos_type);

  const Tensor y = test::poisoned(shape, DType::bf16);
  kernels::rope_fwd(params(x, y, pos, inv, c), nullptr);
  const Tensor inplace = x.clone();
  kernels::rope_fwd(params(inplace, inplace, pos, inv, c), nullptr);
  CHECK(bytes(inplace) == bytes(y));

  // The backward rotates back: x again up to two bf16 roundings.
  const Tensor back = test::poisoned(shape, DType::bf16);
  kernels::rope_bwd(params(y, back, pos, inv, c), nullptr);
  CHECK(test::compare(back, x, {2e-2, 2e-2}) == "");
  CHECK(bytes(back) != bytes(x));  // but not by copying: the roundings show somewhere

  // One element past a 64-byte boundary: not 16-byte aligned, so every pair is scalar.
  const std::int64_t n = x.numel();
  const Tensor xs = Tensor::empty({n + 1}, DType::bf16), ys = test::poisoned({n + 1}, DType::bf16);
  std::memcpy(static_cast<char*>(xs.raw()) + 2, x.raw(), x.nbytes());
  RopeParams p = params(x, y, pos, inv, c);
  p.x = static_cast<char*>(xs.raw()) + 2;
  p.y = static_cast<char*>(ys.raw()) + 2;
  kernels::rope_fwd(p, nullptr);
  CHECK(bytes(ys.slice(1, n + 1).clone()) == bytes(y));
}

TEST_CASE("rope kernels: the cos/sin table barrier is needed", "[emu]") {
  const Case c{16, 2, 32, false, DType::i64, 16, 0};
  const std::vector<double> inv = ops::rope_inv_freq(c.head_dim, rope_args(false));
  const Shape shape = {c.tokens, c.heads, c.head_dim};
  const Tensor x = test::random_tensor(shape, DType::bf16, 4);
  const Tensor pos = packed_positions(c.tokens, c.seq, c.offset, c.pos_type);
  const Tensor good = test::poisoned(shape, DType::bf16);
  kernels::rope_fwd(params(x, good, pos, inv, c), nullptr);
  bool differs = false;
  hone::emu::disable_barrier("rope_table");
  for (Schedule s : kSchedules) {
    hone::emu::ScopedSchedule scoped(s, 2);
    const Tensor y = test::poisoned(shape, DType::bf16);
    kernels::rope_fwd(params(x, y, pos, inv, c), nullptr);
    if (bytes(y) != bytes(good)) differs = true;
  }
  hone::emu::enable_all_barriers();
  CHECK(differs);
}

TEST_CASE("rope launchers reject bad arguments with the field named", "[emu]") {
  const Case c{2, 1, 8, false, DType::i64, 2, 0};
  const std::vector<double> inv = ops::rope_inv_freq(c.head_dim, rope_args(false));
  const Tensor x = test::random_tensor({2, 1, 8}, DType::bf16, 5);
  const Tensor pos = packed_positions(2, 2, 0, DType::i64);
  const RopeParams good = params(x, x, pos, inv, c);
  auto fails = [&](RopeParams p, const std::string& what) {
    CHECK_THROWS_WITH(kernels::rope_fwd(p, nullptr),
                      Catch::Contains("[rope_fwd]") && Catch::Contains(what));
  };
  RopeParams p = good;
  p.head_dim = 7;
  fails(p, "head_dim = 7");
  p = good, p.head_dim = 0;
  fails(p, "head_dim = 0");
  p = good, p.heads = 0;
  fails(p, "heads = 0");
  p = good, p.tokens = -4;
  fails(p, "tokens = -4");
  p = good, p.inv_freq = nullptr;
  fails(p, "'inv_freq' is null");
  p = good, p.positions = nullptr;
  fails(p, "'positions' is null");
  p = good, p.positions_type = static_cast<RopeIndexType>(5);
  fails(p, "positions_type 5");
  p = good, p.y = nullptr;
  CHECK_THROWS_WITH(kernels::rope_bwd(p, nullptr),
                    Catch::Contains("[rope_bwd]") && Catch::Contains("'y' is null"));
}

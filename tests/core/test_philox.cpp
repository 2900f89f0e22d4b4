// Philox4x32-10 against the published known-answer vectors, and the uniform mapping.
#include <catch2/catch.hpp>

#include "hone/random.h"

using namespace hone;

TEST_CASE("philox4x32-10 matches the Random123 known-answer tests", "[cpu][core]") {
  Philox4 r = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
  CHECK(r.x[0] == 0x6627e8d5u);
  CHECK(r.x[1] == 0xe169c58du);
  CHECK(r.x[2] == 0xbc57ac4cu);
  CHECK(r.x[3] == 0x9b00dbd8u);
  r = philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu,
                    0xffffffffu);
  CHECK(r.x[0] == 0x408f276du);
  CHECK(r.x[1] == 0x41c83b0eu);
  CHECK(r.x[2] == 0xa20bc7c6u);
  CHECK(r.x[3] == 0x6d5451fdu);
  r = philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u,
                    0x299f31d0u);
  CHECK(r.x[0] == 0xd16cfe09u);
  CHECK(r.x[1] == 0x94fdccebu);
  CHECK(r.x[2] == 0x5001e420u);
  CHECK(r.x[3] == 0x24126ea1u);
}

TEST_CASE("philox streams are counter based and uniform", "[cpu][core]") {
  // Position i of a stream depends only on (seed, start + i/4): skipping ahead is free.
  CHECK(philox_uniform_at(7, 10, 9) == philox_uniform(philox_block(7, 12).x[1]));
  CHECK(philox_block(1, 0).x[0] != philox_block(2, 0).x[0]);
  double sum = 0, sum_sq = 0;
  const int n = 1 << 16;
  for (int i = 0; i < n; ++i) {
    const double u = philox_uniform_at(42, 0, static_cast<std::uint64_t>(i));
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
    sum_sq += u * u;
  }
  CHECK(sum / n == Approx(0.5).margin(0.01));
  CHECK(sum_sq / n - (sum / n) * (sum / n) == Approx(1.0 / 12).margin(0.005));
  CHECK(philox_uniform(0xffffffffu) < 1.0f);
}

#include "ops/ops.h"
#include "hone/tensor.h"

TEST_CASE("uniform fill follows the philox stream", "[cpu][core]") {
  const Tensor t = Tensor::empty({33}, DType::f32);
  ops::uniform_(t, 5, 3);
  const auto v = t.to_vector<float>();
  for (std::uint64_t i = 0; i < 33; ++i) REQUIRE(v[i] == philox_uniform_at(5, 3, i));
  const Tensor d = Tensor::empty({33}, DType::f64);
  ops::uniform_(d, 5, 3);
  CHECK(d.to_vector<float>() == v);
  CHECK_THROWS_WITH(ops::uniform_(Tensor::empty({2}, DType::i32), 0, 0), Catch::Contains("uniform_"));
}

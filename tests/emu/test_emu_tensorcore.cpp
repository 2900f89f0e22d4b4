// ldmatrix and mma.sync under the emulator against the PTX ISA fragment layouts
// (as the PTX ISA documents them), on index-filled inputs, exactly.
#include <catch2/catch.hpp>

#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace hone::kernels::emu_test {
void run_ldmatrix_dump(const std::uint16_t* m, std::uint32_t* out);
void run_mma(const std::uint16_t* a, const std::uint16_t* b, float* d, bool bf16);
}  // namespace hone::kernels::emu_test

using namespace hone::kernels::emu_test;

namespace {

std::uint16_t bf16_bits(float f) {  // exact for the small integers used here
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<std::uint16_t>(u >> 16);
}
std::uint16_t f16_bits(float f) {
  const __half h = __float2half(f);
  std::uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
std::uint32_t pack(std::uint16_t lo, std::uint16_t hi) {
  return static_cast<std::uint32_t>(lo) | static_cast<std::uint32_t>(hi) << 16;
}

}  // namespace

TEST_CASE("emu ldmatrix fragments match the PTX layouts", "[emu]") {
  std::vector<std::uint16_t> m(32 * 8);  // matrix j, row r, column c at (8j + r) * 8 + c
  for (int i = 0; i < 32 * 8; ++i) m[i] = static_cast<std::uint16_t>(1000 + i);
  auto M = [&](int j, int r, int c) { return m[(8 * j + r) * 8 + c]; };
  std::vector<std::uint32_t> out(32 * 14, 0xdeadbeefu);
  run_ldmatrix_dump(m.data(), out.data());
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    const std::uint32_t* o = out.data() + lane * 14;
    auto plain = [&](int j) { return pack(M(j, g, 2 * t), M(j, g, 2 * t + 1)); };
    auto trans = [&](int j) { return pack(M(j, 2 * t, g), M(j, 2 * t + 1, g)); };
    REQUIRE(o[0] == plain(0));
    for (int j = 0; j < 2; ++j) REQUIRE(o[1 + j] == plain(j));
    for (int j = 0; j < 4; ++j) REQUIRE(o[3 + j] == plain(j));
    REQUIRE(o[7] == trans(0));
    for (int j = 0; j < 2; ++j) REQUIRE(o[8 + j] == trans(j));
    for (int j = 0; j < 4; ++j) REQUIRE(o[10 + j] == trans(j));
  }
}

TEST_CASE("emu ldmatrix and mma give the exact 16x8x16 product", "[emu]") {
  for (bool bf16 : {true, false}) {
    float a[16][16], b[16][8];
    std::vector<std::uint16_t> abits(16 * 16), bbits(16 * 8);
    for (int i = 0; i < 16; ++i)
      for (int k = 0; k < 16; ++k) {
        a[i][k] = static_cast<float>((i * 16 + k) % 7 - 3);  // index-derived small integers
        abits[i * 16 + k] = bf16 ? bf16_bits(a[i][k]) : f16_bits(a[i][k]);
      }
    for (int k = 0; k < 16; ++k)
      for (int j = 0; j < 8; ++j) {
        b[k][j] = static_cast<float>((k * 8 + j) % 5 - 2 + (k == j ? 8 : 0));
        bbits[k * 8 + j] = bf16 ? bf16_bits(b[k][j]) : f16_bits(b[k][j]);
      }
    std::vector<float> d(16 * 8, std::nanf(""));
    run_mma(abits.data(), bbits.data(), d.data(), bf16);
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j) {
        float want = 0;
        for (int k = 0; k < 16; ++k) want += a[i][k] * b[k][j];
        INFO("bf16 " << bf16 << " d[" << i << "][" << j << "]");
        REQUIRE(d[i * 8 + j] == want);
      }
  }
}

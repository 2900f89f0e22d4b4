// DType names/sizes and the bf16/f16 conversions (rounding, specials, subnormals).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "hone/dtype.h"
#include "hone/error.h"

using namespace hone;

static float bits_to_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST_CASE("dtype names sizes and parsing", "[cpu][core]") {
  CHECK(dtype_size(DType::bf16) == 2);
  CHECK(dtype_size(DType::f64) == 8);
  CHECK(dtype_size(DType::boolean) == 1);
  CHECK(std::string(dtype_name(DType::i64)) == "i64");
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8,
                  DType::boolean})
    CHECK(parse_dtype(dtype_name(t)) == t);
  CHECK(parse_dtype("bfloat16") == DType::bf16);
  CHECK_THROWS_WITH(parse_dtype("float8"), Catch::Contains("float8"));
}

TEST_CASE("bf16 rounds to nearest even", "[cpu][core]") {
  CHECK(to_bf16(1.0f).bits == 0x3f80);
  CHECK(from_bf16(bf16{0x3f80}) == 1.0f);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  CHECK(to_bf16(1.0f + std::ldexp(1.0f, -8)).bits == 0x3f80);
  // 1 + 3·2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
  CHECK(to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)).bits == 0x3f82);
  CHECK(to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)).bits == 0x3f81);
  CHECK(std::isnan(from_bf16(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isinf(from_bf16(to_bf16(std::numeric_limits<float>::infinity()))));
  CHECK(to_bf16(-2.5f).bits == 0xc020);
  // Every bf16 value converts to float and back unchanged.
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float f = from_bf16(bf16{static_cast<std::uint16_t>(b)});
    if (!std::isnan(f)) REQUIRE(to_bf16(f).bits == b);
  }
}

TEST_CASE("f16 conversions cover normals subnormals and overflow", "[cpu][core]") {
  CHECK(to_f16(1.0f).bits == 0x3c00);
  CHECK(to_f16(65504.0f).bits == 0x7bff);
  CHECK(to_f16(65520.0f).bits == 0x7c00);  // rounds to infinity
  CHECK(to_f16(65519.0f).bits == 0x7bff);
  CHECK(to_f16(std::ldexp(1.0f, -24)).bits == 0x0001);  // smallest subnormal
  CHECK(to_f16(std::ldexp(1.0f, -25)).bits == 0x0000);  // tie → even (zero)
  CHECK(to_f16(3 * std::ldexp(1.0f, -25)).bits == 0x0002);
  CHECK(to_f16(-0.0f).bits == 0x8000);
  CHECK(from_f16(f16{0x0001}) == std::ldexp(1.0f, -24));
  CHECK(from_f16(f16{0xc000}) == -2.0f);
  CHECK(std::isnan(from_f16(to_f16(bits_to_float(0x7fc00000u)))));
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float f = from_f16(f16{static_cast<std::uint16_t>(b)});
    if (!std::isnan(f)) REQUIRE(to_f16(f).bits == b);
  }
}

TEST_CASE("bulk conversion between dtypes", "[cpu][core]") {
  const double src[4] = {1.5, -2.75, 0.0, 3.0};
  std::int32_t ints[4];
  convert(src, DType::f64, ints, DType::i32, 4);
  CHECK(ints[0] == 1);
  CHECK(ints[1] == -2);
  bool flags[4];
  convert(src, DType::f64, flags, DType::boolean, 4);
  CHECK(flags[0]);
  CHECK(!flags[2]);
  bf16 half[4];
  convert(src, DType::f64, half, DType::bf16, 4);
  CHECK(from_bf16(half[1]) == -2.75f);
}

// Element types of hone tensors, the 16-bit float storage types and conversions between them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hone {

enum class DType : std::uint8_t { f32, f64, bf16, f16, i32, i64, u8, boolean };

std::size_t dtype_size(DType t);
const char* dtype_name(DType t);        // "f32", "bf16", "bool", ...
DType parse_dtype(std::string_view s);  // inverse of dtype_name; also accepts "float32" etc.
bool is_floating(DType t);

// bfloat16 storage: the upper 16 bits of an IEEE binary32. Conversion rounds to nearest even.
struct bf16 {
  std::uint16_t bits = 0;
};
// IEEE binary16 storage. Conversion rounds to nearest even, with subnormals and infinities.
struct f16 {
  std::uint16_t bits = 0;
};

bf16 to_bf16(float x);
float from_bf16(bf16 x);
f16 to_f16(float x);
float from_f16(f16 x);

// The DType of a C++ element type.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<f16>() { return DType::f16; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<bool>() { return DType::boolean; }

// Converts n elements between any two dtypes (host memory). Floats to integers truncate toward
// zero; anything to bool is (x != 0).
void convert(const void* src, DType src_type, void* dst, DType dst_type, std::size_t n);

}  // namespace hone

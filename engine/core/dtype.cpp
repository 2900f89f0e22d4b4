// DType names and sizes, bf16/f16 rounding conversions and bulk host conversion.
#include "hone/dtype.h"

#include <cmath>
#include <cstring>

#include "hone/error.h"

namespace hone {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
    case DType::boolean: return 1;
  }
  fail("dtype", cat("unknown dtype code ", static_cast<int>(t)));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::boolean: return "bool";
  }
  return "?";
}

DType parse_dtype(std::string_view s) {
  struct Alias { const char* name; DType t; };
  static const Alias kAliases[] = {
      {"f32", DType::f32},     {"float32", DType::f32},  {"float", DType::f32},
      {"f64", DType::f64},     {"float64", DType::f64},  {"double", DType::f64},
      {"bf16", DType::bf16},   {"bfloat16", DType::bf16}, {"f16", DType::f16},
      {"float16", DType::f16}, {"half", DType::f16},     {"i32", DType::i32},
      {"int32", DType::i32},   {"i64", DType::i64},      {"int64", DType::i64},
      {"u8", DType::u8},       {"uint8", DType::u8},     {"bool", DType::boolean}};
  for (const Alias& a : kAliases)
    if (s == a.name) return a.t;
  fail("parse_dtype", cat("unknown dtype '", s, "'"));
}

bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}

static std::uint32_t float_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
static float bits_float(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

bf16 to_bf16(float x) {
  const std::uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};  // quiet NaN
  const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bf16{static_cast<std::uint16_t>((u + rounding) >> 16)};
}

float from_bf16(bf16 x) { return bits_float(static_cast<std::uint32_t>(x.bits) << 16); }

f16 to_f16(float x) {
  const std::uint32_t u = float_bits(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return f16{static_cast<std::uint16_t>(sign | 0x7e00u)};  // NaN
  if (a >= 0x477ff000u) return f16{static_cast<std::uint16_t>(sign | 0x7c00u)};  // overflow → inf
  if (a < 0x38800000u) {
    // Result is subnormal (or zero): value = m * 2^-24 with m rounded to nearest even.
    const float mag = bits_float(a);
    const float scaled = mag * 16777216.0f;  // exact: power-of-two scaling
    const float r = std::nearbyint(scaled);  // default rounding mode: nearest even
    return f16{static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(r))};
  }
  // Normal: rebias exponent (127 → 15) and round the 23-bit mantissa to 10 bits.
  const std::uint32_t rebased = a - (112u << 23);
  const std::uint32_t rounding = 0xfffu + ((rebased >> 13) & 1u);
  return f16{static_cast<std::uint16_t>(sign | ((rebased + rounding) >> 13))};
}

float from_f16(f16 x) {
  const std::uint32_t sign = static_cast<std::uint32_t>(x.bits & 0x8000u) << 16;
  const std::uint32_t exp = (x.bits >> 10) & 0x1fu;
  const std::uint32_t man = x.bits & 0x3ffu;
  if (exp == 0) {
    const float mag = static_cast<float>(man) * (1.0f / 16777216.0f);
    return sign ? -mag : mag;
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (man << 13));
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
}

namespace {

template <class T> double load(const T* p) { return static_cast<double>(*p); }
template <> double load<bf16>(const bf16* p) { return from_bf16(*p); }
template <> double load<f16>(const f16* p) { return from_f16(*p); }

template <class T> void store(T* p, double v) {
  if constexpr (std::is_same_v<T, bool>) {
    *p = v != 0.0;
  } else {
    *p = static_cast<T>(v);
  }
}
template <> void store<bf16>(bf16* p, double v) { *p = to_bf16(static_cast<float>(v)); }
template <> void store<f16>(f16* p, double v) { *p = to_f16(static_cast<float>(v)); }

template <class S, class D>
void convert_typed(const S* s, D* d, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) store<D>(d + i, load<S>(s + i));
}

template <class F>
void visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    case DType::bf16: f(bf16{}); return;
    case DType::f16: f(f16{}); return;
    case DType::i32: f(std::int32_t{}); return;
    case DType::i64: f(std::int64_t{}); return;
    case DType::u8: f(std::uint8_t{}); return;
    case DType::boolean: f(bool{}); return;
  }
}

}  // namespace

void convert(const void* src, DType st, void* dst, DType dt, std::size_t n) {
  if (st == dt) {
    std::memmove(dst, src, n * dtype_size(st));
    return;
  }
  visit_dtype(st, [&](auto s) {
    visit_dtype(dt, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      convert_typed(static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
}

}  // namespace hone

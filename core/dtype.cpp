// DType tables and the scalar conversions that are not needed on the device.
#include "core/dtype.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace r1kit {
namespace {
struct DTypeInfo {
  DType type;
  size_t size;
  std::string_view name;
  std::string_view st_name;
};
constexpr DTypeInfo kInfo[] = {
    {DType::f64, 8, "f64", "F64"},
    {DType::f32, 4, "f32", "F32"},
    {DType::f16, 2, "f16", "F16"},
    {DType::bf16, 2, "bf16", "BF16"},
    {DType::f8_e4m3, 1, "f8_e4m3", "F8_E4M3"},
    {DType::f8_e5m2, 1, "f8_e5m2", "F8_E5M2"},
    {DType::f8_e8m0, 1, "f8_e8m0", "F8_E8M0"},
    {DType::i64, 8, "i64", "I64"},
    {DType::i32, 4, "i32", "I32"},
    {DType::i16, 2, "i16", "I16"},
    {DType::i8, 1, "i8", "I8"},
    {DType::u64, 8, "u64", "U64"},
    {DType::u32, 4, "u32", "U32"},
    {DType::u16, 2, "u16", "U16"},
    {DType::u8, 1, "u8", "U8"},
    {DType::boolean, 1, "bool", "BOOL"},
};
const DTypeInfo& info(DType t) {
  for (const auto& i : kInfo)
    if (i.type == t) return i;
  R1_THROW("invalid DType value {}", static_cast<int>(t));
}
}  // namespace

size_t dtype_size(DType t) {
  return info(t).size;
}
std::string_view dtype_name(DType t) {
  return info(t).name;
}
std::string_view dtype_safetensors_name(DType t) {
  return info(t).st_name;
}
bool dtype_from_safetensors_name(std::string_view name, DType* out) {
  for (const auto& i : kInfo) {
    if (i.st_name == name) {
      *out = i.type;
      return true;
    }
  }
  return false;
}
bool dtype_is_float(DType t) {
  switch (t) {
    case DType::f64:
    case DType::f32:
    case DType::f16:
    case DType::bf16:
    case DType::f8_e4m3:
    case DType::f8_e5m2:
    case DType::f8_e8m0:
      return true;
    default:
      return false;
  }
}

// IEEE half from f32 with round to nearest even, handling subnormals, overflow to inf and NaN.
uint16_t f32_to_f16_bits(float f) {
  uint32_t x = f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mag = x & 0x7fffffffu;
  if (mag > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (mag < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // value = mag_as_float; half subnormal unit is 2^-24. Round(value / 2^-24) to nearest even.
    float a = f32_from_bits(mag);
    float scaled = a * 16777216.0f;    // exact: power of two
    float r = std::nearbyint(scaled);  // default rounding mode: to nearest even
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(r));
  }
  uint32_t exp = ((mag >> 23) - 127 + 15) << 10;
  uint32_t mant = mag & 0x7fffffu;
  uint32_t h = exp | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1;  // may carry into exponent: fine
  return static_cast<uint16_t>(sign | h);
}

float f16_bits_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
  return f32_from_bits(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

float f8e4m3_bits_to_f32(uint8_t v) {
  float sign = (v & 0x80) ? -1.0f : 1.0f;
  int exp = (v >> 3) & 0xf;
  int mant = v & 0x7;
  if (exp == 0xf && mant == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -9);  // subnormal: m/8 * 2^-6
  return sign * std::ldexp(1.0f + mant / 8.0f, exp - 7);
}

uint8_t f32_to_f8e4m3_bits(float f) {
  if (std::isnan(f)) return 0x7f;
  uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;  // saturate to the largest finite value
  // Find the nearest representable value by scanning the 127 non-negative finite codes; this is a
  // slow reference conversion used for I/O and tests only.
  uint8_t best = 0;
  float best_err = std::numeric_limits<float>::infinity();
  for (uint8_t c = 0; c <= 0x7e; ++c) {
    float err = std::fabs(f8e4m3_bits_to_f32(c) - a);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best = c;
      best_err = err;
    }
  }
  return sign | best;
}

float f8e5m2_bits_to_f32(uint8_t v) {
  return f16_bits_to_f32(static_cast<uint16_t>(v) << 8);
}

float f8e8m0_bits_to_f32(uint8_t v) {
  if (v == 0xff) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(v) - 127);
}

double load_as_double(const void* data, DType t, size_t i) {
  switch (t) {
    case DType::f64:
      return static_cast<const double*>(data)[i];
    case DType::f32:
      return static_cast<const float*>(data)[i];
    case DType::f16:
      return f16_bits_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::bf16:
      return bf16_bits_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::f8_e4m3:
      return f8e4m3_bits_to_f32(static_cast<const uint8_t*>(data)[i]);
    case DType::f8_e5m2:
      return f8e5m2_bits_to_f32(static_cast<const uint8_t*>(data)[i]);
    case DType::f8_e8m0:
      return f8e8m0_bits_to_f32(static_cast<const uint8_t*>(data)[i]);
    case DType::i64:
      return static_cast<double>(static_cast<const int64_t*>(data)[i]);
    case DType::i32:
      return static_cast<const int32_t*>(data)[i];
    case DType::i16:
      return static_cast<const int16_t*>(data)[i];
    case DType::i8:
      return static_cast<const int8_t*>(data)[i];
    case DType::u64:
      return static_cast<double>(static_cast<const uint64_t*>(data)[i]);
    case DType::u32:
      return static_cast<const uint32_t*>(data)[i];
    case DType::u16:
      return static_cast<const uint16_t*>(data)[i];
    case DType::u8:
      return static_cast<const uint8_t*>(data)[i];
    case DType::boolean:
      return static_cast<const uint8_t*>(data)[i] ? 1.0 : 0.0;
  }
  R1_THROW("load_as_double: invalid dtype");
}

void store_from_double(void* data, DType t, size_t i, double v) {
  switch (t) {
    case DType::f64:
      static_cast<double*>(data)[i] = v;
      return;
    case DType::f32:
      static_cast<float*>(data)[i] = static_cast<float>(v);
      return;
    case DType::f16:
      static_cast<uint16_t*>(data)[i] = f32_to_f16_bits(static_cast<float>(v));
      return;
    case DType::bf16:
      static_cast<uint16_t*>(data)[i] = f32_to_bf16_bits(static_cast<float>(v));
      return;
    case DType::f8_e4m3:
      static_cast<uint8_t*>(data)[i] = f32_to_f8e4m3_bits(static_cast<float>(v));
      return;
    case DType::i64:
      static_cast<int64_t*>(data)[i] = static_cast<int64_t>(v);
      return;
    case DType::i32:
      static_cast<int32_t*>(data)[i] = static_cast<int32_t>(v);
      return;
    case DType::i16:
      static_cast<int16_t*>(data)[i] = static_cast<int16_t>(v);
      return;
    case DType::i8:
      static_cast<int8_t*>(data)[i] = static_cast<int8_t>(v);
      return;
    case DType::u64:
      static_cast<uint64_t*>(data)[i] = static_cast<uint64_t>(v);
      return;
    case DType::u32:
      static_cast<uint32_t*>(data)[i] = static_cast<uint32_t>(v);
      return;
    case DType::u16:
      static_cast<uint16_t*>(data)[i] = static_cast<uint16_t>(v);
      return;
    case DType::u8:
      static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(v);
      return;
    case DType::boolean:
      static_cast<uint8_t*>(data)[i] = v != 0.0;
      return;
    default:
      R1_THROW("store_from_double: no conversion to {}", dtype_name(t));
  }
}

}  // namespace r1kit

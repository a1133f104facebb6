// Element types, their sizes and names, and scalar conversions for the reduced-precision formats
// (bf16, f16, f8 e4m3/e5m2/e8m0). Conversions round to nearest even like the hardware does, so the
// CPU reference sees exactly the values the GPU sees.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/host_device.h"

namespace r1kit {

// Every dtype of the safetensors format except the sub-byte ones (F4/F6), plus f64 for the CPU
// reference and gradient checks. Kernels accept a subset and say so in their errors.
enum class DType : uint8_t {
  f64,
  f32,
  f16,
  bf16,
  f8_e4m3,
  f8_e5m2,
  f8_e8m0,
  i64,
  i32,
  i16,
  i8,
  u64,
  u32,
  u16,
  u8,
  boolean
};

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);              // "f32", "bf16", ...
std::string_view dtype_safetensors_name(DType t);  // "F32", "BF16", ...
// Parses a safetensors dtype string; returns false for unknown or unsupported ones.
bool dtype_from_safetensors_name(std::string_view name, DType* out);
bool dtype_is_float(DType t);

R1_HOST_DEVICE inline uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
R1_HOST_DEVICE inline float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// --- bf16: the upper 16 bits of an IEEE f32 ------------------------------------------------------
R1_HOST_DEVICE inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}
R1_HOST_DEVICE inline float bf16_bits_to_f32(uint16_t b) {
  return f32_from_bits(static_cast<uint32_t>(b) << 16);
}
// Rounds an f32 to the nearest bf16 value (returned as f32).
R1_HOST_DEVICE inline float round_to_bf16(float f) {
  return bf16_bits_to_f32(f32_to_bf16_bits(f));
}

// --- f16 (IEEE half) ----------------------------------------------------------------------------
uint16_t f32_to_f16_bits(float f);
float f16_bits_to_f32(uint16_t h);

// --- f8 ------------------------------------------------------------------------------------------
// e4m3fn: 4 exponent bits (bias 7), 3 mantissa bits, no infinities, 0x7f/0xff are NaN, max 448.
float f8e4m3_bits_to_f32(uint8_t v);
uint8_t f32_to_f8e4m3_bits(float f);  // saturates to ±448, round to nearest even
// e5m2: IEEE-like with 5 exponent bits (bias 15), 2 mantissa bits.
float f8e5m2_bits_to_f32(uint8_t v);
// e8m0: exponent only (bias 127), 0xff is NaN; used for block scales.
float f8e8m0_bits_to_f32(uint8_t v);

// Reads element i of a buffer of dtype t as double (any numeric dtype). For tests and I/O, not
// hot loops.
double load_as_double(const void* data, DType t, size_t i);
// Stores v into element i of a buffer of dtype t, rounding as the format requires.
void store_from_double(void* data, DType t, size_t i, double v);

}  // namespace r1kit

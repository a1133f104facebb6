// Scalar conversions: bf16/f16/f8 rounding and special values, against exhaustive or known values.
#include "core/dtype.h"

#include <cmath>
#include <limits>

#include "tests/common/test_util.h"

namespace r1kit {
namespace {

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::f8_e4m3), 1u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  DType t;
  ASSERT_TRUE(dtype_from_safetensors_name("F8_E4M3", &t));
  EXPECT_EQ(t, DType::f8_e4m3);
  EXPECT_FALSE(dtype_from_safetensors_name("F4", &t));
  EXPECT_EQ(dtype_safetensors_name(DType::boolean), "BOOL");
}

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1).
  EXPECT_EQ(round_to_bf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): goes up.
  EXPECT_EQ(round_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(round_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)),
            1.0f + std::ldexp(1.0f, -7));
  EXPECT_TRUE(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isinf(round_to_bf16(std::numeric_limits<float>::infinity())));
  // Every bf16 value survives a round trip through f32.
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = bf16_bits_to_f32(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16_bits(f), b);
  }
}

TEST(DType, F16ExhaustiveRoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_bits_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_bits_to_f32(f32_to_f16_bits(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16_bits(f), h) << "half bits " << h;
  }
  EXPECT_EQ(f16_bits_to_f32(f32_to_f16_bits(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_bits_to_f32(f32_to_f16_bits(65520.0f))));
  EXPECT_EQ(f16_bits_to_f32(f32_to_f16_bits(65519.0f)), 65504.0f);
  // Smallest subnormal 2^-24; half of it ties to zero (even), a bit more rounds up.
  EXPECT_EQ(f16_bits_to_f32(f32_to_f16_bits(std::ldexp(1.0f, -25))), 0.0f);
  EXPECT_EQ(f16_bits_to_f32(f32_to_f16_bits(std::ldexp(1.5f, -25))), std::ldexp(1.0f, -24));
}

TEST(DType, F8E4M3ValuesAndSaturation) {
  EXPECT_EQ(f8e4m3_bits_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f8e4m3_bits_to_f32(0x38), 1.0f);
  EXPECT_EQ(f8e4m3_bits_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(f8e4m3_bits_to_f32(0x7f)));
  EXPECT_EQ(f32_to_f8e4m3_bits(1000.0f), 0x7e);
  EXPECT_EQ(f32_to_f8e4m3_bits(-1000.0f), 0xfe);
  for (int c = 0; c < 256; ++c) {
    float f = f8e4m3_bits_to_f32(static_cast<uint8_t>(c));
    if (std::isnan(f) || c == 0x80) continue;  // -0 maps to +0's twin; skip
    EXPECT_EQ(f32_to_f8e4m3_bits(f), c);
  }
  EXPECT_EQ(f8e5m2_bits_to_f32(0x3c), 1.0f);
  EXPECT_EQ(f8e8m0_bits_to_f32(127), 1.0f);
  EXPECT_EQ(f8e8m0_bits_to_f32(130), 8.0f);
}

TEST(DType, LoadStoreEveryDtype) {
  alignas(8) unsigned char buf[64] = {};
  for (DType t : {DType::f64, DType::f32, DType::f16, DType::bf16, DType::i64, DType::i32,
                  DType::i16, DType::i8, DType::u64, DType::u32, DType::u16, DType::u8}) {
    store_from_double(buf, t, 3, 5.0);
    EXPECT_EQ(load_as_double(buf, t, 3), 5.0) << dtype_name(t);
  }
  store_from_double(buf, DType::boolean, 0, 2.0);
  EXPECT_EQ(load_as_double(buf, DType::boolean, 0), 1.0);
}

}  // namespace
}  // namespace r1kit

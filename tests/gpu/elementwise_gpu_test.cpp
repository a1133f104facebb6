// GPU vs CPU for the elementwise ops: add/mul forward and backward, axpy, scale over odd, 4-D,
// large (vectorised) and unaligned (scalar) shapes in every float dtype, in place, accumulating
// from non-zero gradients, skipped gradients, mixed dtypes; cast and fill bit for bit (NaN
// payloads, ties to even, overflow, subnormals; every bf16/f16 bit pattern).
#include "kernels/elementwise.h"

#include <cstring>
#include <limits>
#include <random>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;
using testing::poisoned;
using testing::to_device;

const DType kAll[] = {DType::f32, DType::bf16, DType::f16, DType::f64};
const Shape kShapes[] = {{37, 1001}, {1}, {3, 5, 7, 11}, {2048, 7168}};

// The derived tolerance of a pointwise result (reduction length 1), accumulated in f64 for f64.
double tol(DType t) {
  return testing::tolerance(t, 1, t == DType::f64 ? DType::f64 : DType::f32);
}

std::string label(const char* op, DType t, const Shape& s) {
  return std::string(op) + " " + std::string(dtype_name(t)) + " " + shape_str(s);
}

Tensor rnd(const Shape& s, DType t, std::mt19937_64& rng, const char* name) {
  return testing::random_tensor(cpu_ctx(), s, t, rng, -1, 1, name);
}

// A contiguous view of `shape` starting one element into a fresh buffer: not 16-byte aligned, so
// the kernels take their scalar path.
TensorView offset_view(const Tensor& base, const Shape& shape) {
  return base.view().slice(1, base.numel()).reshape(shape);
}

// Byte-for-byte equality (NaN payloads included) of a device tensor and a host reference.
void expect_same_bits(const TensorView& got, const TensorView& want, const std::string& what) {
  Tensor host = testing::to_host(got);
  ASSERT_EQ(host.nbytes(), want.nbytes()) << what;
  const size_t es = dtype_size(want.dtype);
  const auto* a = static_cast<const unsigned char*>(host.data());
  const auto* b = static_cast<const unsigned char*>(want.data);
  for (int64_t i = 0; i < want.numel(); ++i) {
    if (std::memcmp(a + i * es, b + i * es, es) == 0) continue;
    uint64_t ga = 0, wb = 0;
    std::memcpy(&ga, a + i * es, es);
    std::memcpy(&wb, b + i * es, es);
    FAIL() << what << ": element " << i << " has bits 0x" << std::hex << ga << ", CPU 0x" << wb;
  }
}

TEST(GpuElementwise, BinaryAndScaledForwardMatchCpu) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(1);
  for (DType t : kAll) {
    for (const Shape& s : kShapes) {
      auto a = rnd(s, t, rng, "a"), b = rnd(s, t, rng, "b"), y0 = rnd(s, t, rng, "y");
      auto ga = to_device(a), gb = to_device(b);
      auto y = cpu.empty(s, t, "y");
      auto gy = poisoned(s, t, "y");
      add_forward(y, a, b, cpu);
      add_forward(gy, ga, gb, gpu);
      testing::expect_close(gy, y, tol(t), label("add", t, s));
      gy = poisoned(s, t, "y");
      mul_forward(y, a, b, cpu);
      mul_forward(gy, ga, gb, gpu);
      testing::expect_close(gy, y, tol(t), label("mul", t, s));
      gy = poisoned(s, t, "y");
      scale(y, -0.37, a, cpu);
      scale(gy, -0.37, ga, gpu);
      testing::expect_close(gy, y, tol(t), label("scale", t, s));
      // axpy accumulates into a random non-zero y.
      auto gy0 = to_device(y0);
      axpy(y0, 1.75, a, cpu);
      axpy(gy0, 1.75, ga, gpu);
      testing::expect_close(gy0, y0, tol(t), label("axpy", t, s));
    }
  }
}

TEST(GpuElementwise, InPlaceMatchesCpu) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(2);
  for (DType t : {DType::f32, DType::bf16}) {
    const Shape s = {129, 67};
    auto a = rnd(s, t, rng, "a"), b = rnd(s, t, rng, "b");
    auto ga = to_device(a), gb = to_device(b);
    add_forward(a, a, b, cpu);  // y = a
    add_forward(ga, ga, gb, gpu);
    testing::expect_close(ga, a, tol(t), label("add in place (a)", t, s));
    mul_forward(b, a, b, cpu);  // y = b
    mul_forward(gb, ga, gb, gpu);
    testing::expect_close(gb, b, tol(t), label("mul in place (b)", t, s));
    axpy(a, -0.5, a, cpu);  // y = x
    axpy(ga, -0.5, ga, gpu);
    testing::expect_close(ga, a, tol(t), label("axpy in place", t, s));
    scale(b, 3.0, b, cpu);
    scale(gb, 3.0, gb, gpu);
    testing::expect_close(gb, b, tol(t), label("scale in place", t, s));
  }
}

TEST(GpuElementwise, UnalignedViewsTakeTheScalarPath) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(3);
  for (DType t : {DType::f32, DType::bf16}) {
    const Shape s = {64, 96};  // a multiple of every pack, but the views start unaligned
    const int64_t n = 64 * 96;
    auto a = rnd(s, t, rng, "a"), b = rnd(s, t, rng, "b");
    auto ga_base = poisoned({n + 1}, t, "a_base"), gy_base = poisoned({n + 1}, t, "y_base");
    TensorView ga = offset_view(ga_base, s), gy = offset_view(gy_base, s);
    gpu.copy(ga, a);
    auto gb = to_device(b);
    auto y = cpu.empty(s, t, "y");
    add_forward(y, a, b, cpu);
    add_forward(gy, ga, gb, gpu);
    Tensor back = testing::to_host(gy_base);
    TensorView got = offset_view(back, s);
    const double err = testing::normalized_error(testing::to_double(got), testing::to_double(y));
    EXPECT_LT(err, tol(t)) << label("add (unaligned)", t, s);
  }
}

TEST(GpuElementwise, MixedDtypesMatchCpu) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(4);
  const Shape s = {37, 1001};
  auto a = rnd(s, DType::f32, rng, "a"), b = rnd(s, DType::f16, rng, "b");
  auto y = cpu.empty(s, DType::bf16, "y");
  auto gy = poisoned(s, DType::bf16, "y");
  auto ga = to_device(a), gb = to_device(b);
  add_forward(y, a, b, cpu);
  add_forward(gy, ga, gb, gpu);
  testing::expect_close(gy, y, tol(DType::bf16), "add bf16 = f32 + f16");
  auto acc = rnd(s, DType::f32, rng, "acc");
  auto gacc = to_device(acc);
  axpy(acc, 0.25, b, cpu);
  axpy(gacc, 0.25, gb, gpu);
  testing::expect_close(gacc, acc, tol(DType::f32), "axpy f32 += f16");
  // mul_backward with gradients of other dtypes than dy.
  auto dy = rnd(s, DType::bf16, rng, "dy");
  auto da = cpu.empty(s, DType::f32, "da"), db = cpu.empty(s, DType::f16, "db");
  auto gda = poisoned(s, DType::f32, "da"), gdb = poisoned(s, DType::f16, "db");
  auto gdy = to_device(dy);
  mul_backward(da, db, dy, a, b, cpu);
  mul_backward(gda, gdb, gdy, ga, gb, gpu);
  testing::expect_close(gda, da, tol(DType::f32), "mul_backward da f32");
  testing::expect_close(gdb, db, tol(DType::f16), "mul_backward db f16");
}

TEST(GpuElementwise, AddBackwardWritesAndAccumulates) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(5);
  const GradWrite modes[] = {GradWrite::overwrite, GradWrite::accumulate};
  for (DType t : kAll) {
    for (const Shape& s : {Shape{37, 1001}, Shape{2048, 7168}}) {
      auto dy = rnd(s, t, rng, "dy");
      auto gdy = to_device(dy);
      for (GradWrite wa : modes) {
        for (GradWrite wb : modes) {
          // Accumulating gradients start from random non-zero values; overwritten ones poisoned.
          auto da = rnd(s, t, rng, "da"), db = rnd(s, t, rng, "db");
          Tensor gda = wa == GradWrite::accumulate ? to_device(da) : poisoned(s, t, "da");
          Tensor gdb = wb == GradWrite::accumulate ? to_device(db) : poisoned(s, t, "db");
          add_backward(da, db, dy, wa, wb, cpu);
          add_backward(gda, gdb, gdy, wa, wb, gpu);
          const std::string what = label("add_backward", t, s) + " da " +
                                   (wa == GradWrite::accumulate ? "+=" : "=") + " db " +
                                   (wb == GradWrite::accumulate ? "+=" : "=");
          testing::expect_close(gda, da, tol(t), what + " (da)");
          testing::expect_close(gdb, db, tol(t), what + " (db)");
        }
      }
      // Skipped gradients: only the given one is written.
      auto da = rnd(s, t, rng, "da");
      auto gda = to_device(da);
      add_backward(da, TensorView{}, dy, GradWrite::accumulate, GradWrite::overwrite, cpu);
      add_backward(gda, TensorView{}, gdy, GradWrite::accumulate, GradWrite::overwrite, gpu);
      testing::expect_close(gda, da, tol(t), label("add_backward db skipped", t, s));
      auto db = cpu.empty(s, t, "db");
      auto gdb = poisoned(s, t, "db");
      add_backward(TensorView{}, db, dy, GradWrite::overwrite, GradWrite::overwrite, cpu);
      add_backward(TensorView{}, gdb, gdy, GradWrite::overwrite, GradWrite::overwrite, gpu);
      testing::expect_close(gdb, db, tol(t), label("add_backward da skipped", t, s));
    }
  }
}

TEST(GpuElementwise, MulBackwardMatchesCpu) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(6);
  for (DType t : kAll) {
    for (const Shape& s : kShapes) {
      auto dy = rnd(s, t, rng, "dy"), a = rnd(s, t, rng, "a"), b = rnd(s, t, rng, "b");
      auto gdy = to_device(dy), ga = to_device(a), gb = to_device(b);
      auto da = cpu.empty(s, t, "da"), db = cpu.empty(s, t, "db");
      auto gda = poisoned(s, t, "da"), gdb = poisoned(s, t, "db");
      mul_backward(da, db, dy, a, b, cpu);
      mul_backward(gda, gdb, gdy, ga, gb, gpu);
      testing::expect_close(gda, da, tol(t), label("mul_backward da", t, s));
      testing::expect_close(gdb, db, tol(t), label("mul_backward db", t, s));
      // One side skipped: the other still right, nothing else touched.
      gdb = poisoned(s, t, "db");
      mul_backward(TensorView{}, gdb, gdy, ga, gb, gpu);
      testing::expect_close(gdb, db, tol(t), label("mul_backward (da skipped) db", t, s));
      gda = poisoned(s, t, "da");
      mul_backward(gda, TensorView{}, gdy, ga, gb, gpu);
      testing::expect_close(gda, da, tol(t), label("mul_backward (db skipped) da", t, s));
    }
  }
}

TEST(GpuElementwise, EmptyTensorsDoNothing) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  auto e = gpu.empty({0, 5}, DType::bf16, "e");
  add_forward(e, e, e, gpu);
  axpy(e, 2.0, e, gpu);
  cast(e, e, gpu);
  fill(e, 1.0, gpu);
  add_backward(e, e, e, GradWrite::accumulate, GradWrite::overwrite, gpu);
  gpu.synchronize();
}

// ---- cast --------------------------------------------------------------------------------------

template <class U>
Tensor from_bits(const std::vector<U>& bits, DType t) {
  Tensor h = cpu_ctx().empty({static_cast<int64_t>(bits.size())}, t, "src");
  std::memcpy(h.data(), bits.data(), bits.size() * sizeof(U));
  return h;
}

uint32_t f32b(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
uint64_t f64b(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}

// Source values for each dtype: special values (±0, ±inf, NaNs quiet and signalling with payloads,
// subnormals, the largest finite values, values just over the f16/bf16/f32 ranges, ties), then
// random bit patterns and random values near the rounding boundaries. 16-bit dtypes: all 65536.
Tensor cast_source(DType t, std::mt19937_64& rng) {
  if (t == DType::bf16 || t == DType::f16) {
    std::vector<uint16_t> b(65536 + 7);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint16_t>(i);
    return from_bits(b, t);
  }
  if (t == DType::f32) {
    std::vector<uint32_t> b = {
        0u,          0x80000000u, 0x7f800000u,   0xff800000u,     0x7fc00000u, 0xffc00001u,
        0x7f800001u, 0x7fa5a5a5u, 0xff812345u,   0x00000001u,     0x807fffffu, 0x7f7fffffu,
        0x477fefffu, 0x477ff000u, 0x477ff001u,   0x33000000u,     0x33000001u, 0x7f7f8000u,
        0x3f808000u, 0x3f818000u, f32b(65504.f), f32b(65519.99f), f32b(1e-8f), f32b(-3.1f)};
    std::uniform_int_distribution<uint32_t> bits;
    for (int i = 0; i < (1 << 18); ++i) b.push_back(bits(rng));
    std::uniform_real_distribution<float> v(-70000.f, 70000.f);
    for (int i = 0; i < (1 << 16); ++i) b.push_back(f32b(v(rng)));
    for (int i = 0; i < (1 << 16); ++i) b.push_back(f32b(v(rng) * 1e-9f));  // f16 subnormals
    return from_bits(b, t);
  }
  std::vector<uint64_t> b = {0ull,
                             0x8000000000000000ull,
                             0x7ff0000000000000ull,
                             0xfff0000000000000ull,
                             0x7ff8000000000000ull,
                             0xfff8000000000abcull,
                             0x7ff0000000000001ull,
                             0x7ff4000123456789ull,
                             0x0000000000000001ull,
                             f64b(1e300),
                             f64b(-1e300),
                             f64b(3.4028235677973366e38),  // just over FLT_MAX: rounds to it
                             f64b(3.4028235677973367e38),  // halfway to 2^128: inf
                             f64b(65520.0),
                             f64b(65519.999),
                             f64b(1e-46),
                             f64b(7.006e-46),
                             f64b(1.0 + std::ldexp(1.0, -24)),  // f32 tie, to even
                             f64b(1.0 + 3 * std::ldexp(1.0, -24)),
                             f64b(1.0 + std::ldexp(1.0, -24) + std::ldexp(1.0, -40))};
  std::uniform_int_distribution<uint64_t> bits;
  for (int i = 0; i < (1 << 16); ++i) b.push_back(bits(rng));
  std::uniform_int_distribution<int> e16(-30, 17), e32(-155, 128);
  for (int i = 0; i < (1 << 17); ++i) {
    const uint64_t m = bits(rng) & 0x800fffffffffffffull;  // sign and mantissa
    const int e = (i & 1) ? e16(rng) : e32(rng);
    b.push_back(m | (static_cast<uint64_t>(e + 1023) << 52));
  }
  std::uniform_real_distribution<float> v(-1e4f, 1e4f);
  for (int i = 0; i < (1 << 14); ++i) {  // exact midpoints between neighbouring floats
    const float f = v(rng), g = std::nextafter(f, std::numeric_limits<float>::infinity());
    b.push_back(f64b((static_cast<double>(f) + g) / 2));
  }
  return from_bits(b, t);
}

TEST(GpuElementwise, CastMatchesCpuBitForBit) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(7);
  for (DType s : kAll) {
    Tensor src = cast_source(s, rng);
    const int64_t n = src.numel();
    auto gsrc = to_device(src);
    for (DType d : kAll) {
      const std::string what =
          std::string("cast ") + std::string(dtype_name(s)) + " -> " + std::string(dtype_name(d));
      auto want = cpu.empty({n}, d, "dst");
      cast(want, src, cpu);
      auto got = poisoned({n}, d, "dst");
      cast(got, gsrc, gpu);
      expect_same_bits(got, want, what);
      // Unaligned views: the scalar path.
      auto sbase = poisoned({n}, s, "src_base"), dbase = poisoned({n}, d, "dst_base");
      TensorView sv = offset_view(sbase, {n - 1}), dv = offset_view(dbase, {n - 1});
      gpu.copy(sv, src.view().slice(0, n - 1));
      cast(dv, sv, gpu);
      Tensor back = testing::to_host(dbase);
      Tensor want2 = cpu.empty({n - 1}, d, "dst");
      cast(want2, src.view().slice(0, n - 1), cpu);
      const size_t es = dtype_size(d);
      EXPECT_EQ(
          std::memcmp(static_cast<const char*>(back.data()) + es, want2.data(), want2.nbytes()), 0)
          << what << " (unaligned)";
    }
  }
}

TEST(GpuElementwise, CastRandomValuesToEveryDtype) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(8);
  for (DType s : kAll) {
    auto src = testing::random_tensor(cpu, {2048, 1031}, s, rng, -300, 300, "src");
    auto gsrc = to_device(src);
    for (DType d : kAll) {
      auto want = cpu.empty({2048, 1031}, d, "dst");
      cast(want, src, cpu);
      auto got = poisoned({2048, 1031}, d, "dst");
      cast(got, gsrc, gpu);
      testing::expect_equal(
          got, want,
          std::string("cast ") + std::string(dtype_name(s)) + " -> " + std::string(dtype_name(d)));
    }
  }
}

TEST(GpuElementwise, FillMatchesCpuBitForBit) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const double values[] = {0.1,
                           -2.5,
                           1e5,
                           3e38,
                           1e-9,
                           -0.0,
                           std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity()};
  for (DType t : kAll) {
    for (double v : values) {
      for (const Shape& s : {Shape{37, 1001}, Shape{1}, Shape{1 << 20}}) {
        auto want = cpu.empty(s, t, "y");
        fill(want, v, cpu);
        auto got = poisoned(s, t, "y");
        fill(got, v, gpu);
        expect_same_bits(got, want, label("fill", t, s) + " " + std::to_string(v));
      }
      // Unaligned: the scalar path, and the element before the view stays untouched.
      auto base = poisoned({1001}, t, "base");
      TensorView view = offset_view(base, {1000});
      fill(view, v, gpu);
      Tensor back = testing::to_host(base);
      auto want = cpu.empty({1000}, t, "y");
      fill(want, v, cpu);
      const size_t es = dtype_size(t);
      EXPECT_EQ(std::memcmp(static_cast<const char*>(back.data()) + es, want.data(), want.nbytes()),
                0)
          << label("fill (unaligned)", t, {1000});
      const auto* first = static_cast<const unsigned char*>(back.data());
      for (size_t k = 0; k < es; ++k) EXPECT_EQ(first[k], 0xFF) << "fill wrote before the view";
    }
  }
}

TEST(GpuCopy, StridedViewsMatchCpuBitwise) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(77);
  auto& gpu = testing::gpu_ctx();
  auto& cpu = testing::cpu_ctx();
  for (DType dt : {DType::f32, DType::bf16}) {
    auto src = testing::random_tensor(cpu, {37, 5, 24}, DType::f32, rng);
    auto dsrc = testing::to_device(src);
    auto band = [](const TensorView& v) {  // heads 1..3, columns 3..20 of each token
      TensorView b = v;
      b.data = b.element(1 * 24 + 3);
      b.shape = {37, 3, 17, 0};
      return b;
    };
    auto want = cpu.empty({37, 3, 17}, dt);
    copy(want, band(src), cpu);
    auto got = testing::poisoned({37, 3, 17}, dt);
    copy(got, band(dsrc), gpu);
    testing::expect_bitwise_equal(got, want, "copy gather");
    auto back_cpu = cpu.zeros({37, 5, 24}, DType::f32);
    auto back_gpu = testing::to_device(back_cpu);
    copy(band(back_cpu), want, cpu);
    copy(band(back_gpu), got, gpu);
    testing::expect_bitwise_equal(back_gpu, back_cpu, "copy scatter");
  }
}

}  // namespace
}  // namespace r1kit::kernels

// GPU vs CPU: Philox uniforms must be bit-identical; normals agree to float rounding.
#include "kernels/random.h"

#include "tests/common/test_util.h"
#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {

TEST(GpuRandom, UniformBitsMatchCpu) {
  R1_REQUIRE_GPU();
  auto gpu = Context::cuda();
  auto& cpu = testing::cpu_ctx();
  const int64_t n = 1 << 20 | 7;
  auto g = gpu->empty({n}, DType::f32);
  auto back = cpu.empty({n}, DType::f32);
  auto ref = cpu.empty({n}, DType::f32);
  random_uniform(g, -1, 2, 99, 1234567890123ull, *gpu);
  gpu->copy(back, g);
  random_uniform(ref, -1, 2, 99, 1234567890123ull, cpu);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(back.ptr<float>()[i], ref.ptr<float>()[i]) << "element " << i;
}

TEST(GpuRandom, NormalMatchesCpuToRounding) {
  R1_REQUIRE_GPU();
  auto gpu = Context::cuda();
  auto& cpu = testing::cpu_ctx();
  const int64_t n = 100003;
  auto g = gpu->empty({n}, DType::f32);
  auto back = cpu.empty({n}, DType::f32);
  auto ref = cpu.empty({n}, DType::f32);
  random_normal(g, 0, 1, 5, 0, *gpu);
  gpu->copy(back, g);
  random_normal(ref, 0, 1, 5, 0, cpu);
  // logf/cosf/sqrtf may differ by a few ulps between libm and CUDA: normalised error ~1e-7.
  EXPECT_LT(testing::normalized_error(testing::to_double(back), testing::to_double(ref)), 1e-6);
}

}  // namespace
}  // namespace r1kit::kernels

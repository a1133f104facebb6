// Builds without CUDA: every CUDA entry point says by name that it is not there. Builds with CUDA
// on a machine without a GPU: asking for a CUDA context fails with the reason, and ops on a CPU
// context never reach the CUDA backend.
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/softmax.h"
#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {

#if !defined(R1KIT_WITH_CUDA)
TEST(NoCuda, EntryPointsNameTheOp) {
  auto& ctx = testing::cpu_ctx();
  auto x = ctx.empty({2, 3}, DType::f32);
  auto w = ctx.empty({3}, DType::f32);
  auto r = ctx.empty({2}, DType::f32);
  testing::expect_error_contains([&] { cuda::rmsnorm_forward(x, r, x, w, 1e-6, ctx); },
                                 {"[rmsnorm]", "built without CUDA"});
  testing::expect_error_contains([&] { cuda::softmax_forward(x, x, ctx); },
                                 {"[softmax]", "built without CUDA"});
  testing::expect_error_contains([&] { cuda::matmul_forward(x, x, x, {}, ctx); },
                                 {"[matmul]", "built without CUDA"});
  testing::expect_error_contains([&] { cuda::attention_forward(x, r, x, x, x, r, 1.0, ctx); },
                                 {"[attention]", "built without CUDA"});
}
#endif

TEST(NoCuda, CudaContextWithoutGpuSaysWhy) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present";
  testing::expect_error_contains([] { Context::cuda(); }, {"cannot create a CUDA context"});
}

}  // namespace
}  // namespace r1kit::kernels

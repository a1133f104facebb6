// Ops without a CUDA kernel in this build say so by name when their CUDA entry point is reached.
#include "kernels/rmsnorm.h"
#include "kernels/softmax.h"
#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {

TEST(PendingCuda, EntryPointsNameTheOp) {
  auto& ctx = testing::cpu_ctx();
  auto x = ctx.empty({2, 3}, DType::f32);
  auto w = ctx.empty({3}, DType::f32);
  auto r = ctx.empty({2}, DType::f32);
#if defined(R1KIT_WITH_CUDA)
  const char* why = "has no CUDA kernel in this build yet";
#else
  const char* why = "built without CUDA";
#endif
  testing::expect_error_contains([&] { cuda::rmsnorm_forward(x, r, x, w, 1e-6, ctx); },
                                 {"[rmsnorm]", why});
  testing::expect_error_contains([&] { cuda::softmax_forward(x, x, ctx); }, {"[softmax]", why});
}

}  // namespace
}  // namespace r1kit::kernels

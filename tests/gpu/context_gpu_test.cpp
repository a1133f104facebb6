// The CUDA context on a real GPU: caching allocator reuse and statistics, host<->device copies,
// zero-filled tensors and a FlatArena on the device.
#include "core/context.h"
#include "tests/common/test_util.h"

namespace r1kit {
namespace {

TEST(GpuContext, CachingAllocatorReusesFreedBlocks) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU: " << cuda_describe();
  auto ctx = Context::cuda();
  auto& alloc = ctx->allocator();
  void* first = nullptr;
  {
    Tensor t = ctx->empty({1000, 3}, DType::f32, "t");
    first = t.data();
    EXPECT_EQ(alloc.stats().num_system_allocs, 1u);
    EXPECT_EQ(alloc.stats().allocated_bytes, CudaCachingAllocator::round_size(12000));
  }
  EXPECT_EQ(alloc.stats().allocated_bytes, 0u);
  EXPECT_EQ(alloc.stats().reserved_bytes, CudaCachingAllocator::round_size(12000));
  Tensor again = ctx->empty({3000}, DType::f32, "again");  // same rounded size
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(alloc.stats().num_cache_hits, 1u);
  EXPECT_EQ(alloc.stats().num_system_allocs, 1u);
}

TEST(GpuContext, CopiesAndZerosRoundTrip) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU: " << cuda_describe();
  auto ctx = Context::cuda();
  auto& cpu = testing::cpu_ctx();
  std::mt19937_64 rng(5);
  Tensor host = testing::random_tensor(cpu, {17, 5}, DType::bf16, rng);
  Tensor dev = ctx->empty({17, 5}, DType::bf16);
  ctx->copy(dev, host);
  Tensor back = cpu.empty({17, 5}, DType::bf16);
  ctx->copy(back, dev);
  EXPECT_EQ(testing::to_double(back), testing::to_double(host));
  Tensor z = ctx->zeros({33}, DType::f32);
  Tensor zb = cpu.empty({33}, DType::f32);
  testing::fill_constant(zb, 1.0);
  ctx->copy(zb, z);
  for (double v : testing::to_double(zb)) EXPECT_EQ(v, 0.0);
}

TEST(GpuContext, FlatArenaOnDeviceIsZeroedAndAligned) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU: " << cuda_describe();
  auto ctx = Context::cuda();
  FlatArena a(DType::f32);
  a.add("w1", {7, 9});
  a.add("w2", {5});
  a.allocate(ctx->allocator());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.view("w2").data) % FlatArena::kAlignBytes, 0u);
  Tensor back = testing::cpu_ctx().empty({a.flat().numel()}, DType::f32);
  ctx->copy(back, a.flat());
  for (double v : testing::to_double(back)) ASSERT_EQ(v, 0.0);
}

}  // namespace
}  // namespace r1kit

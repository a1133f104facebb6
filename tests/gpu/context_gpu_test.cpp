// The CUDA context on a real GPU: caching allocator reuse and statistics, host<->device copies,
// zero-filled tensors, a FlatArena on the device, and the device error record (a kernel's report
// thrown at the next synchronisation, then cleared).
#include <chrono>
#include <thread>

#include "core/context.h"
#include "kernels/embedding.h"
#include "tests/common/test_util.h"
#include "tests/gpu/gpu_util.h"

namespace r1kit {
namespace {

TEST(GpuContext, CachingAllocatorReusesFreedBlocks) {
  R1_REQUIRE_GPU();
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
  R1_REQUIRE_GPU();
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
  R1_REQUIRE_GPU();
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

// An embedding lookup with ids {0, .., bad at `pos`, ..} into a (10, 4) table on ctx.
void lookup_with_bad_id(Context& ctx, Tensor& out, int32_t bad, int64_t pos) {
  auto& cpu = testing::cpu_ctx();
  const int64_t n = 8;
  Tensor ids_h = cpu.empty({n}, DType::i32, "ids");
  for (int64_t i = 0; i < n; ++i) ids_h.ptr<int32_t>()[i] = static_cast<int32_t>(i % 10);
  ids_h.ptr<int32_t>()[pos] = bad;
  Tensor ids = ctx.empty({n}, DType::i32, "ids");
  ctx.copy(ids, ids_h);
  Tensor table = ctx.zeros({10, 4}, DType::f32, "table");
  out = ctx.empty({n, 4}, DType::f32, "out");
  kernels::embedding_forward(out, ids, table, ctx);  // asynchronous: no throw here
}

TEST(GpuContext, DeviceErrorThrowsAtSynchronizeThenClears) {
  R1_REQUIRE_GPU();
  auto ctx = Context::cuda();
  Tensor out;
  lookup_with_bad_id(*ctx, out, 12, 5);
  testing::expect_error_contains([&] { ctx->synchronize(); },
                                 {"[embedding]", "id 12", "position 5", "V = 10"});
  // The record was cleared by the throw: the next synchronisation and copy do not throw again.
  EXPECT_NO_THROW(ctx->synchronize());
  Tensor back = testing::cpu_ctx().empty({8, 4}, DType::f32);
  EXPECT_NO_THROW(ctx->copy(back, out));
  // A second bad lookup is reported afresh.
  lookup_with_bad_id(*ctx, out, -3, 2);
  testing::expect_error_contains([&] { ctx->synchronize(); },
                                 {"[embedding]", "id -3", "position 2", "V = 10"});
  EXPECT_NO_THROW(ctx->synchronize());
}

TEST(GpuContext, DeviceErrorThrowsAtCopyToHost) {
  R1_REQUIRE_GPU();
  auto ctx = Context::cuda();
  Tensor out;
  lookup_with_bad_id(*ctx, out, 10, 7);
  Tensor back = testing::cpu_ctx().empty({8, 4}, DType::f32);
  testing::expect_error_contains([&] { ctx->copy(back, out); },
                                 {"[embedding]", "id 10", "position 7", "V = 10"});
  EXPECT_NO_THROW(ctx->synchronize());
}

TEST(GpuContext, DeviceErrorStaysWithItsContext) {
  R1_REQUIRE_GPU();
  auto bad = Context::cuda();
  auto good = Context::cuda();
  Tensor out;
  lookup_with_bad_id(*bad, out, 99, 1);
  // Long enough for the 8-row lookup to have run; the check holds (vacuously) even if it had not.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_NO_THROW(good->synchronize());
  testing::expect_error_contains([&] { bad->synchronize(); },
                                 {"[embedding]", "id 99", "position 1", "V = 10"});
}

}  // namespace
}  // namespace r1kit

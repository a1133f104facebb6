// Core tensors: views, reshape/slice/select, overlap detection, move-only ownership, FlatArena.
#include "core/tensor.h"

#include "core/context.h"
#include "tests/common/test_util.h"

namespace r1kit {
namespace {
using testing::cpu_ctx;

TEST(TensorView, ContiguousStridesAndDescribe) {
  float buf[24];
  TensorView v(buf, DType::f32, Device::cpu(), {2, 3, 4}, "layers.0.w");
  EXPECT_EQ(v.numel(), 24);
  EXPECT_EQ(v.stride[0], 12);
  EXPECT_EQ(v.stride[1], 4);
  EXPECT_EQ(v.stride[2], 1);
  EXPECT_TRUE(v.is_contiguous());
  EXPECT_EQ(v.size(-1), 4);
  EXPECT_EQ(v.describe(), "'layers.0.w' (2, 3, 4) f32 cpu");
  EXPECT_THROW(v.size(3), Error);
}

TEST(TensorView, ReshapeSliceSelect) {
  float buf[24];
  for (int i = 0; i < 24; ++i) buf[i] = static_cast<float>(i);
  TensorView v(buf, DType::f32, Device::cpu(), {4, 6}, "m");
  auto r = v.reshape({2, -1, 3});
  EXPECT_EQ(r.dims(), (Shape{2, 4, 3}));
  EXPECT_THROW(v.reshape({5, -1}), Error);
  EXPECT_THROW(v.reshape({-1, -1}), Error);
  auto s = v.slice(1, 3);
  EXPECT_EQ(s.dims(), (Shape{2, 6}));
  EXPECT_EQ(s.ptr<float>()[0], 6.0f);
  auto row = v.select(3);
  EXPECT_EQ(row.ndim, 1);
  EXPECT_EQ(row.ptr<float>()[2], 20.0f);
  EXPECT_EQ(row.name, "m[3]");
  EXPECT_THROW(v.slice(2, 5), Error);
  EXPECT_THROW(v.select(4), Error);
  EXPECT_THROW(TensorView(buf, DType::f32, Device::cpu(), {1, 1, 1, 1, 1}, "five"), Error);
}

TEST(TensorView, OverlapDetection) {
  float buf[20];
  TensorView a(buf, DType::f32, Device::cpu(), {10}, "a");
  TensorView b(buf + 10, DType::f32, Device::cpu(), {10}, "b");
  TensorView c(buf + 9, DType::f32, Device::cpu(), {2}, "c");
  EXPECT_FALSE(a.overlaps(b));
  EXPECT_TRUE(a.overlaps(c));
  EXPECT_TRUE(b.overlaps(c));
  TensorView d(buf + 10, DType::f32, Device::cuda(0), {10}, "d");
  EXPECT_FALSE(b.overlaps(d)) << "different devices never alias";
}

TEST(Tensor, MoveOnlyOwnershipReturnsMemory) {
  CpuAllocator alloc;
  {
    Tensor t({3, 5}, DType::bf16, alloc, "t");
    EXPECT_EQ(t.nbytes(), 30u);
    EXPECT_EQ(alloc.stats().allocated_bytes, 30u);
    Tensor u = std::move(t);
    EXPECT_EQ(t.data(), nullptr);
    EXPECT_NE(u.data(), nullptr);
    Tensor w({2}, DType::f64, alloc, "w");
    w = std::move(u);
    EXPECT_EQ(alloc.stats().allocated_bytes, 30u) << "move-assign must free the old buffer";
    EXPECT_EQ(w.name(), "t");
  }
  EXPECT_EQ(alloc.stats().allocated_bytes, 0u);
  EXPECT_EQ(alloc.stats().peak_allocated_bytes, 46u);
}

TEST(FlatArena, OneAllocationAlignedViews) {
  CpuAllocator alloc;
  FlatArena params(DType::f32);
  params.add("embed.weight", {7, 3});
  params.add("norm.weight", {3});
  params.add("lm_head.weight", {7, 3});
  EXPECT_THROW(params.add("norm.weight", {1}), Error);
  params.allocate(alloc);
  EXPECT_EQ(alloc.stats().num_system_allocs, 1u);
  EXPECT_THROW(params.add("late", {1}), Error);
  EXPECT_EQ(params.numel_used(), 45);
  for (size_t i = 0; i < params.size(); ++i) {
    auto v = params.view(i);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % FlatArena::kAlignBytes, 0u) << v.name;
    for (int64_t j = 0; j < v.numel(); ++j) EXPECT_EQ(v.ptr<float>()[j], 0.0f);
  }
  auto flat = params.flat();
  EXPECT_GE(flat.numel(), 45);
  auto n = params.view("norm.weight");
  EXPECT_FALSE(n.overlaps(params.view("embed.weight")));
  EXPECT_TRUE(n.overlaps(flat));
  testing::expect_error_contains([&] { params.view("missing.weight"); }, {"missing.weight"});

  FlatArena grads = FlatArena::like(params, alloc, DType::f32);
  ASSERT_EQ(grads.size(), 3u);
  EXPECT_EQ(grads.name(2), "lm_head.weight");
  EXPECT_EQ(grads.view(2).dims(), (Shape{7, 3}));
  // Same layout: offsets within the flat buffer agree.
  auto off = [](const FlatArena& a, size_t i) {
    return static_cast<char*>(a.view(i).data) - static_cast<char*>(a.flat().data);
  };
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(off(params, i), off(grads, i));
}

TEST(Context, CpuContextMakesTensorsAndCopies) {
  auto ctx = Context::cpu({.threads = 2, .seed = 3});
  EXPECT_TRUE(ctx->device().is_cpu());
  EXPECT_EQ(ctx->stream(), nullptr);
  auto z = ctx->zeros({4, 3}, DType::f32, "z");
  for (int i = 0; i < 12; ++i) EXPECT_EQ(z.ptr<float>()[i], 0.0f);
  auto a = ctx->empty({12}, DType::f32, "a");
  for (int i = 0; i < 12; ++i) a.ptr<float>()[i] = static_cast<float>(i);
  ctx->copy(z.view().flatten(), a);
  EXPECT_EQ(z.ptr<float>()[11], 11.0f);
  auto wrong = ctx->empty({5}, DType::f32, "wrong");
  testing::expect_error_contains([&] { ctx->copy(wrong, a); }, {"[copy]", "'wrong' (5)"});
}

TEST(Context, CudaUnavailableIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present; this checks the CPU-only path";
  testing::expect_error_contains([] { Context::cuda(); }, {"cannot create a CUDA context"});
  auto ctx = Context::best_available();
  EXPECT_TRUE(ctx->device().is_cpu());
}

}  // namespace
}  // namespace r1kit

// Memory-bound cases: rmsnorm, swiglu, rope, elementwise, random.
#include "bench/cases.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

#include <fmt/format.h>

namespace r1kit::bench {
using namespace r1kit::kernels;

void add_pointwise_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType f = cfg.dtype;
  const bool big = cfg.cuda && !cfg.quick;
  const int64_t n = cfg.quick ? 512 : (big ? 16384 : 4096),
                c = cfg.quick ? 256 : (big ? 7168 : 1024);
  cs.push_back({"rmsnorm_forward", fmt::format("{}x{}", n, c), 4.0 * n * c,
                dsize(f) * (2 * n * c + c) + 4.0 * n, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, c}, f, 3));
                  keep.push_back(rand(ctx, {c}, f, 4));
                  keep.push_back(ctx.empty({n, c}, f));
                  keep.push_back(ctx.empty({n}, DType::f32));
                  return std::function<void()>([&ctx, &keep] {
                    rmsnorm_forward(keep[2], keep[3], keep[0], keep[1], 1e-6, ctx);
                  });
                }});
  const int64_t h = cfg.quick ? 256 : (big ? 18432 : 2048);
  cs.push_back({"swiglu_forward", fmt::format("{}x{}", n, h), 6.0 * n * h, dsize(f) * 3 * n * h,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {n, h}, f, 5));
                  keep.push_back(rand(ctx, {n, h}, f, 6));
                  keep.push_back(ctx.empty({n, h}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { swiglu_forward(keep[2], keep[0], keep[1], ctx); });
                }});
  // RoPE over (T, H, 64) in the interleaved layout MLA uses.
  const int64_t t = cfg.quick ? 256 : (big ? 16384 : 2048),
                heads = cfg.quick ? 8 : (big ? 128 : 16);
  cs.push_back({"rope_forward", fmt::format("{}x{}x64", t, heads), 6.0 * t * heads * 64,
                dsize(f) * 2 * t * heads * 64 + 4.0 * (t * 64 + t),
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  RopeConfig rc;
                  rc.dim = 64;
                  keep.push_back(rand(ctx, {t, heads, 64}, f, 10));
                  keep.push_back(ctx.empty({t, heads, 64}, f));
                  keep.push_back(ctx.empty({t, 32}, DType::f32));
                  keep.push_back(ctx.empty({t, 32}, DType::f32));
                  Tensor pos = Tensor({t}, DType::i32, ctx.host_allocator());
                  for (int64_t i = 0; i < t; ++i) pos.ptr<int32_t>()[i] = static_cast<int32_t>(i);
                  keep.push_back(ctx.empty({t}, DType::i32));
                  ctx.copy(keep[4], pos);
                  rope_tables(keep[2], keep[3], keep[4], rc, ctx);
                  return std::function<void()>([&ctx, &keep] {
                    rope_forward(keep[1], keep[0], keep[2], keep[3], keep[4],
                                 RopeLayout::interleaved, ctx);
                  });
                }});
  const int64_t rnd = cfg.quick ? (1 << 22) : (1 << 28);
  cs.push_back({"random_uniform", fmt::format("{}", rnd), 0, 4.0 * rnd,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(ctx.empty({rnd}, DType::f32));
                  return std::function<void()>(
                      [&ctx, &keep] { random_uniform(keep[0], -1, 1, 3, 0, ctx); });
                },
                "f32"});
}

}  // namespace r1kit::bench

// Embedding lookup and its backward, AdamW, and the gradient norm and scaling.
#include "bench/cases.h"
#include "kernels/adamw.h"
#include "kernels/embedding.h"
#include "kernels/grad_norm.h"

#include <fmt/format.h>

namespace r1kit::bench {
using namespace r1kit::kernels;

void add_optim_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType f = cfg.dtype;
  const bool big = cfg.cuda && !cfg.quick;
  const int64_t n = cfg.quick ? 512 : (big ? 16384 : 4096),
                c = cfg.quick ? 256 : (big ? 7168 : 1024);
  const int64_t vocab = cfg.quick ? 4096 : 32768;
  cs.push_back({"embedding_forward", fmt::format("{}x{}", n, c), 0, dsize(f) * 2 * n * c + 4.0 * n,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {vocab, c}, f, 9));
                  keep.push_back(ids(ctx, {n}, static_cast<int>(vocab)));
                  keep.push_back(ctx.empty({n, c}, f));
                  return std::function<void()>(
                      [&ctx, &keep] { embedding_forward(keep[2], keep[1], keep[0], ctx); });
                }});
  // dtable += scatter of dout by ids. The hashed ids of bench/cases.h are distinct for n <= V (an
  // odd multiplier modulo a power of two), so every dout row reads and writes one table row.
  cs.push_back({"embedding_backward", fmt::format("{}x{}", n, c), 1.0 * n * c,
                dsize(f) * 3 * n * c + 4.0 * n, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {vocab, c}, f, 12));
                  keep.push_back(ids(ctx, {n}, static_cast<int>(vocab)));
                  keep.push_back(rand(ctx, {n, c}, f, 13));
                  return std::function<void()>(
                      [&ctx, &keep] { embedding_backward(keep[0], keep[2], keep[1], ctx); });
                }});
  // AdamW over fp32 master weights and state with f32 gradients and the bf16 working copy.
  const int64_t an = cfg.quick ? (1 << 20) : (big ? (1 << 28) : (1 << 24));
  cs.push_back({"adamw_update", fmt::format("{}", an), 12.0 * an, 4.0 * 7 * an + 2.0 * an,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {an}, DType::f32, 22));
                  keep.push_back(rand(ctx, {an}, DType::f32, 23));
                  keep.push_back(ctx.zeros({an}, DType::f32));
                  keep.push_back(ctx.zeros({an}, DType::f32));
                  keep.push_back(ctx.empty({an}, DType::bf16));
                  return std::function<void()>([&ctx, &keep] {
                    AdamWParams hp;
                    adamw_update(keep[0], keep[1], keep[2], keep[3], keep[4], hp, ctx);
                  });
                },
                "f32"});
  // Global norm and scaling of one flat f32 gradient buffer (a FlatArena's flat()).
  cs.push_back({"grad_global_norm", fmt::format("{}", an), 2.0 * an, 4.0 * an,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {an}, DType::f32, 24));
                  return std::function<void()>([&ctx, &keep] {
                    volatile double norm = grad_global_norm(keep[0], ctx);
                    (void)norm;
                  });
                },
                "f32"});
  // The scaling half of clip_grad_norm (coef 1: the values stay put over the repetitions).
  cs.push_back({"grad_scale", fmt::format("{}", an), 1.0 * an, 8.0 * an,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {an}, DType::f32, 25));
                  return std::function<void()>([&ctx, &keep] {
                    const std::vector<TensorView> g{keep[0].view()};
                    if (ctx.is_cuda()) {
                      cuda::grad_scale(g, 1.0, ctx);
                    } else {
                      cpu::grad_scale(g, 1.0, ctx);
                    }
                  });
                },
                "f32"});
}

}  // namespace r1kit::bench

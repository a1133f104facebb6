// MoE routing and permutation, and next-token sampling.
#include "bench/cases.h"
#include "kernels/moe.h"
#include "kernels/sampling.h"

#include <fmt/format.h>

namespace r1kit::bench {
using namespace r1kit::kernels;

void add_moe_sampling_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType f = cfg.dtype;
  // DeepSeek-V3 routing: 256 experts, 8 groups, top-4 groups, top-8 experts, sigmoid + bias.
  const int64_t rn = cfg.quick ? 512 : (cfg.cuda ? 16384 : 4096);
  cs.push_back({"moe_route_forward", fmt::format("{}x256", rn), 10.0 * rn * 256,
                dsize(f) * rn * 256 + 4.0 * (rn * 256 + rn * 16),
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rn, 256}, f, 19));
                  keep.push_back(rand(ctx, {256}, DType::f32, 20, -0.01, 0.01));
                  keep.push_back(ctx.empty({rn, 8}, DType::i32));
                  keep.push_back(ctx.empty({rn, 8}, DType::f32));
                  keep.push_back(ctx.empty({rn, 256}, DType::f32));
                  return std::function<void()>([&ctx, &keep] {
                    MoeRouting r;
                    r.n_routed_experts = 256;
                    r.num_experts_per_tok = 8;
                    r.scoring = MoeScoring::sigmoid;
                    r.n_group = 8;
                    r.topk_group = 4;
                    r.topk_method = MoeTopkMethod::noaux_tc;
                    r.norm_topk_prob = true;
                    r.routed_scaling_factor = 2.5;
                    moe_route_forward(keep[2], keep[3], keep[4], keep[0], keep[1], r, ctx);
                  });
                }});
  const int64_t pc = cfg.quick ? 128 : (cfg.cuda ? 7168 : 1024);
  const int64_t pn = cfg.cuda && !cfg.quick ? 4096 : rn;
  cs.push_back({"moe_permute", fmt::format("{}x8x{}", pn, pc), 0, dsize(f) * (pn + pn * 8) * pc,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {pn, pc}, f, 21));
                  keep.push_back(ids(ctx, {pn, 8}, 256));
                  keep.push_back(ctx.empty({pn * 8, pc}, f));
                  keep.push_back(ctx.empty({pn * 8}, DType::i32));
                  keep.push_back(ctx.empty({257}, DType::i32));
                  return std::function<void()>([&ctx, &keep] {
                    moe_permute(keep[2], keep[3], keep[4], keep[0], keep[1], ctx);
                  });
                }});
  const int64_t sb = cfg.quick ? 16 : 64, sv = cfg.quick ? 32000 : 152064;
  cs.push_back({"sample_forward", fmt::format("{}x{} top_p=0.95", sb, sv), 20.0 * sb * sv,
                dsize(f) * sb * sv, [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {sb, sv}, f, 24, -5, 5));
                  keep.push_back(ctx.empty({sb}, DType::i32));
                  keep.push_back(ctx.empty({sb}, DType::f32));
                  Tensor cnt = Tensor({sb, 2}, DType::i64, ctx.host_allocator());
                  for (int64_t i = 0; i < sb * 2; ++i) cnt.ptr<int64_t>()[i] = i;
                  keep.push_back(ctx.empty({sb, 2}, DType::i64));
                  ctx.copy(keep[3], cnt);
                  return std::function<void()>([&ctx, &keep] {
                    SamplingParams p;
                    p.top_p = 0.95;
                    sample_forward(keep[1], keep[2], keep[0], keep[3], p, 7, ctx);
                  });
                }});
}

}  // namespace r1kit::bench

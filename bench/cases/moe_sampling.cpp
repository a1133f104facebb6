// MoE routing and permutation, and next-token sampling.
#include "bench/cases.h"
#include "kernels/moe.h"
#include "kernels/sampling.h"

#include <fmt/format.h>

namespace r1kit::bench {
using namespace r1kit::kernels;

namespace {

// The routing statistics dtype: f64 with f64 data (same precision), else f32.
DType stat_dtype(DType f) {
  return f == DType::f64 ? DType::f64 : DType::f32;
}

// A routed layout for the permutation cases: keep[0] x (n, c), keep[1] topk_idx (n, k) over e
// experts, keep[2] x_perm (n·k, c), keep[3] perm_index, keep[4] expert_offsets, keep[5]
// topk_weight (n, k), keep[6] y / dy (n, c); perm_index is filled by one moe_permute.
void permutation_setup(Context& ctx, std::vector<Tensor>& keep, int64_t n, int64_t k, int64_t e,
                       int64_t c, DType f) {
  keep.push_back(rand(ctx, {n, c}, f, 21));
  keep.push_back(ids(ctx, {n, k}, static_cast<int>(e)));
  keep.push_back(ctx.empty({n * k, c}, f));
  keep.push_back(ctx.empty({n * k}, DType::i32));
  keep.push_back(ctx.empty({e + 1}, DType::i32));
  keep.push_back(rand(ctx, {n, k}, stat_dtype(f), 22, 0, 1));
  keep.push_back(rand(ctx, {n, c}, f, 23));
  moe_permute(keep[2], keep[3], keep[4], keep[0], keep[1], ctx);
}

Case sampling_case(int64_t sb, int64_t sv, DType f, const SamplingParams& p,
                   const std::string& what) {
  // The least work: read the logits once (the selection and the Gumbel draw re-read them from
  // cache); ~20 flops per token for the exp, Philox and logs.
  return {"sample_forward", fmt::format("{}x{} {}", sb, sv, what), 20.0 * sb * sv,
          dsize(f) * sb * sv, [=](Context& ctx, std::vector<Tensor>& keep) {
            keep.push_back(rand(ctx, {sb, sv}, f, 24, -5, 5));
            keep.push_back(ctx.empty({sb}, DType::i32));
            keep.push_back(ctx.empty({sb}, DType::f32));
            Tensor cnt = Tensor({sb, 2}, DType::i64, ctx.host_allocator());
            for (int64_t i = 0; i < sb * 2; ++i) cnt.ptr<int64_t>()[i] = i;
            keep.push_back(ctx.empty({sb, 2}, DType::i64));
            ctx.copy(keep[3], cnt);
            return std::function<void()>([&ctx, &keep, p] {
              sample_forward(keep[1], keep[2], keep[0], keep[3], p, 7, ctx);
            });
          }};
}

}  // namespace

void add_moe_sampling_cases(std::vector<Case>& cs, const BenchConfig& cfg) {
  const DType f = cfg.dtype, st = stat_dtype(f);
  // DeepSeek-V3 routing: 256 experts, 8 groups, top-4 groups, top-8 experts, sigmoid + bias.
  const int64_t rn = cfg.quick ? 512 : (cfg.cuda ? 16384 : 4096);
  cs.push_back({"moe_route_forward", fmt::format("{}x256", rn), 10.0 * rn * 256,
                dsize(f) * rn * 256 + dsize(st) * (rn * 256 + rn * 8) + 4.0 * rn * 8,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  keep.push_back(rand(ctx, {rn, 256}, f, 19));
                  keep.push_back(rand(ctx, {256}, st, 20, -0.01, 0.01));
                  keep.push_back(ctx.empty({rn, 8}, DType::i32));
                  keep.push_back(ctx.empty({rn, 8}, st));
                  keep.push_back(ctx.empty({rn, 256}, st));
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
  // Permutation at DeepSeek-V3's hidden size: 4096 tokens × K = 8 × C = 7168. Bytes: each token
  // row read once and written K times (or the reverse), plus the weights and indices.
  const int64_t pc = cfg.quick ? 128 : (cfg.cuda ? 7168 : 1024);
  const int64_t pn = cfg.cuda && !cfg.quick ? 4096 : rn;
  const double row = dsize(f) * pn * pc, rows_k = row * 8;
  const std::string pshape = fmt::format("{}x8x{}", pn, pc);
  cs.push_back({"moe_permute", pshape, 0, row + rows_k + 4.0 * pn * 8 * 2,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  permutation_setup(ctx, keep, pn, 8, 256, pc, f);
                  return std::function<void()>([&ctx, &keep] {
                    moe_permute(keep[2], keep[3], keep[4], keep[0], keep[1], ctx);
                  });
                }});
  cs.push_back({"moe_unpermute", pshape, 2.0 * pn * 8 * pc,
                rows_k + row + 4.0 * pn * 8 + dsize(st) * pn * 8,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  permutation_setup(ctx, keep, pn, 8, 256, pc, f);
                  return std::function<void()>(
                      [&ctx, &keep] { moe_unpermute(keep[6], keep[2], keep[3], keep[5], ctx); });
                }});
  cs.push_back({"moe_permute_backward", pshape, 1.0 * pn * 8 * pc, rows_k + row + 4.0 * pn * 8,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  permutation_setup(ctx, keep, pn, 8, 256, pc, f);
                  return std::function<void()>(
                      [&ctx, &keep] { moe_permute_backward(keep[6], keep[2], keep[3], ctx); });
                }});
  cs.push_back({"moe_unpermute_backward", pshape, 3.0 * pn * 8 * pc,
                row + 2 * rows_k + 4.0 * pn * 8 + 2 * dsize(st) * pn * 8,
                [=](Context& ctx, std::vector<Tensor>& keep) {
                  permutation_setup(ctx, keep, pn, 8, 256, pc, f);
                  keep.push_back(ctx.empty({pn * 8, pc}, f));  // 7: dy_perm
                  keep.push_back(ctx.empty({pn, 8}, st));      // 8: dtopk_weight
                  return std::function<void()>([&ctx, &keep] {
                    moe_unpermute_backward(keep[7], keep[8], keep[6], keep[2], keep[3], keep[5],
                                           ctx);
                  });
                }});
  // Rollout sampling over Qwen2's vocabulary.
  const int64_t sb = cfg.quick ? 16 : 64, sv = cfg.quick ? 32000 : 152064;
  SamplingParams top_p;
  top_p.top_p = 0.95;
  cs.push_back(sampling_case(sb, sv, f, top_p, "top_p=0.95"));
  SamplingParams top_k;
  top_k.top_k = 50;
  cs.push_back(sampling_case(sb, sv, f, top_k, "top_k=50"));
}

}  // namespace r1kit::bench

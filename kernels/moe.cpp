// MoE routing and permutation front-ends: routing-config and argument validation, then the device
// switch. Checks that need the index data (expert ids in range, perm_index a permutation) are done
// by the backends as they read it.
#include "kernels/moe.h"

#include <cmath>
#include <limits>

namespace r1kit::kernels {

const char* moe_scoring_name(MoeScoring s) {
  return s == MoeScoring::softmax ? "softmax" : "sigmoid";
}

const char* moe_topk_method_name(MoeTopkMethod m) {
  switch (m) {
    case MoeTopkMethod::greedy:
      return "greedy";
    case MoeTopkMethod::group_limited_greedy:
      return "group_limited_greedy";
    case MoeTopkMethod::noaux_tc:
      return "noaux_tc";
  }
  return "?";
}

namespace {

void check_routing(const OpCheck& c, const MoeRouting& cfg) {
  const int64_t e = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  c.require(e >= 1, [&] { return fmt::format("n_routed_experts {} must be >= 1", e); });
  c.require(k >= 1 && k <= e, [&] {
    return fmt::format("num_experts_per_tok {} must be in [1, n_routed_experts {}]", k, e);
  });
  c.require(std::isfinite(cfg.routed_scaling_factor), [&] {
    return fmt::format("routed_scaling_factor {} must be finite", cfg.routed_scaling_factor);
  });
  if (cfg.topk_method == MoeTopkMethod::greedy) return;  // groups are ignored
  const char* method = moe_topk_method_name(cfg.topk_method);
  c.require(cfg.n_group >= 1 && e % cfg.n_group == 0, [&] {
    return fmt::format("{}: n_routed_experts {} must split into n_group {} equal groups", method, e,
                       cfg.n_group);
  });
  c.require(cfg.topk_group >= 1 && cfg.topk_group <= cfg.n_group, [&] {
    return fmt::format("{}: topk_group {} must be in [1, n_group {}]", method, cfg.topk_group,
                       cfg.n_group);
  });
  const int64_t group_size = e / cfg.n_group;
  c.require(k <= cfg.topk_group * group_size, [&] {
    return fmt::format(
        "{}: num_experts_per_tok {} exceeds the {} experts of topk_group {} groups "
        "of {}",
        method, k, cfg.topk_group * group_size, cfg.topk_group, group_size);
  });
  if (cfg.topk_method == MoeTopkMethod::noaux_tc)
    c.require(group_size >= 2, [&] {
      return fmt::format(
          "noaux_tc scores a group by its top-2 experts, but groups have {} "
          "(n_routed_experts {}, n_group {})",
          group_size, e, cfg.n_group);
    });
}

// The routing arguments' shapes: `rows` (N, E) sets N, `experts` (N, E), topk_idx and `slots`
// (N, K), with E = n_routed_experts and K = num_experts_per_tok. Returns N.
int64_t check_route_shapes(const OpCheck& c, const MoeRouting& cfg, NamedView rows,
                           NamedView experts, const TensorView& topk_idx, NamedView slots) {
  c.ndim(*rows.first, 2, rows.second);
  const int64_t n = rows.first->shape[0], e = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  c.shape(*rows.first, {n, e}, fmt::format("{} (n_routed_experts columns)", rows.second).c_str());
  c.shape(*experts.first, {n, e}, experts.second);
  c.shape(topk_idx, {n, k}, "topk_idx (num_experts_per_tok columns)");
  c.shape(*slots.first, {n, k}, slots.second);
  return n;
}

// perm_index (M) i32 against a row count n: M must be n·K for a whole K (M = 0 when n = 0).
int64_t top_k_from_perm(const OpCheck& c, const TensorView& perm_index, int64_t n,
                        const TensorView& rows, const char* rows_role) {
  c.ndim(perm_index, 1, "perm_index");
  const int64_t m = perm_index.shape[0];
  c.require(n > 0 ? (m % n == 0 && m > 0) : m == 0, [&] {
    return fmt::format("perm_index {} must hold N·K entries for the N = {} rows of {} {}",
                       perm_index.describe(), n, rows_role, rows.describe());
  });
  return n > 0 ? m / n : 0;
}

// rows (N, C) (y or dy) combined from y_perm (N·K, C) by perm_index (N·K) i32 and topk_weight
// (N, K).
void check_unpermute(const OpCheck& c, NamedView rows, const TensorView& y_perm,
                     const TensorView& perm_index, const TensorView& topk_weight) {
  c.int_arg(perm_index, "perm_index");
  c.ndim(*rows.first, 2, rows.second);
  c.ndim(topk_weight, 2, "topk_weight");
  const int64_t n = rows.first->shape[0], ch = rows.first->shape[1], k = topk_weight.shape[1];
  c.shape(topk_weight, {n, kAny},
          fmt::format("topk_weight (one row per token of {})", rows.second).c_str());
  c.shape(perm_index, {n * k}, "perm_index (N·K)");
  c.shape(y_perm, {n * k, ch}, "y_perm (N·K rows)");
}

}  // namespace

void moe_route_forward(const TensorView& topk_idx, const TensorView& topk_weight,
                       const TensorView& scores, const TensorView& router_logits,
                       const TensorView& bias, const MoeRouting& cfg, Context& ctx) {
  OpCheck c("moe_route", ctx);
  check_routing(c, cfg);
  c.int_arg(topk_idx, "topk_idx");
  for (auto [v, role] : {std::pair{&topk_weight, "topk_weight"},
                         {&scores, "scores"},
                         {&router_logits, "router_logits"}})
    c.float_arg(*v, role);
  c.f32_or_f64(topk_weight, "topk_weight");
  c.f32_or_f64(scores, "scores");
  const int64_t n =
      check_route_shapes(c, cfg, {&router_logits, "router_logits"}, {&scores, "scores"}, topk_idx,
                         {&topk_weight, "topk_weight"});
  c.require(n <= std::numeric_limits<int32_t>::max(), [&] {
    return fmt::format("router_logits {} has too many rows", router_logits.describe());
  });
  c.same_precision(
      {{&router_logits, "router_logits"}, {&scores, "scores"}, {&topk_weight, "topk_weight"}});
  if (bias.defined()) {
    c.float_arg(bias, "bias");
    c.shape(bias, {cfg.n_routed_experts}, "bias (e_score_correction_bias)");
    c.same_precision({{&router_logits, "router_logits"}, {&bias, "bias"}});
  }
  c.outputs_distinct({{&topk_idx, "topk_idx"}, {&topk_weight, "topk_weight"}, {&scores, "scores"}},
                     {{&router_logits, "router_logits"}, {&bias, "bias"}});
  if (ctx.is_cuda())
    return cuda::moe_route_forward(topk_idx, topk_weight, scores, router_logits, bias, cfg, ctx);
  cpu::moe_route_forward(topk_idx, topk_weight, scores, router_logits, bias, cfg, ctx);
}

void moe_route_backward(const TensorView& dlogits, const TensorView& dtopk_weight,
                        const TensorView& topk_idx, const TensorView& scores, const MoeRouting& cfg,
                        Context& ctx) {
  OpCheck c("moe_route_backward", ctx);
  check_routing(c, cfg);
  for (auto [v, role] :
       {std::pair{&dlogits, "dlogits"}, {&dtopk_weight, "dtopk_weight"}, {&scores, "scores"}})
    c.float_arg(*v, role);
  c.f32_or_f64(scores, "scores");
  c.int_arg(topk_idx, "topk_idx");
  check_route_shapes(c, cfg, {&scores, "scores"}, {&dlogits, "dlogits"}, topk_idx,
                     {&dtopk_weight, "dtopk_weight"});
  c.same_precision({{&dlogits, "dlogits"}, {&dtopk_weight, "dtopk_weight"}, {&scores, "scores"}});
  c.outputs_distinct(
      {{&dlogits, "dlogits"}},
      {{&dtopk_weight, "dtopk_weight"}, {&topk_idx, "topk_idx"}, {&scores, "scores"}});
  if (ctx.is_cuda())
    return cuda::moe_route_backward(dlogits, dtopk_weight, topk_idx, scores, cfg, ctx);
  cpu::moe_route_backward(dlogits, dtopk_weight, topk_idx, scores, cfg, ctx);
}

void moe_expert_counts(const TensorView& counts, const TensorView& topk_idx, Context& ctx) {
  OpCheck c("moe_expert_counts", ctx);
  c.on_device(counts, "counts");
  c.contiguous(counts, "counts");
  c.require(counts.dtype == DType::i32 || counts.dtype == DType::i64,
            [&] { return fmt::format("counts {} must be i32 or i64", counts.describe()); });
  c.ndim(counts, 1, "counts");
  c.require(counts.shape[0] >= 1, [&] {
    return fmt::format("counts {} must have one entry per expert", counts.describe());
  });
  c.int_arg(topk_idx, "topk_idx");
  c.ndim(topk_idx, 2, "topk_idx");
  c.no_alias(counts, "counts", topk_idx, "topk_idx");
  if (ctx.is_cuda()) return cuda::moe_expert_counts(counts, topk_idx, ctx);
  cpu::moe_expert_counts(counts, topk_idx, ctx);
}

void moe_permute(const TensorView& x_perm, const TensorView& perm_index,
                 const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_idx,
                 Context& ctx) {
  OpCheck c("moe_permute", ctx);
  for (auto [v, role] : {std::pair{&x_perm, "x_perm"}, {&x, "x"}}) {
    c.on_device(*v, role);
    c.contiguous(*v, role);
  }
  for (auto [v, role] : {std::pair{&perm_index, "perm_index"},
                         {&expert_offsets, "expert_offsets"},
                         {&topk_idx, "topk_idx"}})
    c.int_arg(*v, role);
  c.ndim(x, 2, "x");
  c.ndim(topk_idx, 2, "topk_idx");
  const int64_t n = x.shape[0], ch = x.shape[1], k = topk_idx.shape[1];
  c.shape(topk_idx, {n, kAny}, "topk_idx (one row per token of x)");
  c.require(k >= 1, [&] {
    return fmt::format("topk_idx {} must have at least one column", topk_idx.describe());
  });
  c.require(n * k <= std::numeric_limits<int32_t>::max(), [&] {
    return fmt::format("topk_idx {} has more than 2^31 - 1 entries for i32 perm_index",
                       topk_idx.describe());
  });
  c.shape(x_perm, {n * k, ch}, "x_perm (N·K rows)");
  c.same_dtype(x_perm, "x_perm", x, "x");
  c.shape(perm_index, {n * k}, "perm_index (N·K)");
  c.ndim(expert_offsets, 1, "expert_offsets");
  c.require(expert_offsets.shape[0] >= 2, [&] {
    return fmt::format("expert_offsets {} must have E+1 entries for E >= 1 experts",
                       expert_offsets.describe());
  });
  c.outputs_distinct(
      {{&x_perm, "x_perm"}, {&perm_index, "perm_index"}, {&expert_offsets, "expert_offsets"}},
      {{&x, "x"}, {&topk_idx, "topk_idx"}});
  if (ctx.is_cuda()) return cuda::moe_permute(x_perm, perm_index, expert_offsets, x, topk_idx, ctx);
  cpu::moe_permute(x_perm, perm_index, expert_offsets, x, topk_idx, ctx);
}

void moe_permute_backward(const TensorView& dx, const TensorView& dx_perm,
                          const TensorView& perm_index, Context& ctx) {
  OpCheck c("moe_permute_backward", ctx);
  c.float_arg(dx, "dx");
  c.float_arg(dx_perm, "dx_perm");
  c.int_arg(perm_index, "perm_index");
  c.ndim(dx, 2, "dx");
  const int64_t n = dx.shape[0], ch = dx.shape[1];
  const int64_t k = top_k_from_perm(c, perm_index, n, dx, "dx");
  c.shape(dx_perm, {n * k, ch}, "dx_perm (N·K rows)");
  c.same_precision({{&dx, "dx"}, {&dx_perm, "dx_perm"}});
  c.outputs_distinct({{&dx, "dx"}}, {{&dx_perm, "dx_perm"}, {&perm_index, "perm_index"}});
  if (ctx.is_cuda()) return cuda::moe_permute_backward(dx, dx_perm, perm_index, ctx);
  cpu::moe_permute_backward(dx, dx_perm, perm_index, ctx);
}

void moe_unpermute(const TensorView& y, const TensorView& y_perm, const TensorView& perm_index,
                   const TensorView& topk_weight, Context& ctx) {
  OpCheck c("moe_unpermute", ctx);
  for (auto [v, role] : {std::pair{&y, "y"}, {&y_perm, "y_perm"}, {&topk_weight, "topk_weight"}})
    c.float_arg(*v, role);
  check_unpermute(c, {&y, "y"}, y_perm, perm_index, topk_weight);
  c.same_precision({{&y, "y"}, {&y_perm, "y_perm"}, {&topk_weight, "topk_weight"}});
  c.outputs_distinct(
      {{&y, "y"}},
      {{&y_perm, "y_perm"}, {&perm_index, "perm_index"}, {&topk_weight, "topk_weight"}});
  if (ctx.is_cuda()) return cuda::moe_unpermute(y, y_perm, perm_index, topk_weight, ctx);
  cpu::moe_unpermute(y, y_perm, perm_index, topk_weight, ctx);
}

void moe_unpermute_backward(const TensorView& dy_perm, const TensorView& dtopk_weight,
                            const TensorView& dy, const TensorView& y_perm,
                            const TensorView& perm_index, const TensorView& topk_weight,
                            Context& ctx) {
  OpCheck c("moe_unpermute_backward", ctx);
  for (auto [v, role] : {std::pair{&dy_perm, "dy_perm"},
                         {&dtopk_weight, "dtopk_weight"},
                         {&dy, "dy"},
                         {&y_perm, "y_perm"},
                         {&topk_weight, "topk_weight"}})
    c.float_arg(*v, role);
  check_unpermute(c, {&dy, "dy"}, y_perm, perm_index, topk_weight);
  c.same_shape(dtopk_weight, "dtopk_weight", topk_weight, "topk_weight");
  c.same_shape(dy_perm, "dy_perm", y_perm, "y_perm");
  c.same_precision({{&dy_perm, "dy_perm"},
                    {&dtopk_weight, "dtopk_weight"},
                    {&dy, "dy"},
                    {&y_perm, "y_perm"},
                    {&topk_weight, "topk_weight"}});
  c.outputs_distinct({{&dy_perm, "dy_perm"}, {&dtopk_weight, "dtopk_weight"}},
                     {{&dy, "dy"},
                      {&y_perm, "y_perm"},
                      {&perm_index, "perm_index"},
                      {&topk_weight, "topk_weight"}});
  if (ctx.is_cuda())
    return cuda::moe_unpermute_backward(dy_perm, dtopk_weight, dy, y_perm, perm_index, topk_weight,
                                        ctx);
  cpu::moe_unpermute_backward(dy_perm, dtopk_weight, dy, y_perm, perm_index, topk_weight, ctx);
}

}  // namespace r1kit::kernels

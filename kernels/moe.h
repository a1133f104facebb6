// DeepSeekMoE routing (router scores, group-limited top-k, routing weights) and the token
// permutation that groups token rows by expert for grouped expert GEMMs, forward and backward.
// Legend: N tokens, C channels, E routed experts, K experts per token (num_experts_per_tok).
#pragma once

#include <cstdint>

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// ---- Routing
// --------------------------------------------------------------------------------------
//
// Per token, with router logits l (E) and the optional correction bias b (E, zero when absent):
//   s = softmax(l) or sigmoid(l)                                   scores, saved for backward
//   c = s + b                                                      used ONLY to choose experts
//   greedy:                c unchanged (groups ignored)
//   group_limited_greedy:  group score = max of the group's c         (DeepSeek-V2)
//   noaux_tc:              group score = sum of the group's top-2 c   (DeepSeek-V3)
//     keep the topk_group best groups, set c of every expert in the other groups to the fill
//     (0 as in transformers, or -inf as in DeepSeek-V3 inference/model.py)
//   topk_idx  = the K experts with the largest c, in descending c
//   w_k       = s[topk_idx_k]                                      unbiased scores
//   if norm_topk_prob and K > 1:  w_k /= (Σ_j w_j + 1e-20)
//   w_k      *= routed_scaling_factor
// Ties (equal c, or equal group scores) go to the lowest index, so the result is deterministic;
// NaN scores rank below every number. transformers' topk(sorted=False) leaves the order of the K
// chosen experts unspecified, so compare with it as sets.
//
// Differences between the references, and what we do:
//  - norm_topk_prob with K = 1: DeepSeek's own modeling_deepseek.py skips the renormalisation (the
//    weight stays the score); transformers' DeepseekV3 divides anyway (the weight becomes ~1). We
//    follow DeepSeek (K > 1). Qwen2-MoE and Mixtral also renormalise at K = 1.
//  - transformers' DeepseekV2 never renormalises and always scales; DeepSeek's V2 code scales only
//    when it does not renormalise. Both agree with the rule above for the released V2 configs
//    (norm_topk_prob = false).
//  - The masked fill only matters when fewer than K experts of the kept groups have c > 0 (a
//    negative bias); with fill 0 a masked-group expert can then be chosen (lowest index first).
enum class MoeScoring : uint8_t { softmax, sigmoid };
enum class MoeTopkMethod : uint8_t { greedy, group_limited_greedy, noaux_tc };
enum class MoeGroupMaskFill : uint8_t { zero, neg_inf };

// The routing part of an HF config.json (DeepseekV2/V3, Qwen2-MoE, Mixtral with scoring softmax).
struct MoeRouting {
  int64_t n_routed_experts = 0;     // E
  int64_t num_experts_per_tok = 0;  // K
  MoeScoring scoring = MoeScoring::softmax;
  int64_t n_group = 1;     // E must divide into n_group equal groups (group methods only)
  int64_t topk_group = 1;  // groups kept per token (group methods only)
  MoeTopkMethod topk_method = MoeTopkMethod::greedy;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  MoeGroupMaskFill masked_fill = MoeGroupMaskFill::zero;  // transformers' choice
};

const char* moe_scoring_name(MoeScoring s);         // "softmax", "sigmoid"
const char* moe_topk_method_name(MoeTopkMethod m);  // "greedy", "group_limited_greedy", "noaux_tc"

// topk_idx (N, K) i32; topk_weight (N, K) f32/f64; scores (N, E) f32/f64, saved for backward;
// router_logits (N, E) any float dtype; bias (E) e_score_correction_bias, or TensorView{} for none.
// Float arguments are all f64 or none f64 (the CPU reference computes in double or in float).
void moe_route_forward(const TensorView& topk_idx, const TensorView& topk_weight,
                       const TensorView& scores, const TensorView& router_logits,
                       const TensorView& bias, const MoeRouting& cfg, Context& ctx);

// Gradient write rule: parameter gradients +=, activation gradients =, residual stream +=.
// dlogits (N, E) overwrite (=; activation gradient). The gradient flows through the weights only:
// the selection is piecewise constant and the bias gets no gradient (DeepSeek-V3 updates it by the
// load-balancing rule, from moe_expert_counts). With g = dtopk_weight, γ = routed_scaling_factor:
//   renormalised (D = Σ_j w_j + 1e-20, u_j = w_j / D):  dw_k = γ (g_k − Σ_j g_j u_j) / D
//   otherwise:                                         dw_k = γ g_k
//   ds_e = Σ_{k: topk_idx_k = e} dw_k
//   softmax:  dl_e = s_e (ds_e − Σ_f s_f ds_f);   sigmoid:  dl_e = ds_e s_e (1 − s_e)
// dtopk_weight (N, K) any float dtype; topk_idx (N, K) i32 and scores (N, E) from the forward.
void moe_route_backward(const TensorView& dlogits, const TensorView& dtopk_weight,
                        const TensorView& topk_idx, const TensorView& scores, const MoeRouting& cfg,
                        Context& ctx);

// counts (E) i32 or i64, overwritten: tokens routed to each expert, over all N·K entries of
// topk_idx (N, K) i32. Feeds the aux-loss-free bias update and the load statistics.
void moe_expert_counts(const TensorView& counts, const TensorView& topk_idx, Context& ctx);

// ---- Permutation for grouped expert GEMMs
// ---------------------------------------------------------
//
// The N·K (token, slot) pairs, flattened as f = n·K + k, are sorted by expert, stably: rows of
// expert e are [expert_offsets[e], expert_offsets[e+1]) of the permuted layout, in increasing f.
// perm_index[p] = f, the pair that permuted row p came from; pos(n, k) is its inverse.
// Expert ids outside [0, E) and a perm_index that is not a permutation of [0, N·K) are errors that
// name the position and the value; they depend on the data, so the backend checks them as it reads.

// x_perm (N·K, C) same dtype as x (a row copy, any dtype): x_perm[p] = x[perm_index[p] / K];
// perm_index (N·K) i32; expert_offsets (E+1) i32 prefix sums (E from its length);
// x (N, C); topk_idx (N, K) i32 with ids in [0, E).
void moe_permute(const TensorView& x_perm, const TensorView& perm_index,
                 const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_idx,
                 Context& ctx);

// Gradient write rule: parameter gradients +=, activation gradients =, residual stream +=.
// dx (N, C) overwrite (=; activation gradient): dx[n] = Σ_k dx_perm[pos(n, k)], summed in k order.
// dx_perm (N·K, C); perm_index (N·K) i32 from moe_permute (K = its length / N).
void moe_permute_backward(const TensorView& dx, const TensorView& dx_perm,
                          const TensorView& perm_index, Context& ctx);

// y (N, C) overwritten: y[n] = Σ_k w[n, k] · y_perm[pos(n, k)], summed in k order.
// y_perm (N·K, C) expert outputs in the permuted layout; perm_index (N·K) i32; topk_weight (N, K).
void moe_unpermute(const TensorView& y, const TensorView& y_perm, const TensorView& perm_index,
                   const TensorView& topk_weight, Context& ctx);

// Gradient write rule: parameter gradients +=, activation gradients =, residual stream +=.
// dy_perm (N·K, C) overwrite (=): dy_perm[pos(n, k)] = w[n, k] · dy[n];
// dtopk_weight (N, K) overwrite (=; activation gradient, input of moe_route_backward):
//   dtopk_weight[n, k] = Σ_c y_perm[pos(n, k), c] · dy[n, c].
void moe_unpermute_backward(const TensorView& dy_perm, const TensorView& dtopk_weight,
                            const TensorView& dy, const TensorView& y_perm,
                            const TensorView& perm_index, const TensorView& topk_weight,
                            Context& ctx);

namespace cpu {
void moe_route_forward(const TensorView& topk_idx, const TensorView& topk_weight,
                       const TensorView& scores, const TensorView& router_logits,
                       const TensorView& bias, const MoeRouting& cfg, Context& ctx);
void moe_route_backward(const TensorView& dlogits, const TensorView& dtopk_weight,
                        const TensorView& topk_idx, const TensorView& scores, const MoeRouting& cfg,
                        Context& ctx);
void moe_expert_counts(const TensorView& counts, const TensorView& topk_idx, Context& ctx);
void moe_permute(const TensorView& x_perm, const TensorView& perm_index,
                 const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_idx,
                 Context& ctx);
void moe_permute_backward(const TensorView& dx, const TensorView& dx_perm,
                          const TensorView& perm_index, Context& ctx);
void moe_unpermute(const TensorView& y, const TensorView& y_perm, const TensorView& perm_index,
                   const TensorView& topk_weight, Context& ctx);
void moe_unpermute_backward(const TensorView& dy_perm, const TensorView& dtopk_weight,
                            const TensorView& dy, const TensorView& y_perm,
                            const TensorView& perm_index, const TensorView& topk_weight,
                            Context& ctx);
}  // namespace cpu
namespace cuda {
void moe_route_forward(const TensorView& topk_idx, const TensorView& topk_weight,
                       const TensorView& scores, const TensorView& router_logits,
                       const TensorView& bias, const MoeRouting& cfg, Context& ctx);
void moe_route_backward(const TensorView& dlogits, const TensorView& dtopk_weight,
                        const TensorView& topk_idx, const TensorView& scores, const MoeRouting& cfg,
                        Context& ctx);
void moe_expert_counts(const TensorView& counts, const TensorView& topk_idx, Context& ctx);
void moe_permute(const TensorView& x_perm, const TensorView& perm_index,
                 const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_idx,
                 Context& ctx);
void moe_permute_backward(const TensorView& dx, const TensorView& dx_perm,
                          const TensorView& perm_index, Context& ctx);
void moe_unpermute(const TensorView& y, const TensorView& y_perm, const TensorView& perm_index,
                   const TensorView& topk_weight, Context& ctx);
void moe_unpermute_backward(const TensorView& dy_perm, const TensorView& dtopk_weight,
                            const TensorView& dy, const TensorView& y_perm,
                            const TensorView& perm_index, const TensorView& topk_weight,
                            Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels

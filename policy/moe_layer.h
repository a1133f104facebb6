// The DeepSeekMoE layer as a standalone module with explicit forward and backward: router, routed
// experts run as grouped GEMMs over the token permutation, shared experts, router replay, the
// optional sequence-wise balance loss, and the auxiliary-loss-free bias update.
//
// Legend: T packed tokens, B sequences, C hidden size, E routed experts, K experts per token,
// I expert width (moe_intermediate_size), Is = n_shared_experts · I, M = T·K routed rows.
//
//   l        = x · gateᵀ                                   (T, E) router logits, f32 (f64 in tests)
//   idx, w   = route(l, e_score_correction_bias)           kernels::moe_route_forward, cfg.routing
//              (or, with router replay, the recorded idx and weights recomputed from the scores)
//   x_perm   = x rows grouped by expert                    (M, C) kernels::moe_permute
//   h        = x_perm · gate_up[e]ᵀ                        (M, 2I) per expert: [gate ‖ up]
//   a        = silu(h[:, :I]) · h[:, I:]                   (M, I)
//   y_perm   = a · down[e]ᵀ                                (M, C)
//   y        = Σ_k w[t, k] · y_perm[pos(t, k)]             (T, C) kernels::moe_unpermute
//            + down_s(silu(gate_s(x)) · up_s(x))           shared experts, unscaled
#pragma once

#include <functional>
#include <string>

#include "core/context.h"
#include "core/tensor.h"
#include "policy/batch.h"
#include "policy/config.h"

namespace r1kit::policy {

// Views of one MoE layer's weights (HF names under model.layers.{i}.mlp.; routed experts fused as
// transformers 5 holds them). Undefined views for what the config does not have.
struct MoeWeights {
  TensorView gate;             // (E, C) gate.weight
  TensorView correction_bias;  // (E) gate.e_score_correction_bias (topk_method noaux_tc)
  TensorView experts_gate_up;  // (E, 2I, C) experts.gate_up_proj: rows [0, I) gate, [I, 2I) up
  TensorView experts_down;     // (E, C, I) experts.down_proj
  TensorView shared_gate;      // (Is, C) shared_experts.gate_proj.weight (n_shared_experts > 0)
  TensorView shared_up;        // (Is, C) shared_experts.up_proj.weight
  TensorView shared_down;      // (C, Is) shared_experts.down_proj.weight
};

// prefix e.g. "model.layers.3.mlp."; checks the shapes (errors name the tensor).
MoeWeights moe_weights(const std::function<TensorView(const std::string&)>& lookup,
                       const std::string& prefix, const ModelConfig& cfg);

struct MoeOptions {
  // Router replay: (T, K) i32 expert ids recorded at sampling time (host or device). The layer
  // routes token t to exactly these experts, in this order, with weights recomputed from the
  // current scores by the config's rule (w_k = s[idx_k], renormalised over the K when
  // norm_topk_prob and K > 1, times routed_scaling_factor). The correction bias and group limits
  // play no part.
  const TensorView* replay_topk_idx = nullptr;
  // α of the sequence-wise balance loss (DeepSeek-V3 paper, eq. 17-20), 0 = off. With, per
  // sequence b of T_b tokens (B non-empty sequences), normalised scores s'_t = s_t / Σ_e s_t,e and
  // the layer's chosen experts:
  //   f_b,i = E / (K·T_b) · #{(t in b, k) : idx[t, k] = i}
  //   P_b,i = (1/T_b) Σ_{t in b} s'_t,i
  //   L_bal = α / B · Σ_b Σ_i f_b,i · P_b,i
  // f is piecewise constant (no gradient); P carries the gradient into the router logits:
  //   ∂L/∂s'_t,i = α E count_b,i / (B K T_b²),  ∂s'_i/∂s_j = (δ_ij − s'_i) / Σ_e s_e,
  // then through the sigmoid/softmax scoring. L_bal enters the objective with weight 1 (α holds the
  // weight): moe_backward adds its gradient whatever dy is.
  double balance_loss_alpha = 0;
};

// What moe_backward needs, plus the layer's routing statistics. Float routing tensors are f64 for
// f64 activations and f32 otherwise.
struct MoeSaved {
  TensorView x;                // (T, C) the input: not owned, kept alive by the caller
  Tensor scores;               // (T, E) router scores s (sigmoid or softmax of the logits)
  Tensor topk_idx;             // (T, K) i32 experts of each token (recorded for router replay)
  Tensor topk_weight;          // (T, K) routing weights
  Tensor expert_counts;        // (E) i32 tokens routed to each expert: the load for moe_update_bias
  Tensor perm_index;           // (M) i32 permuted row → flat (t, k)
  Tensor expert_offsets;       // (E+1) i32 row offsets of the experts in the permuted layout
  Tensor expert_offsets_host;  // (E+1) i32 host copy, given to every grouped GEMM of the layer
  Tensor x_perm;               // (M, C) x rows grouped by expert
  Tensor h;                    // (M, 2I) [gate ‖ up] of the routed experts
  Tensor a;                    // (M, I) swiglu(gate, up)
  Tensor y_perm;               // (M, C) routed expert outputs, permuted layout
  Tensor shared_g;             // (T, Is) shared gate_proj output
  Tensor shared_u;             // (T, Is) shared up_proj output
  Tensor shared_a;             // (T, Is) swiglu of the two
  // Sequence-wise balance loss (balance_loss_alpha > 0)
  Tensor all_idx;       // (T, E) i32 every expert, by descending score
  Tensor all_weight;    // (T, E) s'[t, all_idx]: the normalised scores in that order
  Tensor balance_coef;  // (T, E) α E count_b,i / (B K T_b²) at i = all_idx: ∂L/∂all_weight
  Tensor balance_loss;  // (1, 1) L_bal on the context's device
};

// The host value of saved.balance_loss (0 when the loss is off); synchronises a GPU stream.
double moe_balance_loss(const MoeSaved& saved, Context& ctx);

// y (T, C) overwritten (must not alias x); x (T, C) the (normed) hidden states of `batch`'s tokens
// (the batch's sequences matter only to the balance loss). saved: nullptr keeps nothing.
void moe_forward(const TensorView& y, MoeSaved* saved, const TensorView& x, const MoeWeights& w,
                 const ModelConfig& cfg, const MoeOptions& opt, const TokenBatch& batch,
                 Context& ctx);

// Gradient write rule: parameter gradients accumulate (+=), activation gradients overwrite (=),
// except the residual stream, which accumulates. dx (T, C) overwritten (=); the views of dw
// accumulate (+=), undefined ones are skipped; dw.correction_bias is never written (the bias has
// no gradient: it only steers the selection). dy (T, C). The router gets the gradient through the
// routing weights (and the balance loss): moe_unpermute_backward → moe_route_backward → gate.
void moe_backward(const TensorView& dx, const MoeWeights& dw, const TensorView& dy, MoeSaved& saved,
                  const MoeWeights& w, const ModelConfig& cfg, const MoeOptions& opt,
                  const TokenBatch& batch, Context& ctx);

// Auxiliary-loss-free balancing (DeepSeek-V3), applied outside backprop after an optimizer step:
//   b_i += γ · sign(mean_j load_j − load_i)
// correction_bias (E) float; expert_counts (E) i32 or i64 loads (one layer's counts, or their sum
// over the micro-batches of a step), on the host or the device. γ = 0 leaves the bias unchanged.
void moe_update_bias(const TensorView& correction_bias, const TensorView& expert_counts,
                     double gamma, Context& ctx);

}  // namespace r1kit::policy

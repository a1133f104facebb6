// Rotary position embeddings: inverse frequencies with the Hugging Face scalings (default, linear,
// llama3, yarn), cos/sin tables, and the rotation of (T, H, D_rope) head vectors and its backward.
// Shapes: T tokens, H heads, D = D_rope rotary dims per head (even), P rows of a cos/sin table.
#pragma once

#include <vector>

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// rope_scaling.rope_type ("type" in older configs); none is HF's "default".
enum class RopeScaling : uint8_t { none, linear, llama3, yarn };

// Which dims form the rotated pairs (i = 0 .. D/2−1 is the frequency index):
//   interleaved: (x[2i], x[2i+1])    DeepSeek-V3's inference/model.py (view_as_complex)
//   half_split:  (x[i], x[i + D/2])  Llama/Qwen2 in transformers (rotate_half)
// Both rotate pair i by the angle pos·inv_freq[i]; they differ by a fixed permutation of the D
// dims, so q·k is the same when q and k use the same layout. HF's DeepseekV3 (rope_interleave)
// permutes q_pe/k_pe from interleaved to half-split before rotate_half: identical attention.
enum class RopeLayout : uint8_t { interleaved, half_split };

// The rotary part of a model config (HF config.json fields in comments). Fields a scaling type does
// not use are ignored. For yarn, 0 in mscale / mscale_all_dim / attention_factor means "absent"
// (HF treats None and 0 alike there: it tests truthiness).
struct RopeConfig {
  int64_t dim = 0;         // D_rope: qk_rope_head_dim (MLA) or head_dim · partial_rotary_factor
  double theta = 10000.0;  // rope_theta
  RopeScaling scaling = RopeScaling::none;
  double factor = 1.0;  // rope_scaling.factor (linear, llama3, yarn)
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and yarn: the pre-training context length. (Newer transformers, when this key is
  // present for yarn, use factor = max_position_embeddings / original_max_position_embeddings; the
  // config loader decides what goes in `factor`. DeepSeek-V3: 163840 / 4096 = 40 = its factor.)
  int64_t original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;
  double mscale_all_dim = 0.0;
  double attention_factor = 0.0;  // explicit cos/sin multiplier; 0 = derive from mscale
  bool truncate = true;           // floor/ceil the correction range (HF "truncate", default true)
  // How the checkpoint pairs its rotary dims; callers pass it to rope_forward/rope_backward.
  RopeLayout layout = RopeLayout::half_split;
};

// inv_freq[i], i < D/2, as transformers' modeling_rope_utils computes it (in double there; HF
// computes in f32, so values agree to ~1e-7 relative). Throws "[rope_inv_freq] ..." on a bad
// config (odd or non-positive dim, non-positive theta/factor, missing llama3/yarn fields).
std::vector<double> rope_inv_freq(const RopeConfig& config);

// The multiplier HF applies to cos and sin (its `attention_factor`): 1 except for yarn, where it is
// config.attention_factor if set, else get_mscale(factor, mscale) / get_mscale(factor,
// mscale_all_dim) when both are set (DeepSeek-V3: 1/1 → 1), else get_mscale(factor).
// get_mscale(s, m) = 0.1·m·ln(s) + 1 for s > 1, else 1.
double rope_attention_scaling(const RopeConfig& config);

// The factor DeepSeek multiplies its softmax scale by: mscale² with mscale = get_mscale(factor,
// mscale_all_dim) (1 for non-yarn configs and when mscale_all_dim is 0). DeepSeek-V3 (factor 40,
// mscale_all_dim 1): (0.1·ln 40 + 1)² ≈ 1.874, so scale = 1.874 / sqrt(192).
double yarn_softmax_mscale(const RopeConfig& config);

// cos[p, i] = cos(positions[p] · inv_freq[i]) · attention_scaling, sin likewise, in double, stored
// in the tables' dtype. cos, sin (P, D/2) f32/f64; positions (P) i32. positions = 0..P−1 gives a
// table indexed by position that rope_forward gathers from. Works on any device (computed on the
// host and copied to a GPU context's tensors).
void rope_tables(const TensorView& cos, const TensorView& sin, const TensorView& positions,
                 const RopeConfig& config, Context& ctx);

// y[t, h, pair i] = R(angle of row positions[t], pair i) · x[t, h, pair i], i.e. for a pair (a, b):
//   a' = a·cos − b·sin,  b' = a·sin + b·cos   (cos, sin already carry attention_scaling)
// x, y (T, H, D) with unit stride in the last dim and any row/head strides, so the rope part of a
// wider head (MLA q = [q_nope ‖ q_pe]) is passed as a view; y may be exactly x (in place).
// cos, sin (P, D/2); positions (T) i32 with 0 <= positions[t] < P.
void rope_forward(const TensorView& y, const TensorView& x, const TensorView& cos,
                  const TensorView& sin, const TensorView& positions, RopeLayout layout,
                  Context& ctx);

// Activation gradient, overwritten (dx =). Gradient write rule: parameter gradients accumulate
// (+=), activation gradients overwrite (=), except the residual stream, which accumulates.
// The transpose of the rotation is the rotation by the negative angle:
//   da = a_g·cos + b_g·sin,  db = −a_g·sin + b_g·cos   for the pair (a_g, b_g) of dy.
// dx, dy as x, y above; dx may be exactly dy (in place).
void rope_backward(const TensorView& dx, const TensorView& dy, const TensorView& cos,
                   const TensorView& sin, const TensorView& positions, RopeLayout layout,
                   Context& ctx);

namespace cpu {
// inv_freq has D/2 entries; cos, sin, positions are host tensors.
void rope_tables(const TensorView& cos, const TensorView& sin, const TensorView& positions,
                 const std::vector<double>& inv_freq, double attention_scaling, Context& ctx);
void rope_forward(const TensorView& y, const TensorView& x, const TensorView& cos,
                  const TensorView& sin, const TensorView& positions, RopeLayout layout,
                  Context& ctx);
void rope_backward(const TensorView& dx, const TensorView& dy, const TensorView& cos,
                   const TensorView& sin, const TensorView& positions, RopeLayout layout,
                   Context& ctx);
}  // namespace cpu
namespace cuda {
void rope_forward(const TensorView& y, const TensorView& x, const TensorView& cos,
                  const TensorView& sin, const TensorView& positions, RopeLayout layout,
                  Context& ctx);
void rope_backward(const TensorView& dx, const TensorView& dy, const TensorView& cos,
                   const TensorView& sin, const TensorView& positions, RopeLayout layout,
                   Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels

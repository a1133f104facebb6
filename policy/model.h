// The parameters of a model in memory: one FlatArena of the working dtype whose entries are the
// manifest's tensors (policy/config.h), except that the routed experts of each MoE layer are held
// fused as transformers 5 names them, and the per-module MTP copies of the embedding and head are
// not held at all (the MTP modules use the main model's tensors). Loading from a Checkpoint,
// random initialisation, saving in the HF layout and a visitor over the tensors.
//
// Fused experts of MoE layer i (E experts, width I, hidden C):
//   model.layers.{i}.mlp.experts.gate_up_proj  (E, 2I, C)  expert e: rows [0, I) its gate_proj,
//                                                            rows [I, 2I) its up_proj
//   model.layers.{i}.mlp.experts.down_proj     (E, C, I)
// Each per-expert manifest tensor is a contiguous slice of one of these (manifest_view()).
//
// The e_score_correction_bias of each MoE layer is not a parameter (no gradient, no optimizer: the
// aux-loss-free rule updates it; transformers keeps it as a buffer): it lives in a second, small
// arena of the buffer set, in f32 (f64 when the model computes in f64), whatever the working dtype.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/json.h"
#include "core/tensor.h"
#include "policy/checkpoint.h"
#include "policy/config.h"

namespace r1kit::policy {

// The dtype of per-row statistics (norm rstd, attention lse, log-probs) and RoPE tables for
// activations of dtype `working`: f64 for f64 (gradient checks), else f32.
DType stats_dtype(DType working);

// Which manifest tensors an arena holds.
enum class ParamSet : uint8_t {
  parameters,  // everything with a gradient
  buffers,     // the correction biases (ParamKind::correction_bias)
};
bool param_in_set(ParamKind kind, ParamSet set);

// One tensor of the arena.
struct ParamEntry {
  std::string name;  // the manifest name, or the fused expert name
  Shape shape;
  ParamKind kind = ParamKind::matrix;
  int64_t layer = -1;  // decoder block ([0, L) main, L + k MTP module k), -1 outside the layers
  bool mtp = false;
  bool fused_experts = false;  // mlp.experts.gate_up_proj / down_proj
};

// The arena layout of a config's tensors of one set: manifest order (MTP modules included), with
// each MoE layer's per-expert tensors replaced by its two fused tensors at the place of its first
// expert tensor, and without the tied MTP copies.
std::vector<ParamEntry> param_layout(const ModelConfig& c, ParamSet set = ParamSet::parameters);

// "model.layers.{layer}.mlp.experts.gate_up_proj" and ".down_proj".
std::string fused_gate_up_name(int64_t layer);
std::string fused_down_name(int64_t layer);

// A model's tensors (parameters, or gradients / optimizer state of the same layout) in one arena.
// Move-only (it owns the arena).
class ModelParams {
 public:
  ModelParams() = default;
  // Allocates a zero-filled arena of the layout of `config`'s tensors of `set` from `alloc`.
  ModelParams(const ModelConfig& config, DType dtype, Allocator& alloc,
              ParamSet set = ParamSet::parameters);
  // The same layout in another allocation and dtype (gradients, AdamW moments, masters).
  static ModelParams like(const ModelParams& other, DType dtype, Allocator& alloc);

  const ModelConfig& config() const { return config_; }
  ParamSet set() const { return set_; }
  // Whether manifest tensor `spec` belongs to this arena's set (tied copies belong to none).
  bool holds(const ParamSpec& spec) const;
  const std::vector<ParamEntry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  DType dtype() const { return arena_.dtype(); }
  bool defined() const { return arena_.allocated(); }

  // Element alignment of every tensor in the arena, whatever the dtype (256 bytes of bf16).
  static constexpr int64_t kTensorAlignElements = 128;

  TensorView view(size_t i) const;
  // The tensor named `name`; throws naming it (with a "did you mean") when the arena has none.
  TensorView get(const std::string& name) const;
  // The tensor named `name`, or an undefined TensorView{} when the arena has none (optional
  // weights such as biases: layers test defined()).
  TensorView find(const std::string& name) const;
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // find() as a function, for the layers' weight lookups (it refers to this object, which must not
  // move while the function is in use).
  std::function<TensorView(const std::string&)> lookup() const;

  // The memory holding manifest tensor `spec`: its own entry, or the slice of a fused expert
  // tensor (contiguous, shape spec.shape). Undefined for the tied MTP copies.
  TensorView manifest_view(const ParamSpec& spec) const;

  // The whole buffer, 1-D (padding between tensors is zero): what AdamW and grad-norm run over.
  // Arenas of one config and set have the same element layout in every dtype.
  TensorView flat() const { return arena_.flat(); }
  // The underlying arena: its entries are the tensors padded to kTensorAlignElements, 1-D (use
  // view() / get() for the shaped tensors).
  const FlatArena& arena() const { return arena_; }

  // fn(entry, view) for every tensor, in layout order.
  void for_each(const std::function<void(const ParamEntry&, const TensorView&)>& fn) const;

 private:
  ModelConfig config_;
  ParamSet set_ = ParamSet::parameters;
  std::vector<ParamEntry> entries_;
  std::map<std::string, size_t> index_;
  FlatArena arena_{DType::f32};
};

// Loads the manifest tensors of `ck` that belong to `params`' set (same config), converting to its
// dtype. A device arena is filled through a host copy of the same layout.
void load_params(ModelParams& params, const Checkpoint& ck, Context& ctx);

// The values init_checkpoint writes for the same config and seed (manifest tensor i draws
// kernels::random_normal(0, initializer_range) with Philox offset i; ones for norms, zeros for
// biases), for the tensors of `params`' set, generated in the arena's dtype on its device.
void init_params(ModelParams& params, uint64_t seed, Context& ctx);

// Writes the arenas (of one config; together they must hold every manifest tensor, e.g. the
// parameters and the buffers) as an HF checkpoint directory (save_checkpoint: per-expert names,
// atomic). Device arenas are copied to the host first. Returns save_checkpoint's summary.
Json save_params(const std::string& dir, const std::vector<const ModelParams*>& arenas,
                 const SaveOptions& opts, Context& ctx);

}  // namespace r1kit::policy

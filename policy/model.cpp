// The parameter arena of a model: layout from the manifest with fused experts, loading,
// initialisation and saving. Rules in policy/model.h.
#include "policy/model.h"

#include <set>

#include "core/error.h"
#include "kernels/elementwise.h"
#include "kernels/random.h"

namespace r1kit::policy {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Copies `src` into a new host arena of the same layout and dtype (for device arenas).
ModelParams host_copy(const ModelParams& src, Context& ctx) {
  ModelParams h = ModelParams::like(src, src.dtype(), ctx.host_allocator());
  ctx.copy(h.flat(), src.flat());
  return h;
}

}  // namespace

DType stats_dtype(DType working) {
  return working == DType::f64 ? DType::f64 : DType::f32;
}

std::string fused_gate_up_name(int64_t layer) {
  return fmt::format("model.layers.{}.mlp.experts.gate_up_proj", layer);
}
std::string fused_down_name(int64_t layer) {
  return fmt::format("model.layers.{}.mlp.experts.down_proj", layer);
}

bool param_in_set(ParamKind kind, ParamSet set) {
  return (kind == ParamKind::correction_bias) == (set == ParamSet::buffers);
}

std::vector<ParamEntry> param_layout(const ModelConfig& c, ParamSet set) {
  std::vector<ParamEntry> out;
  std::set<int64_t> fused_layers;
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size, C = c.hidden_size;
  for (const ParamSpec& s : parameter_manifest(c, true)) {
    if (!s.tied_to.empty() || !param_in_set(s.kind, set)) continue;
    if (s.expert >= 0) {
      if (fused_layers.insert(s.layer).second) {
        out.push_back(
            {fused_gate_up_name(s.layer), {E, 2 * I, C}, ParamKind::matrix, s.layer, s.mtp, true});
        out.push_back(
            {fused_down_name(s.layer), {E, C, I}, ParamKind::matrix, s.layer, s.mtp, true});
      }
      continue;
    }
    out.push_back({s.name, s.shape, s.kind, s.layer, s.mtp, false});
  }
  return out;
}

ModelParams::ModelParams(const ModelConfig& config, DType dtype, Allocator& alloc, ParamSet set)
    : config_(config), set_(set), entries_(param_layout(config, set)), arena_(dtype) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    index_[entries_[i].name] = i;
    // Each tensor takes a multiple of kTensorAlignElements elements, so the element offsets do not
    // depend on the dtype (FlatArena aligns by bytes): arenas of one config in f32, bf16 and f64
    // share one layout and AdamW can run over the flat buffers of masters, moments, gradients
    // and the working copy together. The padding stays zero.
    int64_t n = 1;
    for (int64_t d : entries_[i].shape) n *= d;
    const int64_t padded =
        (n + kTensorAlignElements - 1) / kTensorAlignElements * kTensorAlignElements;
    arena_.add(entries_[i].name, {padded});
  }
  arena_.allocate(alloc);
}

ModelParams ModelParams::like(const ModelParams& other, DType dtype, Allocator& alloc) {
  return ModelParams(other.config_, dtype, alloc, other.set_);
}

bool ModelParams::holds(const ParamSpec& spec) const {
  return spec.tied_to.empty() && param_in_set(spec.kind, set_);
}

TensorView ModelParams::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::vector<std::string> names;
    for (const auto& e : entries_) names.push_back(e.name);
    const auto near = closest_match(name, names);
    R1_THROW("[params] no tensor '{}' in this {} model ({} tensors){}", name,
             model_arch_name(config_.arch), entries_.size(),
             near ? fmt::format("; did you mean '{}'?", *near) : std::string());
  }
  return view(it->second);
}

TensorView ModelParams::view(size_t i) const {
  const ParamEntry& e = entries_.at(i);
  int64_t n = 1;
  for (int64_t d : e.shape) n *= d;
  return arena_.view(i).slice(0, n).reshape(e.shape).renamed(e.name);
}

TensorView ModelParams::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? TensorView{} : view(it->second);
}

std::function<TensorView(const std::string&)> ModelParams::lookup() const {
  return [this](const std::string& name) { return find(name); };
}

TensorView ModelParams::manifest_view(const ParamSpec& spec) const {
  if (!holds(spec)) return TensorView{};
  if (spec.expert < 0) return get(spec.name);
  const int64_t I = config_.moe_intermediate_size;
  if (ends_with(spec.name, ".down_proj.weight"))
    return get(fused_down_name(spec.layer)).select(spec.expert).renamed(spec.name);
  const TensorView gu = get(fused_gate_up_name(spec.layer)).select(spec.expert);
  if (ends_with(spec.name, ".gate_proj.weight")) return gu.slice(0, I).renamed(spec.name);
  R1_CHECK(ends_with(spec.name, ".up_proj.weight"), "[params] '{}' is not an expert projection",
           spec.name);
  return gu.slice(I, 2 * I).renamed(spec.name);
}

void ModelParams::for_each(
    const std::function<void(const ParamEntry&, const TensorView&)>& fn) const {
  for (size_t i = 0; i < entries_.size(); ++i) fn(entries_[i], view(i));
}

void load_params(ModelParams& params, const Checkpoint& ck, Context& ctx) {
  const bool host = params.flat().device.is_cpu();
  ModelParams staging;
  if (!host) staging = ModelParams::like(params, params.dtype(), ctx.host_allocator());
  const ModelParams& dst = host ? params : staging;
  for (const ParamSpec& s : ck.manifest())
    if (dst.holds(s)) ck.load(s, dst.manifest_view(s));
  if (!host) ctx.copy(params.flat(), staging.flat());
}

void init_params(ModelParams& params, uint64_t seed, Context& ctx) {
  const std::vector<ParamSpec> manifest = parameter_manifest(params.config(), true);
  const double stddev = params.config().initializer_range;
  for (size_t i = 0; i < manifest.size(); ++i) {
    const ParamSpec& s = manifest[i];
    if (!params.holds(s)) continue;
    const TensorView v = params.manifest_view(s);
    switch (s.kind) {
      case ParamKind::embedding:
      case ParamKind::matrix:
      case ParamKind::router:
        kernels::random_normal(v, 0.0, stddev, seed, i, ctx);
        break;
      case ParamKind::norm:
        kernels::fill(v, 1.0, ctx);
        break;
      case ParamKind::bias:
      case ParamKind::correction_bias:
        kernels::fill(v, 0.0, ctx);
        break;
    }
  }
}

Json save_params(const std::string& dir, const std::vector<const ModelParams*>& arenas,
                 const SaveOptions& opts, Context& ctx) {
  R1_CHECK(!arenas.empty(), "[params] save_params needs at least one arena");
  std::vector<ModelParams> staging;
  staging.reserve(arenas.size());
  std::vector<const ModelParams*> host;
  for (const ModelParams* a : arenas) {
    if (a->flat().device.is_cpu()) {
      host.push_back(a);
    } else {
      staging.push_back(host_copy(*a, ctx));
      host.push_back(&staging.back());
    }
  }
  const ModelConfig& config = host.front()->config();
  std::map<std::string, TensorView> views;
  for (const ParamSpec& s : parameter_manifest(config, true))
    for (const ModelParams* a : host)
      if (a->holds(s)) views[s.name] = a->manifest_view(s);
  return save_checkpoint(dir, config, fill_from_views(views), opts);
}

}  // namespace r1kit::policy

// RoPE front-ends: the inverse-frequency schedules of transformers' modeling_rope_utils, the YaRN
// attention factors, validation of row-strided (T, H, D) views, then the device switch.
#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace r1kit::kernels {
namespace {

[[noreturn]] void config_fail(const std::string& message) {
  throw Error(fmt::format("[rope_inv_freq] {}", message));
}

// YaRN's magnitude correction (HF get_mscale / DeepSeek yarn_get_mscale):
//   get_mscale(s, m) = 0.1·m·ln(s) + 1 for s > 1, else 1.
double get_mscale(double scale, double m) {
  return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
}

void check_config(const RopeConfig& cfg) {
  if (cfg.dim <= 0 || cfg.dim % 2 != 0)
    config_fail(fmt::format("dim (D_rope) {} must be even and > 0", cfg.dim));
  if (!(cfg.theta > 0) || !std::isfinite(cfg.theta))
    config_fail(fmt::format("theta (rope_theta) {} must be finite and > 0", cfg.theta));
  if (cfg.scaling == RopeScaling::none) return;
  if (!(cfg.factor > 0) || !std::isfinite(cfg.factor))
    config_fail(fmt::format("rope_scaling.factor {} must be finite and > 0", cfg.factor));
  if (cfg.scaling == RopeScaling::llama3) {
    if (cfg.original_max_position_embeddings <= 0)
      config_fail(fmt::format("llama3 rope_scaling.original_max_position_embeddings {} must be > 0",
                              cfg.original_max_position_embeddings));
    if (!(cfg.low_freq_factor > 0) || !(cfg.high_freq_factor > cfg.low_freq_factor))
      config_fail(
          fmt::format("llama3 rope_scaling needs 0 < low_freq_factor ({}) < high_freq_factor ({})",
                      cfg.low_freq_factor, cfg.high_freq_factor));
  }
  if (cfg.scaling == RopeScaling::yarn) {
    if (cfg.original_max_position_embeddings <= 0)
      config_fail(fmt::format("yarn rope_scaling.original_max_position_embeddings {} must be > 0",
                              cfg.original_max_position_embeddings));
    if (!(cfg.theta > 1))
      config_fail(
          fmt::format("yarn needs theta (rope_theta) {} > 1 (it divides by ln theta)", cfg.theta));
    if (!(cfg.beta_fast > 0) || !(cfg.beta_slow > 0))
      config_fail(fmt::format("yarn beta_fast {} and beta_slow {} must be > 0", cfg.beta_fast,
                              cfg.beta_slow));
  }
}

// HF _compute_default_rope_parameters: inv_freq[i] = 1 / theta^(2i / D).
std::vector<double> default_inv_freq(const RopeConfig& cfg) {
  std::vector<double> f(static_cast<size_t>(cfg.dim / 2));
  for (size_t i = 0; i < f.size(); ++i)
    f[i] = 1.0 / std::pow(cfg.theta, static_cast<double>(2 * i) / static_cast<double>(cfg.dim));
  return f;
}

// HF _compute_llama3_parameters. With wavelen = 2π / f, low_wl = orig / low_freq_factor and
// high_wl = orig / high_freq_factor:
//   wavelen < high_wl  (high frequencies): f unchanged
//   wavelen > low_wl   (low frequencies):  f / factor
//   otherwise (the band between):          (1 − s)·f/factor + s·f,
//                                          s = (orig / wavelen − low_freq_factor) /
//                                              (high_freq_factor − low_freq_factor)
void apply_llama3(const RopeConfig& cfg, std::vector<double>& f) {
  const double orig = static_cast<double>(cfg.original_max_position_embeddings);
  const double low_wl = orig / cfg.low_freq_factor, high_wl = orig / cfg.high_freq_factor;
  for (double& fi : f) {
    const double wavelen = 2 * std::numbers::pi / fi;
    if (wavelen < high_wl) continue;
    if (wavelen > low_wl) {
      fi /= cfg.factor;
      continue;
    }
    const double s =
        (orig / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor);
    fi = (1 - s) * fi / cfg.factor + s * fi;
  }
}

// HF _compute_yarn_parameters (the same schedule as DeepSeek-V3's precompute_freqs_cis):
//   find_correction_dim(r) = D · ln(orig / (2π r)) / (2 ln theta)   (dim index turning r times
//                                                                    over the original context)
//   low  = max(floor(find_correction_dim(beta_fast)), 0)   (no floor/ceil when truncate is off)
//   high = min(ceil(find_correction_dim(beta_slow)), D − 1);  high += 0.001 if low == high
//   ramp[i] = clamp((i − low) / (high − low), 0, 1)      (HF linear_ramp_factor, i < D/2)
//   inv_freq[i] = f[i]/factor · ramp[i] + f[i] · (1 − ramp[i])
// i.e. dims that turn fast keep their frequency (extrapolation), slow ones are interpolated.
void apply_yarn(const RopeConfig& cfg, std::vector<double>& f) {
  const double dim = static_cast<double>(cfg.dim);
  const double orig = static_cast<double>(cfg.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(orig / (rotations * 2 * std::numbers::pi)) / (2 * std::log(cfg.theta));
  };
  double low = correction_dim(cfg.beta_fast), high = correction_dim(cfg.beta_slow);
  if (cfg.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;  // HF: prevent a zero-width ramp
  for (size_t i = 0; i < f.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    f[i] = f[i] / cfg.factor * ramp + f[i] * (1 - ramp);
  }
}

void check_table(const OpCheck& c, const TensorView& t, const char* role) {
  c.on_device(t, role);
  c.contiguous(t, role);
  c.f32_or_f64(t, role);
  c.ndim(t, 2, role);
}

// Shared by rope_forward (y, x) and rope_backward (dx, dy).
void check_rotation(const OpCheck& c, const TensorView& out, const char* rout, const TensorView& in,
                    const char* rin, const TensorView& cos, const TensorView& sin,
                    const TensorView& positions) {
  c.row_view(in, 3, rin);
  c.row_view(out, 3, rout);
  c.no_self_overlap(out, rout);
  c.same_shape(out, rout, in, rin);
  const int64_t t = in.shape[0], d = in.shape[2];
  c.require(d >= 2 && d % 2 == 0, [&] {
    return fmt::format("{} {}: rotary dim {} must be even and >= 2", rin, in.describe(), d);
  });
  check_table(c, cos, "cos");
  check_table(c, sin, "sin");
  c.require(cos.shape[1] * 2 == d, [&] {
    return fmt::format("cos {} must have D/2 = {} columns to match {} {}", cos.describe(), d / 2,
                       rin, in.describe());
  });
  c.same_shape(sin, "sin", cos, "cos");
  c.int_arg(positions, "positions");
  c.shape(positions, {t}, "positions");
  c.same_precision({{&out, rout}, {&in, rin}, {&cos, "cos"}, {&sin, "sin"}});
  c.in_place_or_no_alias(out, rout, in, rin);
  c.outputs_distinct({{&out, rout}}, {{&cos, "cos"}, {&sin, "sin"}, {&positions, "positions"}});
  // Position values are checked where they are readable without a device sync; the CUDA kernel
  // must guard its gather itself.
  if (positions.device.is_cpu()) {
    const int32_t* p = positions.ptr<int32_t>();
    for (int64_t i = 0; i < t; ++i)
      c.require(p[i] >= 0 && p[i] < cos.shape[0], [&] {
        return fmt::format("positions[{}] = {} is outside the cos/sin table {} (rows 0..{})", i,
                           p[i], cos.describe(), cos.shape[0] - 1);
      });
  }
}

}  // namespace

std::vector<double> rope_inv_freq(const RopeConfig& config) {
  check_config(config);
  std::vector<double> f = default_inv_freq(config);
  switch (config.scaling) {
    case RopeScaling::none:
      break;
    case RopeScaling::linear:  // HF _compute_linear_scaling_rope_parameters: f / factor
      for (double& fi : f) fi /= config.factor;
      break;
    case RopeScaling::llama3:
      apply_llama3(config, f);
      break;
    case RopeScaling::yarn:
      apply_yarn(config, f);
      break;
  }
  return f;
}

// HF _compute_yarn_parameters' attention_factor (1.0 for the other types):
//   attention_factor given        → it
//   mscale and mscale_all_dim set → get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
//   otherwise                     → get_mscale(factor)      (the YaRN paper's 0.1 ln s + 1)
// DeepSeek-V3 (mscale = mscale_all_dim = 1) gets 1: its reference code leaves cos/sin unscaled
// and puts the whole correction into the softmax scale instead (yarn_softmax_mscale).
double rope_attention_scaling(const RopeConfig& config) {
  check_config(config);
  if (config.scaling != RopeScaling::yarn) return 1.0;
  if (config.attention_factor != 0) return config.attention_factor;
  if (config.mscale != 0 && config.mscale_all_dim != 0)
    return get_mscale(config.factor, config.mscale) /
           get_mscale(config.factor, config.mscale_all_dim);
  return get_mscale(config.factor, 1.0);
}

// HF DeepseekV3Attention: scaling = qk_head_dim^-0.5 · m², m = yarn_get_mscale(factor,
// mscale_all_dim) when mscale_all_dim is set; DeepSeek-V3's inference/model.py does the same with
// softmax_scale · mscale · mscale (only when max_seq_len > original_seq_len; HF always). Combined
// with the cos/sin factor, the rope part of q·k carries (m_mscale / m_all)² · m_all² = m_mscale²
// and the non-rope part m_all².
double yarn_softmax_mscale(const RopeConfig& config) {
  check_config(config);
  if (config.scaling != RopeScaling::yarn) return 1.0;
  const double m = get_mscale(config.factor, config.mscale_all_dim);
  return m * m;
}

void rope_tables(const TensorView& cos, const TensorView& sin, const TensorView& positions,
                 const RopeConfig& config, Context& ctx) {
  OpCheck c("rope_tables", ctx);
  const std::vector<double> inv_freq = rope_inv_freq(config);
  const double attention_scaling = rope_attention_scaling(config);
  check_table(c, cos, "cos");
  check_table(c, sin, "sin");
  const int64_t p = cos.shape[0];
  c.shape(cos, {p, config.dim / 2}, "cos (P, D_rope/2)");
  c.same_shape(sin, "sin", cos, "cos");
  c.int_arg(positions, "positions");
  c.shape(positions, {p}, "positions");
  c.no_alias(cos, "cos", sin, "sin");
  if (!ctx.is_cuda())
    return cpu::rope_tables(cos, sin, positions, inv_freq, attention_scaling, ctx);
  // Tables are built once per model: compute on the host, then copy to the device.
  Allocator& host = ctx.host_allocator();
  Tensor hpos(positions.dims(), DType::i32, host, positions.name);
  Tensor hcos(cos.dims(), cos.dtype, host, cos.name), hsin(sin.dims(), sin.dtype, host, sin.name);
  ctx.copy(hpos, positions);
  cpu::rope_tables(hcos, hsin, hpos, inv_freq, attention_scaling, ctx);
  ctx.copy(cos, hcos);
  ctx.copy(sin, hsin);
}

void rope_forward(const TensorView& y, const TensorView& x, const TensorView& cos,
                  const TensorView& sin, const TensorView& positions, RopeLayout layout,
                  Context& ctx) {
  OpCheck c("rope", ctx);
  check_rotation(c, y, "y", x, "x", cos, sin, positions);
  if (ctx.is_cuda()) return cuda::rope_forward(y, x, cos, sin, positions, layout, ctx);
  cpu::rope_forward(y, x, cos, sin, positions, layout, ctx);
}

void rope_backward(const TensorView& dx, const TensorView& dy, const TensorView& cos,
                   const TensorView& sin, const TensorView& positions, RopeLayout layout,
                   Context& ctx) {
  OpCheck c("rope_backward", ctx);
  check_rotation(c, dx, "dx", dy, "dy", cos, sin, positions);
  if (ctx.is_cuda()) return cuda::rope_backward(dx, dy, cos, sin, positions, layout, ctx);
  cpu::rope_backward(dx, dy, cos, sin, positions, layout, ctx);
}

}  // namespace r1kit::kernels

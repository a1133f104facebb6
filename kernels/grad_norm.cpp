// Global-norm front-ends: validation of every gradient (dtype, device, overlap), the norm from the
// backend's sum of squares, and the clipping rule.
#include "kernels/grad_norm.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace r1kit::kernels {
namespace {

constexpr double kClipEps = 1e-6;  // PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6)

void check_grads(const OpCheck& c, const std::vector<TensorView>& grads) {
  std::vector<size_t> live;
  for (size_t i = 0; i < grads.size(); ++i) {
    const std::string role = "grads[" + std::to_string(i) + "]";
    c.float_arg(grads[i], role.c_str());
    if (grads[i].numel() > 0) live.push_back(i);
  }
  // Overlapping gradients would be counted (and scaled) twice. Sorted by start address, any
  // overlap shows up between neighbours.
  std::sort(live.begin(), live.end(),
            [&](size_t a, size_t b) { return grads[a].data < grads[b].data; });
  for (size_t k = 1; k < live.size(); ++k) {
    const std::string ra = "grads[" + std::to_string(live[k - 1]) + "]";
    const std::string rb = "grads[" + std::to_string(live[k]) + "]";
    c.no_alias(grads[live[k - 1]], ra.c_str(), grads[live[k]], rb.c_str());
  }
}

double sum_squares(const std::vector<TensorView>& grads, Context& ctx) {
  if (ctx.is_cuda()) return cuda::grad_sum_squares(grads, ctx);
  return cpu::grad_sum_squares(grads, ctx);
}

}  // namespace

double grad_global_norm(const std::vector<TensorView>& grads, Context& ctx) {
  OpCheck c("grad_global_norm", ctx);
  check_grads(c, grads);
  return std::sqrt(sum_squares(grads, ctx));
}

double grad_global_norm(const TensorView& grad, Context& ctx) {
  return grad_global_norm(std::vector<TensorView>{grad}, ctx);
}

double clip_grad_norm(const std::vector<TensorView>& grads, double max_norm, Context& ctx) {
  OpCheck c("clip_grad_norm", ctx);
  check_grads(c, grads);
  c.require(std::isfinite(max_norm) && max_norm > 0,
            [&] { return fmt::format("max_norm {} must be finite and > 0", max_norm); });
  const double norm = std::sqrt(sum_squares(grads, ctx));
  if (!std::isfinite(norm)) return norm;  // reported, grads untouched
  // coef = max_norm / (‖g‖ + 1e-6), clamped to <= 1 (scaling by 1 is skipped).
  const double coef = max_norm / (norm + kClipEps);
  if (coef < 1.0) {
    if (ctx.is_cuda()) {
      cuda::grad_scale(grads, coef, ctx);
    } else {
      cpu::grad_scale(grads, coef, ctx);
    }
  }
  return norm;
}

double clip_grad_norm(const TensorView& grad, double max_norm, Context& ctx) {
  return clip_grad_norm(std::vector<TensorView>{grad}, max_norm, ctx);
}

}  // namespace r1kit::kernels

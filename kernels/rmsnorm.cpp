// RMSNorm front-ends: validation, then the device switch.
#include "kernels/rmsnorm.h"

namespace r1kit::kernels {

void rmsnorm_forward(const TensorView& y, const TensorView& rstd, const TensorView& x,
                     const TensorView& w, double eps, Context& ctx) {
  OpCheck c("rmsnorm", ctx);
  for (auto [v, role] : {std::pair{&y, "y"}, {&rstd, "rstd"}, {&x, "x"}, {&w, "w"}})
    c.float_arg(*v, role);
  c.ndim(x, 2, "x");
  const int64_t n = x.shape[0], ch = x.shape[1];
  c.shape(w, {ch}, "w");
  c.shape(y, {n, ch}, "y");
  c.shape(rstd, {n}, "rstd");
  c.f32_or_f64(rstd, "rstd");
  c.require(eps >= 0, [&] { return fmt::format("eps {} must be >= 0", eps); });
  c.same_precision({{&y, "y"}, {&rstd, "rstd"}, {&x, "x"}, {&w, "w"}});
  c.no_alias(y, "y", rstd, "rstd");
  c.no_alias(y, "y", w, "w");
  c.in_place_or_no_alias(y, "y", x, "x");  // y may be exactly x (in-place normalisation)
  if (ctx.is_cuda()) return cuda::rmsnorm_forward(y, rstd, x, w, eps, ctx);
  cpu::rmsnorm_forward(y, rstd, x, w, eps, ctx);
}

void rmsnorm_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                      const TensorView& x, const TensorView& w, const TensorView& rstd,
                      GradWrite dx_write, Context& ctx) {
  OpCheck c("rmsnorm_backward", ctx);
  for (auto [v, role] :
       {std::pair{&dx, "dx"}, {&dw, "dw"}, {&dy, "dy"}, {&x, "x"}, {&w, "w"}, {&rstd, "rstd"}})
    c.float_arg(*v, role);
  c.ndim(x, 2, "x");
  const int64_t n = x.shape[0], ch = x.shape[1];
  c.shape(w, {ch}, "w");
  c.shape(dw, {ch}, "dw");
  c.shape(dy, {n, ch}, "dy");
  c.shape(dx, {n, ch}, "dx");
  c.shape(rstd, {n}, "rstd");
  c.same_precision({{&dx, "dx"}, {&dw, "dw"}, {&dy, "dy"}, {&x, "x"}, {&w, "w"}, {&rstd, "rstd"}});
  c.no_alias(dx, "dx", x, "x");
  c.no_alias(dx, "dx", dw, "dw");
  c.no_alias(dw, "dw", dy, "dy");
  c.no_alias(dx, "dx", w, "w");
  c.no_alias(dx, "dx", rstd, "rstd");
  c.no_alias(dw, "dw", x, "x");
  c.no_alias(dw, "dw", w, "w");
  c.no_alias(dw, "dw", rstd, "rstd");
  if (dx_write == GradWrite::accumulate) {
    c.no_alias(dx, "dx", dy, "dy");
  } else {
    c.in_place_or_no_alias(dx, "dx", dy, "dy");  // dx may be exactly dy
  }
  if (ctx.is_cuda()) return cuda::rmsnorm_backward(dx, dw, dy, x, w, rstd, dx_write, ctx);
  cpu::rmsnorm_backward(dx, dw, dy, x, w, rstd, dx_write, ctx);
}

}  // namespace r1kit::kernels

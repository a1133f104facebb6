// Softmax front-ends: validation, then the device switch.
#include "kernels/softmax.h"

namespace r1kit::kernels {
namespace {

void check_forward(const OpCheck& c, const TensorView& y, const TensorView& x) {
  c.float_arg(y, "y");
  c.float_arg(x, "x");
  c.ndim(x, 2, "x");
  c.same_shape(y, "y", x, "x");
  c.same_precision({{&y, "y"}, {&x, "x"}});
  c.in_place_or_no_alias(y, "y", x, "x");
}

void check_backward(const OpCheck& c, const TensorView& dx, const TensorView& dy,
                    const TensorView& y) {
  for (auto [v, role] : {std::pair{&dx, "dx"}, {&dy, "dy"}, {&y, "y"}}) c.float_arg(*v, role);
  c.ndim(y, 2, "y");
  c.same_shape(dy, "dy", y, "y");
  c.same_shape(dx, "dx", y, "y");
  c.same_precision({{&dx, "dx"}, {&dy, "dy"}, {&y, "y"}});
  c.in_place_or_no_alias(dx, "dx", dy, "dy");
  c.no_alias(dx, "dx", y, "y");
}

}  // namespace

void softmax_forward(const TensorView& y, const TensorView& x, Context& ctx) {
  OpCheck c("softmax", ctx);
  check_forward(c, y, x);
  if (ctx.is_cuda()) return cuda::softmax_forward(y, x, ctx);
  cpu::softmax_forward(y, x, ctx);
}

void log_softmax_forward(const TensorView& y, const TensorView& x, Context& ctx) {
  OpCheck c("log_softmax", ctx);
  check_forward(c, y, x);
  if (ctx.is_cuda()) return cuda::log_softmax_forward(y, x, ctx);
  cpu::log_softmax_forward(y, x, ctx);
}

void softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                      Context& ctx) {
  OpCheck c("softmax_backward", ctx);
  check_backward(c, dx, dy, y);
  if (ctx.is_cuda()) return cuda::softmax_backward(dx, dy, y, ctx);
  cpu::softmax_backward(dx, dy, y, ctx);
}

void log_softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                          Context& ctx) {
  OpCheck c("log_softmax_backward", ctx);
  check_backward(c, dx, dy, y);
  if (ctx.is_cuda()) return cuda::log_softmax_backward(dx, dy, y, ctx);
  cpu::log_softmax_backward(dx, dy, y, ctx);
}

}  // namespace r1kit::kernels

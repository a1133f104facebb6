// Elementwise front-ends: same shapes, float dtypes, the in-place rules; then the device switch.
#include "kernels/elementwise.h"

#include <cmath>

namespace r1kit::kernels {
namespace {

// y, a, b: float, contiguous, on device, one shape, one precision.
void check_binary(const OpCheck& c, const TensorView& y, const char* ry, const TensorView& a,
                  const char* ra, const TensorView& b, const char* rb) {
  c.float_arg(y, ry);
  c.float_arg(a, ra);
  c.float_arg(b, rb);
  c.same_shape(a, ra, y, ry);
  c.same_shape(b, rb, y, ry);
  c.same_precision({{&y, ry}, {&a, ra}, {&b, rb}});
}

void check_unary(const OpCheck& c, const TensorView& y, const char* ry, const TensorView& x,
                 const char* rx) {
  c.float_arg(y, ry);
  c.float_arg(x, rx);
  c.same_shape(x, rx, y, ry);
  c.same_precision({{&y, ry}, {&x, rx}});
}

// The gradients of a binary op: da, db (each TensorView{} to skip it) shaped like dy, overlapping
// neither each other nor the backward's inputs (dy first).
void check_grads(const OpCheck& c, const TensorView& da, const TensorView& db, const TensorView& dy,
                 std::initializer_list<NamedView> inputs) {
  for (auto [g, role] : {std::pair{&da, "da"}, {&db, "db"}})
    if (g->defined()) check_unary(c, *g, role, dy, "dy");
  c.outputs_distinct({{&da, "da"}, {&db, "db"}}, inputs);
}

void check_finite(const OpCheck& c, double v, const char* what) {
  c.require(std::isfinite(v), [&] { return fmt::format("{} {} must be finite", what, v); });
}

// y = f(a, b): y may be exactly a or b (in place) but must not overlap them otherwise.
void check_binary_in_place(const OpCheck& c, const TensorView& y, const TensorView& a,
                           const TensorView& b) {
  check_binary(c, y, "y", a, "a", b, "b");
  c.in_place_or_no_alias(y, "y", a, "a");
  c.in_place_or_no_alias(y, "y", b, "b");
}

// y = f(alpha, x) (axpy, scale): y may be exactly x; alpha finite.
void check_scaled(const OpCheck& c, const TensorView& y, const TensorView& x, double alpha) {
  check_unary(c, y, "y", x, "x");
  c.in_place_or_no_alias(y, "y", x, "x");
  check_finite(c, alpha, "alpha");
}

}  // namespace

void add_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx) {
  OpCheck c("add", ctx);
  check_binary_in_place(c, y, a, b);
  if (ctx.is_cuda()) return cuda::add_forward(y, a, b, ctx);
  cpu::add_forward(y, a, b, ctx);
}

void add_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  GradWrite da_write, GradWrite db_write, Context& ctx) {
  OpCheck c("add_backward", ctx);
  c.float_arg(dy, "dy");
  check_grads(c, da, db, dy, {{&dy, "dy"}});
  if (ctx.is_cuda()) return cuda::add_backward(da, db, dy, da_write, db_write, ctx);
  cpu::add_backward(da, db, dy, da_write, db_write, ctx);
}

void axpy(const TensorView& y, double alpha, const TensorView& x, Context& ctx) {
  OpCheck c("axpy", ctx);
  check_scaled(c, y, x, alpha);
  if (ctx.is_cuda()) return cuda::axpy(y, alpha, x, ctx);
  cpu::axpy(y, alpha, x, ctx);
}

void mul_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx) {
  OpCheck c("mul", ctx);
  check_binary_in_place(c, y, a, b);
  if (ctx.is_cuda()) return cuda::mul_forward(y, a, b, ctx);
  cpu::mul_forward(y, a, b, ctx);
}

void mul_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  const TensorView& a, const TensorView& b, Context& ctx) {
  OpCheck c("mul_backward", ctx);
  check_binary(c, dy, "dy", a, "a", b, "b");
  check_grads(c, da, db, dy, {{&dy, "dy"}, {&a, "a"}, {&b, "b"}});
  if (ctx.is_cuda()) return cuda::mul_backward(da, db, dy, a, b, ctx);
  cpu::mul_backward(da, db, dy, a, b, ctx);
}

void scale(const TensorView& y, double alpha, const TensorView& x, Context& ctx) {
  OpCheck c("scale", ctx);
  check_scaled(c, y, x, alpha);
  if (ctx.is_cuda()) return cuda::scale(y, alpha, x, ctx);
  cpu::scale(y, alpha, x, ctx);
}

void cast(const TensorView& dst, const TensorView& src, Context& ctx) {
  OpCheck c("cast", ctx);
  c.float_arg(dst, "dst");
  c.float_arg(src, "src");
  c.same_shape(src, "src", dst, "dst");
  c.no_alias(dst, "dst", src, "src");
  if (ctx.is_cuda()) return cuda::cast(dst, src, ctx);
  cpu::cast(dst, src, ctx);
}

void fill(const TensorView& y, double value, Context& ctx) {
  OpCheck c("fill", ctx);
  c.float_arg(y, "y");
  if (ctx.is_cuda()) return cuda::fill(y, value, ctx);
  cpu::fill(y, value, ctx);
}

void copy(const TensorView& dst, const TensorView& src, Context& ctx) {
  OpCheck c("copy", ctx);
  for (auto [v, role] : {std::pair{&dst, "dst"}, {&src, "src"}}) {
    c.on_device(*v, role);
    c.float_dtype(*v, role);
  }
  c.same_shape(src, "src", dst, "dst");
  c.no_self_overlap(dst, "dst");
  c.no_alias(dst, "dst", src, "src");
  if (ctx.is_cuda()) return cuda::copy(dst, src, ctx);
  cpu::copy(dst, src, ctx);
}

}  // namespace r1kit::kernels

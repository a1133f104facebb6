// Elementwise front-ends: same shapes, float dtypes, the in-place rules; then the device switch.
#include "kernels/elementwise.h"

#include <cmath>

namespace r1kit::kernels {
namespace {

bool given(const TensorView& v) {
  return v.ndim > 0 || v.data != nullptr;
}

// An output may be exactly an input (same memory and dtype; shapes are checked equal and both are
// contiguous, so also the same layout: elementwise in place) but must not overlap it otherwise.
void check_in_place(const OpCheck& c, const TensorView& y, const char* ry, const TensorView& x,
                    const char* rx) {
  if (!(y.data == x.data && y.dtype == x.dtype)) c.no_alias(y, ry, x, rx);
}

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

void check_finite(const OpCheck& c, double v, const char* what) {
  c.require(std::isfinite(v), fmt::format("{} {} must be finite", what, v));
}

}  // namespace

void add_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx) {
  OpCheck c("add", ctx);
  check_binary(c, y, "y", a, "a", b, "b");
  check_in_place(c, y, "y", a, "a");
  check_in_place(c, y, "y", b, "b");
  if (ctx.is_cuda()) return cuda::add_forward(y, a, b, ctx);
  cpu::add_forward(y, a, b, ctx);
}

void add_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  GradWrite da_write, GradWrite db_write, Context& ctx) {
  OpCheck c("add_backward", ctx);
  c.float_arg(dy, "dy");
  for (auto [g, role] : {std::pair{&da, "da"}, {&db, "db"}}) {
    if (!given(*g)) continue;
    check_unary(c, *g, role, dy, "dy");
    c.no_alias(*g, role, dy, "dy");
  }
  if (given(da) && given(db)) c.no_alias(da, "da", db, "db");
  if (ctx.is_cuda()) return cuda::add_backward(da, db, dy, da_write, db_write, ctx);
  cpu::add_backward(da, db, dy, da_write, db_write, ctx);
}

void axpy(const TensorView& y, double alpha, const TensorView& x, Context& ctx) {
  OpCheck c("axpy", ctx);
  check_unary(c, y, "y", x, "x");
  check_in_place(c, y, "y", x, "x");
  check_finite(c, alpha, "alpha");
  if (ctx.is_cuda()) return cuda::axpy(y, alpha, x, ctx);
  cpu::axpy(y, alpha, x, ctx);
}

void mul_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx) {
  OpCheck c("mul", ctx);
  check_binary(c, y, "y", a, "a", b, "b");
  check_in_place(c, y, "y", a, "a");
  check_in_place(c, y, "y", b, "b");
  if (ctx.is_cuda()) return cuda::mul_forward(y, a, b, ctx);
  cpu::mul_forward(y, a, b, ctx);
}

void mul_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  const TensorView& a, const TensorView& b, Context& ctx) {
  OpCheck c("mul_backward", ctx);
  check_binary(c, dy, "dy", a, "a", b, "b");
  for (auto [g, role] : {std::pair{&da, "da"}, {&db, "db"}}) {
    if (!given(*g)) continue;
    check_unary(c, *g, role, dy, "dy");
    for (auto [in, irole] : {std::pair{&dy, "dy"}, {&a, "a"}, {&b, "b"}})
      c.no_alias(*g, role, *in, irole);
  }
  if (given(da) && given(db)) c.no_alias(da, "da", db, "db");
  if (ctx.is_cuda()) return cuda::mul_backward(da, db, dy, a, b, ctx);
  cpu::mul_backward(da, db, dy, a, b, ctx);
}

void scale(const TensorView& y, double alpha, const TensorView& x, Context& ctx) {
  OpCheck c("scale", ctx);
  check_unary(c, y, "y", x, "x");
  check_in_place(c, y, "y", x, "x");
  check_finite(c, alpha, "alpha");
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

}  // namespace r1kit::kernels

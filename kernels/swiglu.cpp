// SwiGLU front-ends and column_slice: validation of row-strided views, then the device switch.
#include "kernels/swiglu.h"

namespace r1kit::kernels {
namespace {

// 2-D with unit column stride and row stride >= width (rows may not interleave).
void check_row_strided(const OpCheck& c, const TensorView& v, const char* role) {
  c.on_device(v, role);
  c.float_dtype(v, role);
  c.ndim(v, 2, role);
  const bool ok =
      (v.shape[1] <= 1 || v.stride[1] == 1) && (v.shape[0] <= 1 || v.stride[0] >= v.shape[1]);
  c.require(ok, fmt::format("{} {} must have unit column stride and a row stride >= its width "
                            "(strides ({}, {}))",
                            role, v.describe(), v.stride[0], v.stride[1]));
}

// TensorView::overlaps compares whole spans, which is too coarse for two column ranges of one
// matrix: those are disjoint when, within one row period, their byte ranges do not meet.
bool views_overlap(const TensorView& a, const TensorView& b) {
  if (!a.overlaps(b)) return false;
  const int64_t es = static_cast<int64_t>(dtype_size(a.dtype));
  if (a.stride[0] != b.stride[0] || es != static_cast<int64_t>(dtype_size(b.dtype))) return true;
  const int64_t period = a.stride[0] * es;
  if (period <= 0) return true;
  const int64_t d = static_cast<const char*>(b.data) - static_cast<const char*>(a.data);
  const int64_t offset = ((d % period) + period) % period;  // where b's rows start in a's period
  return !(offset >= a.shape[1] * es && offset + b.shape[1] * es <= period);
}

void check_disjoint(const OpCheck& c, const TensorView& a, const char* ra, const TensorView& b,
                    const char* rb) {
  if (views_overlap(a, b))
    c.fail(fmt::format("{} {} must not overlap {} {}", ra, a.describe(), rb, b.describe()));
}

}  // namespace

TensorView column_slice(const TensorView& m, int64_t begin, int64_t end) {
  if (m.ndim != 2 || (m.shape[1] > 1 && m.stride[1] != 1))
    throw Error(fmt::format("[column_slice] {} must be 2-D with unit column stride", m.describe()));
  if (begin < 0 || begin > end || end > m.shape[1])
    throw Error(fmt::format("[column_slice] columns [{}, {}) are out of range for {}", begin, end,
                            m.describe()));
  TensorView v = m;
  v.shape[1] = end - begin;
  v.stride[1] = 1;
  v.data = static_cast<char*>(m.data) + begin * static_cast<int64_t>(dtype_size(m.dtype));
  v.name = fmt::format("{}[:, {}:{}]", m.name, begin, end);
  return v;
}

void swiglu_forward(const TensorView& out, const TensorView& gate, const TensorView& up,
                    Context& ctx) {
  OpCheck c("swiglu", ctx);
  for (auto [v, role] : {std::pair{&out, "out"}, {&gate, "gate"}, {&up, "up"}})
    check_row_strided(c, *v, role);
  c.same_shape(up, "up", gate, "gate");
  c.same_shape(out, "out", gate, "gate");
  c.same_precision({{&out, "out"}, {&gate, "gate"}, {&up, "up"}});
  check_disjoint(c, out, "out", gate, "gate");
  check_disjoint(c, out, "out", up, "up");
  if (ctx.is_cuda()) return cuda::swiglu_forward(out, gate, up, ctx);
  cpu::swiglu_forward(out, gate, up, ctx);
}

void swiglu_backward(const TensorView& dgate, const TensorView& dup, const TensorView& dout,
                     const TensorView& gate, const TensorView& up, Context& ctx) {
  OpCheck c("swiglu_backward", ctx);
  for (auto [v, role] :
       {std::pair{&dgate, "dgate"}, {&dup, "dup"}, {&dout, "dout"}, {&gate, "gate"}, {&up, "up"}})
    check_row_strided(c, *v, role);
  for (auto [v, role] : {std::pair{&up, "up"}, {&dout, "dout"}, {&dgate, "dgate"}, {&dup, "dup"}})
    c.same_shape(*v, role, gate, "gate");
  c.same_precision(
      {{&dgate, "dgate"}, {&dup, "dup"}, {&dout, "dout"}, {&gate, "gate"}, {&up, "up"}});
  check_disjoint(c, dgate, "dgate", dup, "dup");
  for (auto [g, role] : {std::pair{&dgate, "dgate"}, {&dup, "dup"}})
    for (auto [in, irole] : {std::pair{&dout, "dout"}, {&gate, "gate"}, {&up, "up"}})
      check_disjoint(c, *g, role, *in, irole);
  if (ctx.is_cuda()) return cuda::swiglu_backward(dgate, dup, dout, gate, up, ctx);
  cpu::swiglu_backward(dgate, dup, dout, gate, up, ctx);
}

}  // namespace r1kit::kernels

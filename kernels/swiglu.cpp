// SwiGLU front-ends and column_slice: validation of row-strided views, then the device switch.
#include "kernels/swiglu.h"

namespace r1kit::kernels {
namespace {

// 2-D with unit column stride and rows that do not interleave (row stride >= width).
void check_row_strided(const OpCheck& c, const TensorView& v, const char* role) {
  c.row_view(v, 2, role);
  c.no_self_overlap(v, role);
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
  c.outputs_distinct({{&out, "out"}}, {{&gate, "gate"}, {&up, "up"}});
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
  c.outputs_distinct({{&dgate, "dgate"}, {&dup, "dup"}},
                     {{&dout, "dout"}, {&gate, "gate"}, {&up, "up"}});
  if (ctx.is_cuda()) return cuda::swiglu_backward(dgate, dup, dout, gate, up, ctx);
  cpu::swiglu_backward(dgate, dup, dout, gate, up, ctx);
}

}  // namespace r1kit::kernels

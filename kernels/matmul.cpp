// Matmul and linear front-ends: validation, then the device switch.
#include "kernels/matmul.h"

#include <cmath>
#include <tuple>
#include <utility>

namespace r1kit::kernels {
namespace {

struct GemmDims {
  int64_t batch, m, n, k;
};

// Checks a and b (and the options) for C = op(A)·op(B) and returns the problem size.
GemmDims check_gemm(const OpCheck& c, const TensorView& a, const TensorView& b,
                    const MatmulOptions& opts) {
  c.float_arg(a, "a");
  c.float_arg(b, "b");
  c.ndim_between(a, 2, 3, "a");
  c.require(b.ndim == a.ndim, [&] {
    return fmt::format("a {} and b {} must both be 2-D or both 3-D (batched)", a.describe(),
                       b.describe());
  });
  const int r = a.ndim - 2;  // index of the row dim
  GemmDims d{};
  d.batch = a.ndim == 3 ? a.shape[0] : 1;
  if (a.ndim == 3)
    c.require(b.shape[0] == a.shape[0], [&] {
      return fmt::format("a {} and b {} must have the same batch size", a.describe(), b.describe());
    });
  d.m = opts.trans_a ? a.shape[r + 1] : a.shape[r];
  d.k = opts.trans_a ? a.shape[r] : a.shape[r + 1];
  const int64_t kb = opts.trans_b ? b.shape[r + 1] : b.shape[r];
  d.n = opts.trans_b ? b.shape[r] : b.shape[r + 1];
  c.require(kb == d.k, [&] {
    return fmt::format(
        "inner dims differ: op(a) of a {} has K = {} but op(b) of b {} has K = {} "
        "(trans_a {}, trans_b {})",
        a.describe(), d.k, b.describe(), kb, opts.trans_a, opts.trans_b);
  });
  c.require(std::isfinite(opts.alpha) && std::isfinite(opts.beta), [&] {
    return fmt::format("alpha {} and beta {} must be finite", opts.alpha, opts.beta);
  });
  return d;
}

void check_result_shape(const OpCheck& c, const TensorView& v, const GemmDims& d, int ndim,
                        const char* role) {
  if (ndim == 3) {
    c.shape(v, {d.batch, d.m, d.n}, role);
  } else {
    c.shape(v, {d.m, d.n}, role);
  }
}

// x (N, C), w (OC, C) and y (N, OC), the output or its gradient; returns (N, C, OC).
std::tuple<int64_t, int64_t, int64_t> check_linear(const OpCheck& ck, NamedView y,
                                                   const TensorView& x, const TensorView& w) {
  for (auto [v, role] : {y, {&x, "x"}, {&w, "w"}}) ck.float_arg(*v, role);
  ck.ndim(x, 2, "x");
  ck.ndim(w, 2, "w");
  const int64_t n = x.shape[0], ch = x.shape[1], oc = w.shape[0];
  ck.require(w.shape[1] == ch, [&] {
    return fmt::format("w {} (OC, C) must have C = {} columns to match x {}", w.describe(), ch,
                       x.describe());
  });
  ck.shape(*y.first, {n, oc}, y.second);
  ck.same_precision({y, {&x, "x"}, {&w, "w"}});
  return {n, ch, oc};
}

// x (M, C), w (E, OC, C) and y (M, OC), the output or its gradient; returns (M, C, E, OC).
std::tuple<int64_t, int64_t, int64_t, int64_t> check_grouped(const OpCheck& ck, NamedView y,
                                                             const TensorView& x,
                                                             const TensorView& w) {
  for (auto [v, role] : {y, {&x, "x"}, {&w, "w"}}) ck.float_arg(*v, role);
  ck.ndim(x, 2, "x");
  ck.ndim(w, 3, "w");
  const int64_t m = x.shape[0], ch = x.shape[1], e = w.shape[0], oc = w.shape[1];
  ck.require(w.shape[2] == ch, [&] {
    return fmt::format("w {} (E, OC, C) must have C = {} columns to match x {}", w.describe(), ch,
                       x.describe());
  });
  ck.shape(*y.first, {m, oc}, y.second);
  ck.same_precision({y, {&x, "x"}, {&w, "w"}});
  return {m, ch, e, oc};
}

// expert_offsets: i32 (E+1) on the host or on the context's device, with
// 0 = off[0] <= off[1] <= ... <= off[E] = M. Returns a host view of the values: the tensor itself,
// or its copy in `host` when it lives on the device (the copy synchronises the stream).
TensorView host_offsets(const OpCheck& ck, Context& ctx, const TensorView& off, int64_t e,
                        int64_t m, Tensor& host) {
  ck.dtype(off, DType::i32, "expert_offsets");
  ck.ndim(off, 1, "expert_offsets");
  ck.contiguous(off, "expert_offsets");
  ck.shape(off, {e + 1}, "expert_offsets");
  if (!off.device.is_cpu() && !(off.device == ctx.device()))
    ck.fail(fmt::format("expert_offsets {} must be on the host or on the context's device {}",
                        off.describe(), ctx.device().str()));
  if (off.data == nullptr) ck.fail(fmt::format("expert_offsets {} has no storage", off.describe()));
  TensorView h = off;
  if (!off.device.is_cpu()) {
    host = Tensor(off.dims(), DType::i32, ctx.host_allocator(), off.name);
    ctx.copy(host, off);
    h = host.view();
  }
  const int32_t* p = h.ptr<int32_t>();
  if (p[0] != 0)
    ck.fail(fmt::format("expert_offsets {} must start at 0, got offsets[0] = {}", off.describe(),
                        p[0]));
  for (int64_t i = 0; i < e; ++i)
    if (p[i + 1] < p[i])
      ck.fail(
          fmt::format("expert_offsets {} must be non-decreasing: offsets[{}] = {} > "
                      "offsets[{}] = {}",
                      off.describe(), i, p[i], i + 1, p[i + 1]));
  if (p[e] != m)
    ck.fail(
        fmt::format("expert_offsets {} must end at M = {} (the rows of x), got offsets[{}] = {}",
                    off.describe(), m, e, p[e]));
  return h;
}

}  // namespace

void matmul_forward(const TensorView& c, const TensorView& a, const TensorView& b,
                    const MatmulOptions& opts, Context& ctx) {
  OpCheck ck("matmul", ctx);
  const GemmDims d = check_gemm(ck, a, b, opts);
  ck.float_arg(c, "c");
  check_result_shape(ck, c, d, a.ndim, "c");
  ck.same_precision({{&c, "c"}, {&a, "a"}, {&b, "b"}});
  ck.outputs_distinct({{&c, "c"}}, {{&a, "a"}, {&b, "b"}});
  if (ctx.is_cuda()) return cuda::matmul_forward(c, a, b, opts, ctx);
  cpu::matmul_forward(c, a, b, opts, ctx);
}

void matmul_backward(const TensorView& da, const TensorView& db, const TensorView& dc,
                     const TensorView& a, const TensorView& b, const MatmulOptions& opts,
                     GradWrite da_write, GradWrite db_write, Context& ctx) {
  OpCheck ck("matmul_backward", ctx);
  const GemmDims d = check_gemm(ck, a, b, opts);
  ck.float_arg(dc, "dc");
  check_result_shape(ck, dc, d, a.ndim, "dc");
  ck.same_precision({{&dc, "dc"}, {&a, "a"}, {&b, "b"}});
  for (auto [g, x, role, xrole] : {std::tuple{&da, &a, "da", "a"}, {&db, &b, "db", "b"}}) {
    if (!g->defined()) continue;
    ck.float_arg(*g, role);
    ck.same_shape(*g, role, *x, xrole);
    ck.same_precision({{g, role}, {&dc, "dc"}});
  }
  ck.outputs_distinct({{&da, "da"}, {&db, "db"}}, {{&a, "a"}, {&b, "b"}, {&dc, "dc"}});
  if (ctx.is_cuda()) return cuda::matmul_backward(da, db, dc, a, b, opts, da_write, db_write, ctx);
  cpu::matmul_backward(da, db, dc, a, b, opts, da_write, db_write, ctx);
}

void linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                    const TensorView& bias, Context& ctx) {
  OpCheck ck("linear", ctx);
  const auto [n, ch, oc] = check_linear(ck, {&y, "y"}, x, w);
  if (bias.defined()) {
    ck.float_arg(bias, "bias");
    ck.shape(bias, {oc}, "bias");
    ck.same_precision({{&y, "y"}, {&bias, "bias"}});
  }
  ck.outputs_distinct({{&y, "y"}}, {{&x, "x"}, {&w, "w"}, {&bias, "bias"}});
  if (ctx.is_cuda()) return cuda::linear_forward(y, x, w, bias, ctx);
  cpu::linear_forward(y, x, w, bias, ctx);
}

void linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dbias,
                     const TensorView& dy, const TensorView& x, const TensorView& w,
                     GradWrite dx_write, Context& ctx) {
  OpCheck ck("linear_backward", ctx);
  const auto [n, ch, oc] = check_linear(ck, {&dy, "dy"}, x, w);
  if (dx.defined()) ck.shape(dx, {n, ch}, "dx");
  if (dw.defined()) ck.shape(dw, {oc, ch}, "dw");
  if (dbias.defined()) ck.shape(dbias, {oc}, "dbias");
  for (auto [g, role] : {std::pair{&dx, "dx"}, {&dw, "dw"}, {&dbias, "dbias"}}) {
    if (!g->defined()) continue;
    ck.float_arg(*g, role);
    ck.same_precision({{g, role}, {&dy, "dy"}});
  }
  ck.outputs_distinct({{&dx, "dx"}, {&dw, "dw"}, {&dbias, "dbias"}},
                      {{&dy, "dy"}, {&x, "x"}, {&w, "w"}});
  if (ctx.is_cuda()) return cuda::linear_backward(dx, dw, dbias, dy, x, w, dx_write, ctx);
  cpu::linear_backward(dx, dw, dbias, dy, x, w, dx_write, ctx);
}

void grouped_linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                            const TensorView& expert_offsets, Context& ctx) {
  OpCheck ck("grouped_linear", ctx);
  const auto [m, ch, e, oc] = check_grouped(ck, {&y, "y"}, x, w);
  ck.outputs_distinct({{&y, "y"}}, {{&x, "x"}, {&w, "w"}});
  Tensor host;
  const TensorView off = host_offsets(ck, ctx, expert_offsets, e, m, host);
  if (ctx.is_cuda()) return cuda::grouped_linear_forward(y, x, w, off, ctx);
  cpu::grouped_linear_forward(y, x, w, off, ctx);
}

void grouped_linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                             const TensorView& x, const TensorView& w,
                             const TensorView& expert_offsets, Context& ctx) {
  OpCheck ck("grouped_linear_backward", ctx);
  const auto [m, ch, e, oc] = check_grouped(ck, {&dy, "dy"}, x, w);
  if (dx.defined()) {
    ck.float_arg(dx, "dx");
    ck.shape(dx, {m, ch}, "dx");
    ck.same_precision({{&dx, "dx"}, {&dy, "dy"}});
  }
  if (dw.defined()) {
    ck.float_arg(dw, "dw");
    ck.shape(dw, {e, oc, ch}, "dw");
    ck.same_precision({{&dw, "dw"}, {&dy, "dy"}});
  }
  ck.outputs_distinct({{&dx, "dx"}, {&dw, "dw"}}, {{&dy, "dy"}, {&x, "x"}, {&w, "w"}});
  Tensor host;
  const TensorView off = host_offsets(ck, ctx, expert_offsets, e, m, host);
  if (ctx.is_cuda()) return cuda::grouped_linear_backward(dx, dw, dy, x, w, off, ctx);
  cpu::grouped_linear_backward(dx, dw, dy, x, w, off, ctx);
}

}  // namespace r1kit::kernels

// Attention front-ends: validation of the row-strided q/k/v views, head counts, cu_seqlens values
// and aliasing, then the device switch.
#include "kernels/attention.h"

#include <cmath>

#include "kernels/cuda/attention_entry.cuh"

namespace r1kit::kernels {
namespace {

struct Dims {
  int64_t t, hq, hkv, dqk, dv;
};

Dims check_qkv(const OpCheck& c, const TensorView& q, const TensorView& k, const TensorView& v,
               double scale) {
  c.row_view(q, 3, "q");
  c.row_view(k, 3, "k");
  c.row_view(v, 3, "v");
  const Dims d{q.shape[0], q.shape[1], k.shape[1], q.shape[2], v.shape[2]};
  c.shape(k, {d.t, kAny, d.dqk}, "k (T, Hkv, Dqk)");
  c.shape(v, {d.t, d.hkv, kAny}, "v (T, Hkv, Dv)");
  c.require(d.hq > 0 && d.hkv > 0 && d.hq % d.hkv == 0, [&] {
    return fmt::format(
        "query heads Hq = {} of q {} must be a positive multiple of the kv heads "
        "Hkv = {} of k {}",
        d.hq, q.describe(), d.hkv, k.describe());
  });
  c.require(d.dqk > 0 && d.dv > 0, [&] {
    return fmt::format("head dims of q {} and v {} must be > 0", q.describe(), v.describe());
  });
  c.require(std::isfinite(scale), [&] { return fmt::format("scale {} must be finite", scale); });
  return d;
}

void check_lse(const OpCheck& c, const TensorView& lse, const Dims& d) {
  c.on_device(lse, "lse");
  c.contiguous(lse, "lse");
  c.f32_or_f64(lse, "lse");
  c.shape(lse, {d.hq, d.t}, "lse (Hq, T)");
}

// Offsets of packed sequences: cu[0] = 0, cu[b] <= cu[b+1], cu[B] = T. Read on the host (a copy of
// B+1 ints on a GPU context; the CUDA kernels need the lengths on the host anyway, so the copy is
// returned and handed to them; undefined when cu_seqlens is already on the host).
Tensor check_cu_seqlens(const OpCheck& c, const TensorView& cu, int64_t t, Context& ctx) {
  // On the context's device or on the host (callers that keep a host copy, like
  // policy::TokenBatch, pass it and save a synchronising copy per call).
  if (!cu.device.is_cpu()) c.on_device(cu, "cu_seqlens");
  c.contiguous(cu, "cu_seqlens");
  c.dtype(cu, DType::i32, "cu_seqlens");
  c.ndim(cu, 1, "cu_seqlens");
  c.require(cu.shape[0] >= 1,
            [&] { return fmt::format("cu_seqlens {} needs B+1 >= 1 offsets", cu.describe()); });
  Tensor host;
  const int32_t* p = cu.ptr<int32_t>();
  if (!cu.device.is_cpu()) {
    host = Tensor(cu.dims(), DType::i32, ctx.host_allocator(), cu.name);
    ctx.copy(host, cu);
    p = host.ptr<int32_t>();
  }
  const int64_t n = cu.shape[0];
  c.require(p[0] == 0, [&] {
    return fmt::format("cu_seqlens {} must start at 0; cu_seqlens[0] = {}", cu.describe(), p[0]);
  });
  for (int64_t b = 1; b < n; ++b)
    c.require(p[b] >= p[b - 1], [&] {
      return fmt::format(
          "cu_seqlens {} must be non-decreasing; cu_seqlens[{}] = {} < "
          "cu_seqlens[{}] = {}",
          cu.describe(), b, p[b], b - 1, p[b - 1]);
    });
  c.require(p[n - 1] == t, [&] {
    return fmt::format(
        "cu_seqlens {} must end at T = {} (rows of q); "
        "cu_seqlens[{}] = {}",
        cu.describe(), t, n - 1, p[n - 1]);
  });
  return host;
}

// The host offsets: the copy check_cu_seqlens made, or cu_seqlens itself when it is on the host.
const int32_t* host_offsets(const Tensor& copy, const TensorView& cu) {
  return copy.defined() ? copy.ptr<int32_t>() : cu.ptr<int32_t>();
}

}  // namespace

void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                       const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       double scale, Context& ctx) {
  OpCheck c("attention", ctx);
  const Dims d = check_qkv(c, q, k, v, scale);
  c.row_view(out, 3, "out");
  c.no_self_overlap(out, "out");
  c.shape(out, {d.t, d.hq, d.dv}, "out (T, Hq, Dv)");
  check_lse(c, lse, d);
  c.same_precision({{&out, "out"}, {&lse, "lse"}, {&q, "q"}, {&k, "k"}, {&v, "v"}});
  c.outputs_distinct({{&out, "out"}, {&lse, "lse"}}, {{&q, "q"}, {&k, "k"}, {&v, "v"}});
  const Tensor cu_host = check_cu_seqlens(c, cu_seqlens, d.t, ctx);
  if (ctx.is_cuda())
    return cuda::attention_forward(out, lse, q, k, v, cu_seqlens, host_offsets(cu_host, cu_seqlens),
                                   scale, ctx);
  cpu::attention_forward(out, lse, q, k, v, cu_seqlens, scale, ctx);
}

void attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                        const TensorView& dout, const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out, const TensorView& lse,
                        const TensorView& cu_seqlens, double scale, Context& ctx) {
  OpCheck c("attention_backward", ctx);
  const Dims d = check_qkv(c, q, k, v, scale);
  c.row_view(out, 3, "out");
  c.row_view(dout, 3, "dout");
  c.shape(out, {d.t, d.hq, d.dv}, "out (T, Hq, Dv)");
  c.same_shape(dout, "dout", out, "out");
  check_lse(c, lse, d);
  for (auto [g, role] : {std::pair{&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}}) {
    c.row_view(*g, 3, role);
    c.no_self_overlap(*g, role);
  }
  c.same_shape(dq, "dq", q, "q");
  c.same_shape(dk, "dk", k, "k");
  c.same_shape(dv, "dv", v, "v");
  c.same_precision({{&dq, "dq"},
                    {&dk, "dk"},
                    {&dv, "dv"},
                    {&dout, "dout"},
                    {&q, "q"},
                    {&k, "k"},
                    {&v, "v"},
                    {&out, "out"},
                    {&lse, "lse"}});
  c.outputs_distinct(
      {{&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}},
      {{&dout, "dout"}, {&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}, {&lse, "lse"}});
  const Tensor cu_host = check_cu_seqlens(c, cu_seqlens, d.t, ctx);
  if (ctx.is_cuda())
    return cuda::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, cu_seqlens,
                                    host_offsets(cu_host, cu_seqlens), scale, ctx);
  cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, cu_seqlens, scale, ctx);
}

}  // namespace r1kit::kernels

// Attention front-ends: validation of the row-strided q/k/v views, head counts, cu_seqlens values
// and aliasing, then the device switch.
#include "kernels/attention.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace r1kit::kernels {
namespace {

std::string strides_str(const TensorView& v) {
  return shape_str(v.stride.data(), v.ndim);
}

// A (T, H, D) view with unit stride in its last dim; rows and heads may be strided. An output must
// also not overlap itself: walking the dims by increasing stride, each stride must clear the
// extent of the smaller ones.
void check_row_view(const OpCheck& c, const TensorView& v, const char* role, bool output) {
  c.on_device(v, role);
  c.float_dtype(v, role);
  c.ndim(v, 3, role);
  c.require(v.shape[2] <= 1 || v.stride[2] == 1,
            fmt::format("{} {} must have unit stride in its last dim (strides {})", role,
                        v.describe(), strides_str(v)));
  c.require(v.stride[0] >= 0 && v.stride[1] >= 0,
            fmt::format("{} {} has negative strides {}", role, v.describe(), strides_str(v)));
  if (!output || v.empty()) return;
  std::array<int, 3> order{0, 1, 2};
  std::sort(order.begin(), order.end(), [&](int a, int b) { return v.stride[a] < v.stride[b]; });
  int64_t extent = 0;  // largest offset reachable with the dims seen so far
  for (int d : order) {
    if (v.shape[d] <= 1) continue;
    c.require(v.stride[d] > extent, fmt::format("output {} {} overlaps itself (strides {})", role,
                                                v.describe(), strides_str(v)));
    extent += (v.shape[d] - 1) * v.stride[d];
  }
}

// Whether two views share memory. Exact for 3-D views with the same row pitch whose rows each fit
// in one pitch (slices of one fused (T, C) buffer, e.g. dq/dk/dv of a fused qkv projection): their
// column bands are compared modulo the pitch. Otherwise the conservative span test.
bool views_overlap(const TensorView& a, const TensorView& b) {
  if (!a.overlaps(b)) return false;
  const int64_t ea = static_cast<int64_t>(dtype_size(a.dtype));
  const int64_t eb = static_cast<int64_t>(dtype_size(b.dtype));
  if (a.ndim != 3 || b.ndim != 3 || a.stride[0] * ea != b.stride[0] * eb) return true;
  const int64_t pitch = a.stride[0] * ea;
  const int64_t wa = ((a.shape[1] - 1) * a.stride[1] + a.shape[2]) * ea;
  const int64_t wb = ((b.shape[1] - 1) * b.stride[1] + b.shape[2]) * eb;
  if (pitch <= 0 || wa > pitch || wb > pitch) return true;
  const int64_t delta = static_cast<const char*>(b.data) - static_cast<const char*>(a.data);
  const int64_t col = ((delta % pitch) + pitch) % pitch;  // b's band starts here within a row
  return col < wa || col + wb > pitch;
}

void no_overlap(const OpCheck& c, const TensorView& a, const char* ra, const TensorView& b,
                const char* rb) {
  c.require(!views_overlap(a, b),
            fmt::format("{} {} must not overlap {} {}", ra, a.describe(), rb, b.describe()));
}

struct Dims {
  int64_t t, hq, hkv, dqk, dv;
};

Dims check_qkv(const OpCheck& c, const TensorView& q, const TensorView& k, const TensorView& v,
               double scale) {
  check_row_view(c, q, "q", false);
  check_row_view(c, k, "k", false);
  check_row_view(c, v, "v", false);
  const Dims d{q.shape[0], q.shape[1], k.shape[1], q.shape[2], v.shape[2]};
  c.shape(k, {d.t, kAny, d.dqk}, "k (T, Hkv, Dqk)");
  c.shape(v, {d.t, d.hkv, kAny}, "v (T, Hkv, Dv)");
  c.require(d.hq > 0 && d.hkv > 0 && d.hq % d.hkv == 0,
            fmt::format("query heads Hq = {} of q {} must be a positive multiple of the kv heads "
                        "Hkv = {} of k {}",
                        d.hq, q.describe(), d.hkv, k.describe()));
  c.require(d.dqk > 0 && d.dv > 0,
            fmt::format("head dims of q {} and v {} must be > 0", q.describe(), v.describe()));
  c.require(std::isfinite(scale), fmt::format("scale {} must be finite", scale));
  return d;
}

void check_lse(const OpCheck& c, const TensorView& lse, const Dims& d) {
  c.on_device(lse, "lse");
  c.contiguous(lse, "lse");
  c.require(lse.dtype == DType::f32 || lse.dtype == DType::f64,
            fmt::format("lse {} must be f32 or f64", lse.describe()));
  c.shape(lse, {d.hq, d.t}, "lse (Hq, T)");
}

// Offsets of packed sequences: cu[0] = 0, cu[b] <= cu[b+1], cu[B] = T. Read on the host (a copy of
// B+1 ints on a GPU context; the CUDA kernels need the lengths on the host anyway).
void check_cu_seqlens(const OpCheck& c, const TensorView& cu, int64_t t, Context& ctx) {
  c.int_arg(cu, "cu_seqlens");
  c.ndim(cu, 1, "cu_seqlens");
  c.require(cu.shape[0] >= 1, fmt::format("cu_seqlens {} needs B+1 >= 1 offsets", cu.describe()));
  Tensor host;
  const int32_t* p = cu.ptr<int32_t>();
  if (!cu.device.is_cpu()) {
    host = Tensor(cu.dims(), DType::i32, ctx.host_allocator(), cu.name);
    ctx.copy(host, cu);
    p = host.ptr<int32_t>();
  }
  const int64_t n = cu.shape[0];
  c.require(p[0] == 0,
            fmt::format("cu_seqlens {} must start at 0; cu_seqlens[0] = {}", cu.describe(), p[0]));
  for (int64_t b = 1; b < n; ++b)
    c.require(p[b] >= p[b - 1],
              fmt::format("cu_seqlens {} must be non-decreasing; cu_seqlens[{}] = {} < "
                          "cu_seqlens[{}] = {}",
                          cu.describe(), b, p[b], b - 1, p[b - 1]));
  c.require(p[n - 1] == t, fmt::format("cu_seqlens {} must end at T = {} (rows of q); "
                                       "cu_seqlens[{}] = {}",
                                       cu.describe(), t, n - 1, p[n - 1]));
}

}  // namespace

void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                       const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       double scale, Context& ctx) {
  OpCheck c("attention", ctx);
  const Dims d = check_qkv(c, q, k, v, scale);
  check_row_view(c, out, "out", true);
  c.shape(out, {d.t, d.hq, d.dv}, "out (T, Hq, Dv)");
  check_lse(c, lse, d);
  c.same_precision({{&out, "out"}, {&lse, "lse"}, {&q, "q"}, {&k, "k"}, {&v, "v"}});
  for (auto [in, role] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) {
    no_overlap(c, out, "out", *in, role);
    no_overlap(c, lse, "lse", *in, role);
  }
  no_overlap(c, out, "out", lse, "lse");
  check_cu_seqlens(c, cu_seqlens, d.t, ctx);
  if (ctx.is_cuda()) return cuda::attention_forward(out, lse, q, k, v, cu_seqlens, scale, ctx);
  cpu::attention_forward(out, lse, q, k, v, cu_seqlens, scale, ctx);
}

void attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                        const TensorView& dout, const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out, const TensorView& lse,
                        const TensorView& cu_seqlens, double scale, Context& ctx) {
  OpCheck c("attention_backward", ctx);
  const Dims d = check_qkv(c, q, k, v, scale);
  check_row_view(c, out, "out", false);
  check_row_view(c, dout, "dout", false);
  c.shape(out, {d.t, d.hq, d.dv}, "out (T, Hq, Dv)");
  c.same_shape(dout, "dout", out, "out");
  check_lse(c, lse, d);
  check_row_view(c, dq, "dq", true);
  check_row_view(c, dk, "dk", true);
  check_row_view(c, dv, "dv", true);
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
  const std::pair<const TensorView*, const char*> grads[] = {{&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}};
  const std::pair<const TensorView*, const char*> inputs[] = {
      {&dout, "dout"}, {&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}, {&lse, "lse"}};
  for (size_t i = 0; i < 3; ++i) {
    for (size_t j = i + 1; j < 3; ++j)
      no_overlap(c, *grads[i].first, grads[i].second, *grads[j].first, grads[j].second);
    for (const auto& [in, role] : inputs)
      no_overlap(c, *grads[i].first, grads[i].second, *in, role);
  }
  check_cu_seqlens(c, cu_seqlens, d.t, ctx);
  if (ctx.is_cuda())
    return cuda::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, cu_seqlens, scale, ctx);
  cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, cu_seqlens, scale, ctx);
}

}  // namespace r1kit::kernels

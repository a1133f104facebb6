// Elementwise CPU reference: flat loops over contiguous tensors, split over the thread pool; each
// result is computed in double and rounded once to the output dtype.
#include "kernels/elementwise.h"

#include <array>
#include <cstring>
#include <tuple>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per chunk: large enough to amortise the dispatch

// A flat 1-D view of elements [begin, end) of a contiguous tensor.
TensorView flat_range(const TensorView& v, int64_t begin, int64_t end) {
  return TensorView(v.element(begin), v.dtype, v.device, {end - begin}, v.name);
}

// Writes g into d: d = g, or d += g when accumulating.
template <class T>
void write_grad(T* d, double g, GradWrite w) {
  *d = static_cast<T>(w == GradWrite::accumulate ? *d + g : g);
}

// y[i] = f(in[i]...) for every element (y[i] += f(...) when w accumulates), over the thread pool:
// f gets the inputs' values as double and its result is rounded once to y's dtype.
template <size_t K, class F>
void map_elements(Context& ctx, const TensorView& y_, GradWrite w, const TensorView (&in_)[K],
                  F&& f) {
  CpuUpcast up(ctx);
  std::array<TensorView, K> in;
  for (size_t k = 0; k < K; ++k) in[k] = up.in(in_[k]);
  const TensorView y = up.grad(y_, w);
  dispatch_float(y.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.ptr<T>();
    ctx.pool().parallel_for(y.numel(), kGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i)
        std::apply(
            [&](const auto&... x) {
              write_grad(yp + i, f(static_cast<double>(x.template ptr<const T>()[i])...), w);
            },
            in);
    });
  });
  up.finish();
}

}  // namespace

void add_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx) {
  // y = a + b
  map_elements(ctx, y, GradWrite::overwrite, {a, b}, [](double av, double bv) { return av + bv; });
}

void add_backward(const TensorView& da_, const TensorView& db_, const TensorView& dy_,
                  GradWrite da_write, GradWrite db_write, Context& ctx) {
  CpuUpcast up(ctx);
  // Absent gradients (TensorView{}) pass through CpuUpcast as they are.
  TensorView dy = up.in(dy_), da = up.grad(da_, da_write), db = up.grad(db_, db_write);
  dispatch_float(dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* g = dy.ptr<T>();
    T* dap = da.defined() ? da.ptr<T>() : nullptr;
    T* dbp = db.defined() ? db.ptr<T>() : nullptr;
    // da (=|+=) dy,  db (=|+=) dy
    ctx.pool().parallel_for(dy.numel(), kGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        if (dap) write_grad(dap + i, g[i], da_write);
        if (dbp) write_grad(dbp + i, g[i], db_write);
      }
    });
  });
  up.finish();
}

void axpy(const TensorView& y, double alpha, const TensorView& x, Context& ctx) {
  // y += alpha · x
  map_elements(ctx, y, GradWrite::accumulate, {x}, [&](double xv) { return alpha * xv; });
}

void mul_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx) {
  // y = a · b
  map_elements(ctx, y, GradWrite::overwrite, {a, b}, [](double av, double bv) { return av * bv; });
}

void mul_backward(const TensorView& da_, const TensorView& db_, const TensorView& dy_,
                  const TensorView& a_, const TensorView& b_, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView dy = up.in(dy_), a = up.in(a_), b = up.in(b_), da = up.out(da_), db = up.out(db_);
  dispatch_float(dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T *g = dy.ptr<T>(), *ap = a.ptr<T>(), *bp = b.ptr<T>();
    T* dap = da.defined() ? da.ptr<T>() : nullptr;
    T* dbp = db.defined() ? db.ptr<T>() : nullptr;
    // da = dy · b,  db = dy · a
    ctx.pool().parallel_for(dy.numel(), kGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        if (dap) dap[i] = static_cast<T>(static_cast<double>(g[i]) * bp[i]);
        if (dbp) dbp[i] = static_cast<T>(static_cast<double>(g[i]) * ap[i]);
      }
    });
  });
  up.finish();
}

void scale(const TensorView& y, double alpha, const TensorView& x, Context& ctx) {
  // y = alpha · x
  map_elements(ctx, y, GradWrite::overwrite, {x}, [&](double xv) { return alpha * xv; });
}

void cast(const TensorView& dst, const TensorView& src, Context& ctx) {
  ctx.pool().parallel_for(src.numel(), kGrain, [&](int64_t s, int64_t e) {
    if (dst.dtype == src.dtype) {
      std::memcpy(dst.element(s), src.element(s),
                  static_cast<size_t>(e - s) * dtype_size(src.dtype));
    } else {
      convert(flat_range(dst, s, e), flat_range(src, s, e));
    }
  });
}

void fill(const TensorView& y, double value, Context& ctx) {
  // The value rounded once to y's dtype, then copied bit for bit.
  unsigned char bits[8] = {};
  store_from_double(bits, y.dtype, 0, value);
  const size_t es = dtype_size(y.dtype);
  ctx.pool().parallel_for(y.numel(), kGrain, [&](int64_t s, int64_t e) {
    auto* p = static_cast<unsigned char*>(y.element(s));
    for (int64_t i = s; i < e; ++i, p += es) std::memcpy(p, bits, es);
  });
}

void copy(const TensorView& dst, const TensorView& src, Context&) {
  convert(dst, src);
}

}  // namespace r1kit::kernels::cpu

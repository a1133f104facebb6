// Softmax CPU reference: row-parallel; the row max in T, exponentials and sums in double.
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

// m = max_j x_j and s = Σ_j exp(x_j − m) of one row (s >= 1 when m is finite). A row with no
// finite entry has no distribution and comes out NaN, which says so.
template <class T>
void row_max_sum(const T* x, int64_t v, double* m, double* s) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < v; ++j) mx = std::max(mx, static_cast<double>(x[j]));
  double sum = 0;
  for (int64_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(x[j]) - mx);
  *m = mx;
  *s = sum;
}

// Runs body(row) for every row of an (N, V) tensor over the thread pool.
template <class F>
void for_rows(Context& ctx, int64_t n, int64_t v, F&& body) {
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(v, 1));
  ctx.pool().parallel_for(n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(i);
  });
}

}  // namespace

void softmax_forward(const TensorView& y_, const TensorView& x_, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView x = up.in(x_), y = up.out(y_);
  const int64_t n = x.shape[0], v = x.shape[1];
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    for_rows(ctx, n, v, [&](int64_t i) {
      const T* xi = x.ptr<T>() + i * v;
      T* yi = y.ptr<T>() + i * v;
      double m, s;
      row_max_sum(xi, v, &m, &s);
      // y = exp(x − m) / s  (reads x_j before writing y_j: in place is fine)
      const double inv = 1.0 / s;
      for (int64_t j = 0; j < v; ++j) yi[j] = static_cast<T>(std::exp(xi[j] - m) * inv);
    });
  });
  up.finish();
}

void log_softmax_forward(const TensorView& y_, const TensorView& x_, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView x = up.in(x_), y = up.out(y_);
  const int64_t n = x.shape[0], v = x.shape[1];
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    for_rows(ctx, n, v, [&](int64_t i) {
      const T* xi = x.ptr<T>() + i * v;
      T* yi = y.ptr<T>() + i * v;
      double m, s;
      row_max_sum(xi, v, &m, &s);
      // y = (x − m) − log s: subtracting m first keeps the result accurate relative to |y|
      // even when the logits are large (x − lse would lose the digits of |x|).
      const double log_s = std::log(s);
      for (int64_t j = 0; j < v; ++j) yi[j] = static_cast<T>((xi[j] - m) - log_s);
    });
  });
  up.finish();
}

void softmax_backward(const TensorView& dx_, const TensorView& dy_, const TensorView& y_,
                      Context& ctx) {
  CpuUpcast up(ctx);
  TensorView dy = up.in(dy_), y = up.in(y_), dx = up.out(dx_);
  const int64_t n = y.shape[0], v = y.shape[1];
  dispatch_float(y.dtype, [&](auto tag) {
    using T = decltype(tag);
    for_rows(ctx, n, v, [&](int64_t i) {
      const T* dyi = dy.ptr<T>() + i * v;
      const T* yi = y.ptr<T>() + i * v;
      T* dxi = dx.ptr<T>() + i * v;
      double dot = 0;
      for (int64_t j = 0; j < v; ++j) dot += static_cast<double>(dyi[j]) * yi[j];
      // dx = y · (dy − Σ dy·y)
      for (int64_t j = 0; j < v; ++j) dxi[j] = static_cast<T>(yi[j] * (dyi[j] - dot));
    });
  });
  up.finish();
}

void log_softmax_backward(const TensorView& dx_, const TensorView& dy_, const TensorView& y_,
                          Context& ctx) {
  CpuUpcast up(ctx);
  TensorView dy = up.in(dy_), y = up.in(y_), dx = up.out(dx_);
  const int64_t n = y.shape[0], v = y.shape[1];
  dispatch_float(y.dtype, [&](auto tag) {
    using T = decltype(tag);
    for_rows(ctx, n, v, [&](int64_t i) {
      const T* dyi = dy.ptr<T>() + i * v;
      const T* yi = y.ptr<T>() + i * v;
      T* dxi = dx.ptr<T>() + i * v;
      double sum = 0;
      for (int64_t j = 0; j < v; ++j) sum += dyi[j];
      // dx = dy − softmax · Σ dy,  softmax = exp(y)
      for (int64_t j = 0; j < v; ++j)
        dxi[j] = static_cast<T>(dyi[j] - std::exp(static_cast<double>(yi[j])) * sum);
    });
  });
  up.finish();
}

}  // namespace r1kit::kernels::cpu

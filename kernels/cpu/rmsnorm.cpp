// RMSNorm CPU reference: row-parallel over tokens, sums in double.
#include "kernels/rmsnorm.h"
#include "kernels/cpu/common.h"

#include <cmath>

namespace r1kit::kernels::cpu {

void rmsnorm_forward(const TensorView& y_, const TensorView& rstd_, const TensorView& x_,
                     const TensorView& w_, double eps, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView x = up.in(x_), w = up.in(w_), y = up.out(y_), rstd = up.out(rstd_);
  const int64_t n = x.shape[0], ch = x.shape[1];
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(rstd.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      ctx.pool().parallel_for(n, 64, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T* xi = x.ptr<T>() + i * ch;
          T* yi = y.ptr<T>() + i * ch;
          double ss = 0;
          for (int64_t j = 0; j < ch; ++j) ss += static_cast<double>(xi[j]) * xi[j];
          const double r = 1.0 / std::sqrt(ss / static_cast<double>(ch) + eps);
          rstd.ptr<R>()[i] = static_cast<R>(r);
          const T* wp = w.ptr<T>();
          for (int64_t j = 0; j < ch; ++j)
            yi[j] = static_cast<T>(static_cast<double>(xi[j]) * r * wp[j]);
        }
      });
    });
  });
  up.finish();
}

void rmsnorm_backward(const TensorView& dx_, const TensorView& dw_, const TensorView& dy_,
                      const TensorView& x_, const TensorView& w_, const TensorView& rstd_,
                      GradWrite dx_write, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView x = up.in(x_), w = up.in(w_), dy = up.in(dy_), rstd = up.in(rstd_);
  TensorView dx = dx_write == GradWrite::accumulate ? up.inout(dx_) : up.out(dx_);
  TensorView dw = up.inout(dw_);
  const int64_t n = x.shape[0], ch = x.shape[1];
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(rstd.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      // dw first: dx may be exactly dy (in place), and dw reads dy.
      // dw: parallel over channels, reduce over rows in a fixed order (deterministic).
      ctx.pool().parallel_for(ch, 16, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          double s = 0;
          for (int64_t i = 0; i < n; ++i)
            s += static_cast<double>(dy.ptr<T>()[i * ch + j]) * x.ptr<T>()[i * ch + j] *
                 rstd.ptr<R>()[i];
          dw.ptr<T>()[j] = static_cast<T>(dw.ptr<T>()[j] + s);
        }
      });
      // dx: independent per row.
      ctx.pool().parallel_for(n, 64, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T* xi = x.ptr<T>() + i * ch;
          const T* dyi = dy.ptr<T>() + i * ch;
          const T* wp = w.ptr<T>();
          T* dxi = dx.ptr<T>() + i * ch;
          const double r = rstd.ptr<R>()[i];
          double dot = 0;
          for (int64_t j = 0; j < ch; ++j) dot += static_cast<double>(wp[j]) * dyi[j] * xi[j];
          const double k = r * r * dot / static_cast<double>(ch);
          for (int64_t j = 0; j < ch; ++j) {
            double g = r * (static_cast<double>(wp[j]) * dyi[j] - static_cast<double>(xi[j]) * k);
            dxi[j] =
                dx_write == GradWrite::accumulate ? static_cast<T>(dxi[j] + g) : static_cast<T>(g);
          }
        }
      });
    });
  });
  up.finish();
}

}  // namespace r1kit::kernels::cpu

// Cross-entropy CPU reference: row-parallel; the row max, exponentials and sums in double.
#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {

void cross_entropy_forward(const TensorView& loss_, const TensorView& lse_,
                           const TensorView& logits_, const TensorView& targets,
                           int32_t ignore_index, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView logits = up.in(logits_);
  const int64_t n = logits.shape[0], v = logits.shape[1];
  const int32_t* t = targets.ptr<int32_t>();
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(v, 1));
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(loss_.dtype, [&](auto stag) {
      using S = decltype(stag);  // loss and lse are both f64 or both f32 here (same precision)
      ctx.pool().parallel_for(n, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T* x = logits.ptr<T>() + i * v;
          double m = -std::numeric_limits<double>::infinity();
          for (int64_t j = 0; j < v; ++j) m = std::max(m, static_cast<double>(x[j]));
          double s = 0;
          for (int64_t j = 0; j < v; ++j) s += std::exp(static_cast<double>(x[j]) - m);
          const double log_s = std::log(s);
          // lse = m + log Σ exp(x − m);  loss = lse − x_t = (m − x_t) + log s (accurate for
          // large logits)
          lse_.ptr<S>()[i] = static_cast<S>(m + log_s);
          loss_.ptr<S>()[i] = t[i] == ignore_index ? S(0) : static_cast<S>((m - x[t[i]]) + log_s);
        }
      });
    });
  });
}

void cross_entropy_backward(const TensorView& dlogits_, const TensorView& dloss_,
                            const TensorView& logits_, const TensorView& targets,
                            const TensorView& lse_, int32_t ignore_index, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView logits = up.in(logits_), dloss = up.in(dloss_), dlogits = up.out(dlogits_);
  const int64_t n = logits.shape[0], v = logits.shape[1];
  const int32_t* t = targets.ptr<int32_t>();
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(v, 1));
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse_.dtype, [&](auto stag) {
      using S = decltype(stag);
      ctx.pool().parallel_for(n, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T* x = logits.ptr<T>() + i * v;
          T* dx = dlogits.ptr<T>() + i * v;
          if (t[i] == ignore_index) {
            std::fill(dx, dx + v, T(0));
            continue;
          }
          const double g = dloss.ptr<T>()[i], lse = lse_.ptr<S>()[i];
          // dlogits = (exp(x − lse) − [j = t]) · dloss  (x_j is read before dx_j is written)
          for (int64_t j = 0; j < v; ++j) {
            const double p = std::exp(static_cast<double>(x[j]) - lse);
            dx[j] = static_cast<T>((p - (j == t[i] ? 1.0 : 0.0)) * g);
          }
        }
      });
    });
  });
  up.finish();
}

}  // namespace r1kit::kernels::cpu

// Softmax CPU reference: row-parallel; the row max in T, exponentials and sums in double.
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

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

// Rows per parallel_for chunk: about 16k elements of work each.
int64_t row_grain(const TensorView& x) {
  return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(x.shape[1], 1));
}

}  // namespace

void softmax_forward(const TensorView& y, const TensorView& x, Context& ctx) {
  map_rows(ctx, row_grain(x), {y}, {x}, [](auto* yi, const auto* xi, int64_t v) {
    using T = std::remove_pointer_t<decltype(yi)>;
    double m, s;
    row_max_sum(xi, v, &m, &s);
    // y = exp(x − m) / s  (reads x_j before writing y_j: in place is fine)
    const double inv = 1.0 / s;
    for (int64_t j = 0; j < v; ++j) yi[j] = static_cast<T>(std::exp(xi[j] - m) * inv);
  });
}

void log_softmax_forward(const TensorView& y, const TensorView& x, Context& ctx) {
  map_rows(ctx, row_grain(x), {y}, {x}, [](auto* yi, const auto* xi, int64_t v) {
    using T = std::remove_pointer_t<decltype(yi)>;
    double m, s;
    row_max_sum(xi, v, &m, &s);
    // y = (x − m) − log s: subtracting m first keeps the result accurate relative to |y|
    // even when the logits are large (x − lse would lose the digits of |x|).
    const double log_s = std::log(s);
    for (int64_t j = 0; j < v; ++j) yi[j] = static_cast<T>((xi[j] - m) - log_s);
  });
}

void softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                      Context& ctx) {
  map_rows(ctx, row_grain(y), {dx}, {dy, y},
           [](auto* dxi, const auto* dyi, const auto* yi, int64_t v) {
             using T = std::remove_pointer_t<decltype(dxi)>;
             double dot = 0;
             for (int64_t j = 0; j < v; ++j) dot += static_cast<double>(dyi[j]) * yi[j];
             // dx = y · (dy − Σ dy·y)
             for (int64_t j = 0; j < v; ++j) dxi[j] = static_cast<T>(yi[j] * (dyi[j] - dot));
           });
}

void log_softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                          Context& ctx) {
  map_rows(ctx, row_grain(y), {dx}, {dy, y},
           [](auto* dxi, const auto* dyi, const auto* yi, int64_t v) {
             using T = std::remove_pointer_t<decltype(dxi)>;
             double sum = 0;
             for (int64_t j = 0; j < v; ++j) sum += dyi[j];
             // dx = dy − softmax · Σ dy,  softmax = exp(y)
             for (int64_t j = 0; j < v; ++j)
               dxi[j] = static_cast<T>(dyi[j] - std::exp(static_cast<double>(yi[j])) * sum);
           });
}

}  // namespace r1kit::kernels::cpu

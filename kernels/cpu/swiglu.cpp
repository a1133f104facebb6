// SwiGLU CPU reference: row-parallel (map_rows, which follows each view's row stride, so column
// slices of a packed gate_up buffer work as they are), computed in double per element.
#include "kernels/swiglu.h"

#include <cmath>
#include <type_traits>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

double sigmoid(double g) {
  return 1.0 / (1.0 + std::exp(-g));
}

}  // namespace

void swiglu_forward(const TensorView& out, const TensorView& gate, const TensorView& up,
                    Context& ctx) {
  map_rows(ctx, 16, {out}, {gate, up}, [](auto* o, const auto* g, const auto* u, int64_t h) {
    using T = std::remove_pointer_t<decltype(o)>;
    // out = g · σ(g) · u
    for (int64_t j = 0; j < h; ++j) {
      const double gj = g[j];
      o[j] = static_cast<T>(gj * sigmoid(gj) * u[j]);
    }
  });
}

// dgate and dup overwritten (activation gradients). Gradient write rule: parameter gradients
// accumulate (+=), activation gradients overwrite (=), except the residual stream.
void swiglu_backward(const TensorView& dgate, const TensorView& dup, const TensorView& dout,
                     const TensorView& gate, const TensorView& up, Context& ctx) {
  map_rows(ctx, 16, {dgate, dup}, {dout, gate, up},
           [](auto* dg, auto* du, const auto* dy, const auto* g, const auto* u, int64_t h) {
             using T = std::remove_pointer_t<decltype(dg)>;
             for (int64_t j = 0; j < h; ++j) {
               const double gj = g[j], s = sigmoid(gj), dyj = dy[j];
               // d silu(g)/dg = σ(g) + g·σ(g)·(1 − σ(g)) = σ(g)·(1 + g·(1 − σ(g)))
               dg[j] = static_cast<T>(dyj * u[j] * s * (1.0 + gj * (1.0 - s)));
               du[j] = static_cast<T>(dyj * gj * s);
             }
           });
}

}  // namespace r1kit::kernels::cpu

// RoPE CPU reference: cos/sin tables in double, and the pairwise rotation of row-strided (T, H, D)
// views (forward by +angle, backward by −angle), parallel over tokens.
#include "kernels/rope.h"
#include "kernels/cpu/common.h"

#include <cmath>

namespace r1kit::kernels::cpu {
namespace {

// out[t, h, pair i] = rotation of in[t, h, pair i] by sign · angle(positions[t], i). Reads each
// pair before writing it, so out may be in (in place).
void rotate(const TensorView& out_, const TensorView& in_, const TensorView& cos_,
            const TensorView& sin_, const TensorView& positions, RopeLayout layout, double sign,
            Context& ctx) {
  CpuUpcast up(ctx);
  const TensorView in = up.in(in_), out = up.out(out_);
  const int64_t n_tok = in.shape[0], heads = in.shape[1], half = in.shape[2] / 2;
  const bool interleaved = layout == RopeLayout::interleaved;
  dispatch_float(in.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(cos_.dtype, [&](auto ctag) {
      using C = decltype(ctag);
      ctx.pool().parallel_for(n_tok, 16, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t p = positions.ptr<int32_t>()[t];
          const C* cr = cos_.ptr<C>() + p * half;
          const C* sr = sin_.ptr<C>() + p * half;
          for (int64_t h = 0; h < heads; ++h) {
            const T* xr = in.ptr<T>() + t * in.stride[0] + h * in.stride[1];
            T* yr = out.ptr<T>() + t * out.stride[0] + h * out.stride[1];
            for (int64_t i = 0; i < half; ++i) {
              const int64_t ia = interleaved ? 2 * i : i;
              const int64_t ib = interleaved ? 2 * i + 1 : i + half;
              const double a = xr[ia], bb = xr[ib];
              const double c = cr[i], s = sign * static_cast<double>(sr[i]);
              // (a, b) → (a·cos − b·sin, a·sin + b·cos)
              yr[ia] = static_cast<T>(a * c - bb * s);
              yr[ib] = static_cast<T>(a * s + bb * c);
            }
          }
        }
      });
    });
  });
  up.finish();
}

}  // namespace

void rope_tables(const TensorView& cos, const TensorView& sin, const TensorView& positions,
                 const std::vector<double>& inv_freq, double attention_scaling, Context& ctx) {
  const int64_t rows = cos.shape[0], half = cos.shape[1];
  dispatch_float(cos.dtype, [&](auto tag) {
    using C = decltype(tag);
    ctx.pool().parallel_for(rows, 64, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const double pos = positions.ptr<int32_t>()[r];
        for (int64_t i = 0; i < half; ++i) {
          // angle = pos · inv_freq[i], in double (HF forms it in f32, off by ~pos·2^-24 rad)
          const double angle = pos * inv_freq[static_cast<size_t>(i)];
          cos.ptr<C>()[r * half + i] = static_cast<C>(std::cos(angle) * attention_scaling);
          sin.ptr<C>()[r * half + i] = static_cast<C>(std::sin(angle) * attention_scaling);
        }
      }
    });
  });
}

void rope_forward(const TensorView& y, const TensorView& x, const TensorView& cos,
                  const TensorView& sin, const TensorView& positions, RopeLayout layout,
                  Context& ctx) {
  rotate(y, x, cos, sin, positions, layout, 1.0, ctx);
}

// dx = (rotation by −angle) dy, overwritten (activation gradient). Gradient write rule: parameter
// gradients accumulate (+=), activation gradients overwrite (=), except the residual stream.
void rope_backward(const TensorView& dx, const TensorView& dy, const TensorView& cos,
                   const TensorView& sin, const TensorView& positions, RopeLayout layout,
                   Context& ctx) {
  rotate(dx, dy, cos, sin, positions, layout, -1.0, ctx);
}

}  // namespace r1kit::kernels::cpu

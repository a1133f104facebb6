// AdamW CPU reference: one elementwise pass in double over the flat buffers, parallel over chunks.
#include "kernels/adamw.h"

#include <cmath>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {

void adamw_update(const TensorView& param, const TensorView& grad_, const TensorView& m,
                  const TensorView& v, const TensorView& param_bf16, const AdamWParams& hp,
                  Context& ctx) {
  CpuUpcast up(ctx);
  TensorView grad = up.in(grad_);
  const int64_t n = param.numel();
  uint16_t* bf16 = param_bf16.defined() ? param_bf16.ptr<uint16_t>() : nullptr;
  const auto t = static_cast<double>(hp.step);
  // Bias corrections 1 − β^t; the step size uses them as in torch.optim.AdamW.
  const double bc1 = 1.0 - std::pow(hp.beta1, t);
  const double bc2 = 1.0 - std::pow(hp.beta2, t);
  const double decay = 1.0 - hp.lr * hp.weight_decay;
  dispatch_float(param.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(n, 4096, [&](int64_t b, int64_t e) {
      T* p = param.ptr<T>();
      T* mp = m.ptr<T>();
      T* vp = v.ptr<T>();
      const T* g = grad.ptr<T>();
      for (int64_t i = b; i < e; ++i) {
        const double gi = g[i];
        // m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²   (the decay never enters these)
        const double mi = hp.beta1 * static_cast<double>(mp[i]) + (1.0 - hp.beta1) * gi;
        const double vi = hp.beta2 * static_cast<double>(vp[i]) + (1.0 - hp.beta2) * gi * gi;
        // p ← p·(1 − lr·wd) − lr·m̂ / (sqrt(v̂) + eps),  m̂ = m / bc1,  v̂ = v / bc2
        const double pi =
            static_cast<double>(p[i]) * decay - hp.lr * (mi / bc1) / (std::sqrt(vi / bc2) + hp.eps);
        mp[i] = static_cast<T>(mi);
        vp[i] = static_cast<T>(vi);
        p[i] = static_cast<T>(pi);
        // The bf16 working copy is rounded from the stored (f32) master value.
        if (bf16) bf16[i] = f32_to_bf16_bits(static_cast<float>(p[i]));
      }
    });
  });
}

}  // namespace r1kit::kernels::cpu

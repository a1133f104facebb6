// AdamW front-end: validation of buffers and hyperparameters, then the device switch.
#include "kernels/adamw.h"

#include <cmath>

namespace r1kit::kernels {

void adamw_update(const TensorView& param, const TensorView& grad, const TensorView& m,
                  const TensorView& v, const TensorView& param_bf16, const AdamWParams& hp,
                  Context& ctx) {
  OpCheck c("adamw", ctx);
  c.float_arg(param, "param");
  c.f32_or_f64(param, "param (the master weights)");
  c.float_arg(grad, "grad");
  c.same_shape(grad, "grad", param, "param");
  c.same_precision({{&param, "param"}, {&grad, "grad"}});
  for (auto [s, role] : {std::pair{&m, "m"}, {&v, "v"}}) {
    c.float_arg(*s, role);
    c.same_shape(*s, role, param, "param");
    c.same_dtype(*s, role, param, "param");
  }
  if (param_bf16.defined()) {
    c.on_device(param_bf16, "param_bf16");
    c.contiguous(param_bf16, "param_bf16");
    c.dtype(param_bf16, DType::bf16, "param_bf16");
    c.same_shape(param_bf16, "param_bf16", param, "param");
  }
  c.outputs_distinct({{&param, "param"}, {&m, "m"}, {&v, "v"}, {&param_bf16, "param_bf16"}},
                     {{&grad, "grad"}});
  c.require(std::isfinite(hp.lr) && hp.lr >= 0,
            [&] { return fmt::format("lr {} must be finite and >= 0", hp.lr); });
  c.require(hp.beta1 >= 0 && hp.beta1 < 1,
            [&] { return fmt::format("beta1 {} must be in [0, 1)", hp.beta1); });
  c.require(hp.beta2 >= 0 && hp.beta2 < 1,
            [&] { return fmt::format("beta2 {} must be in [0, 1)", hp.beta2); });
  // eps = 0 (allowed by PyTorch) turns a zero gradient with zero state into 0/0 = NaN.
  c.require(std::isfinite(hp.eps) && hp.eps > 0,
            [&] { return fmt::format("eps {} must be finite and > 0", hp.eps); });
  c.require(std::isfinite(hp.weight_decay) && hp.weight_decay >= 0, [&] {
    return fmt::format("weight_decay {} must be finite and >= 0", hp.weight_decay);
  });
  c.require(hp.step >= 1,
            [&] { return fmt::format("step {} must be >= 1 (steps count from 1)", hp.step); });
  if (ctx.is_cuda()) return cuda::adamw_update(param, grad, m, v, param_bf16, hp, ctx);
  cpu::adamw_update(param, grad, m, v, param_bf16, hp, ctx);
}

}  // namespace r1kit::kernels

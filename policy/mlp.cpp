// SwiGLU MLP: gate and up projections, silu(gate)·up, down projection; the backward reversed.
#include "policy/mlp.h"

#include "kernels/matmul.h"
#include "kernels/swiglu.h"

namespace r1kit::policy {

MlpWeights mlp_weights(const std::function<TensorView(const std::string&)>& lookup,
                       const std::string& prefix) {
  MlpWeights w;
  w.gate_proj = lookup(prefix + "gate_proj.weight");
  w.up_proj = lookup(prefix + "up_proj.weight");
  w.down_proj = lookup(prefix + "down_proj.weight");
  return w;
}

void mlp_forward(const TensorView& y, MlpSaved* saved, const TensorView& x, const MlpWeights& w,
                 Context& ctx) {
  const int64_t T = x.size(0), I = w.gate_proj.size(0);
  Tensor gate = ctx.empty({T, I}, x.dtype, "mlp.gate");  // (T, I)
  Tensor up = ctx.empty({T, I}, x.dtype, "mlp.up");      // (T, I)
  Tensor act = ctx.empty({T, I}, x.dtype, "mlp.act");    // (T, I)
  kernels::linear_forward(gate, x, w.gate_proj, TensorView{}, ctx);
  kernels::linear_forward(up, x, w.up_proj, TensorView{}, ctx);
  kernels::swiglu_forward(act, gate, up, ctx);
  kernels::linear_forward(y, act, w.down_proj, TensorView{}, ctx);
  if (saved) {
    saved->x = x;
    saved->gate = std::move(gate);
    saved->up = std::move(up);
    saved->act = std::move(act);
  }
}

void mlp_backward(const TensorView& dx, const MlpWeights& dw, const TensorView& dy,
                  const MlpSaved& saved, const MlpWeights& w, kernels::GradWrite dx_write,
                  Context& ctx) {
  using kernels::GradWrite;
  const int64_t T = dy.size(0), I = w.gate_proj.size(0);
  Tensor dact = ctx.empty({T, I}, dy.dtype, "mlp.dact");    // (T, I)
  Tensor dgate = ctx.empty({T, I}, dy.dtype, "mlp.dgate");  // (T, I)
  Tensor dup = ctx.empty({T, I}, dy.dtype, "mlp.dup");      // (T, I)
  kernels::linear_backward(dact, dw.down_proj, TensorView{}, dy, saved.act, w.down_proj,
                           GradWrite::overwrite, ctx);
  kernels::swiglu_backward(dgate, dup, dact, saved.gate, saved.up, ctx);
  kernels::linear_backward(dx, dw.up_proj, TensorView{}, dup, saved.x, w.up_proj, dx_write, ctx);
  kernels::linear_backward(dx, dw.gate_proj, TensorView{}, dgate, saved.x, w.gate_proj,
                           GradWrite::accumulate, ctx);
}

}  // namespace r1kit::policy

// Cross-entropy front-ends: validation (including target values on the CPU), then the device
// switch.
#include "kernels/cross_entropy.h"

namespace r1kit::kernels {
namespace {

// The (N, V) logits, (N) targets and an (N) f32/f64 row statistic (loss, lse, dloss) agree.
void check_rows(const OpCheck& c, const TensorView& logits, const TensorView& targets) {
  c.float_arg(logits, "logits");
  c.int_arg(targets, "targets");
  c.ndim(logits, 2, "logits");
  c.shape(targets, {logits.shape[0]}, "targets");
}

void check_row_stat(const OpCheck& c, const TensorView& v, const TensorView& logits,
                    const char* role) {
  c.float_arg(v, role);
  c.shape(v, {logits.shape[0]}, role);
  c.f32_or_f64(v, role);
}

// Every target is ignore_index or a class in [0, V). Only host memory can be read here; on CUDA
// the kernel checks on the device.
void check_targets(const OpCheck& c, const TensorView& targets, const TensorView& logits,
                   int32_t ignore_index, Context& ctx) {
  if (ctx.is_cuda()) return;
  const int64_t v = logits.shape[1];
  const int32_t* t = targets.ptr<int32_t>();
  for (int64_t i = 0; i < targets.numel(); ++i)
    if (t[i] != ignore_index && (t[i] < 0 || t[i] >= v))
      c.fail(fmt::format(
          "target {} at position {} of targets {} is out of range for logits {} (V = {}) and is "
          "not the ignore index {}",
          t[i], i, targets.describe(), logits.describe(), v, ignore_index));
}

}  // namespace

void cross_entropy_forward(const TensorView& loss, const TensorView& lse, const TensorView& logits,
                           const TensorView& targets, int32_t ignore_index, Context& ctx) {
  OpCheck c("cross_entropy", ctx);
  check_rows(c, logits, targets);
  check_row_stat(c, loss, logits, "loss");
  check_row_stat(c, lse, logits, "lse");
  c.same_precision({{&loss, "loss"}, {&lse, "lse"}, {&logits, "logits"}});
  c.outputs_distinct({{&loss, "loss"}, {&lse, "lse"}},
                     {{&logits, "logits"}, {&targets, "targets"}});
  check_targets(c, targets, logits, ignore_index, ctx);
  if (ctx.is_cuda())
    return cuda::cross_entropy_forward(loss, lse, logits, targets, ignore_index, ctx);
  cpu::cross_entropy_forward(loss, lse, logits, targets, ignore_index, ctx);
}

void cross_entropy_forward(const TensorView& loss, const TensorView& lse, const TensorView& logits,
                           const TensorView& targets, Context& ctx) {
  cross_entropy_forward(loss, lse, logits, targets, kCrossEntropyIgnoreIndex, ctx);
}

void cross_entropy_backward(const TensorView& dlogits, const TensorView& dloss,
                            const TensorView& logits, const TensorView& targets,
                            const TensorView& lse, int32_t ignore_index, Context& ctx) {
  OpCheck c("cross_entropy_backward", ctx);
  check_rows(c, logits, targets);
  c.float_arg(dlogits, "dlogits");
  c.same_shape(dlogits, "dlogits", logits, "logits");
  check_row_stat(c, lse, logits, "lse");
  c.float_arg(dloss, "dloss");
  c.shape(dloss, {logits.shape[0]}, "dloss");
  c.same_precision({{&dlogits, "dlogits"}, {&dloss, "dloss"}, {&logits, "logits"}, {&lse, "lse"}});
  // In place over logits is allowed (each element is read before it is written).
  c.in_place_or_no_alias(dlogits, "dlogits", logits, "logits");
  c.outputs_distinct({{&dlogits, "dlogits"}},
                     {{&dloss, "dloss"}, {&targets, "targets"}, {&lse, "lse"}});
  check_targets(c, targets, logits, ignore_index, ctx);
  if (ctx.is_cuda())
    return cuda::cross_entropy_backward(dlogits, dloss, logits, targets, lse, ignore_index, ctx);
  cpu::cross_entropy_backward(dlogits, dloss, logits, targets, lse, ignore_index, ctx);
}

void cross_entropy_backward(const TensorView& dlogits, const TensorView& dloss,
                            const TensorView& logits, const TensorView& targets,
                            const TensorView& lse, Context& ctx) {
  cross_entropy_backward(dlogits, dloss, logits, targets, lse, kCrossEntropyIgnoreIndex, ctx);
}

}  // namespace r1kit::kernels

// Token log-prob head front-ends: validation (shapes, dtypes, aliasing, target range), then the
// device switch.
#include "kernels/logprob.h"

#include <cmath>
#include <vector>

namespace r1kit::kernels {
namespace {

// An optional argument (entropy, dentropy) is absent when default-constructed or empty.
bool present(const TensorView& v) {
  return v.data != nullptr && v.numel() > 0;
}

// Per-token statistics (logprob, entropy, lse and their gradients): (N) f32 or f64.
void stat_arg(const OpCheck& c, const TensorView& v, int64_t n, const char* role) {
  c.float_arg(v, role);
  c.shape(v, {n}, role);
  c.require(v.dtype == DType::f32 || v.dtype == DType::f64,
            fmt::format("{} {} must be f32 or f64", role, v.describe()));
}

void check_temperature(const OpCheck& c, double temperature) {
  c.require(std::isfinite(temperature) && temperature > 0,
            fmt::format("temperature {} must be finite and > 0", temperature));
}

// targets (N) i32, every value in [0, V). The values are read only when they live on the host;
// the CUDA kernels flag out-of-range targets themselves.
void check_targets(const OpCheck& c, const TensorView& targets, int64_t n, int64_t vocab,
                   const std::string& vocab_from) {
  c.int_arg(targets, "targets");
  c.shape(targets, {n}, "targets");
  if (!targets.device.is_cpu()) return;
  const int32_t* t = targets.ptr<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    if (t[i] < 0 || t[i] >= vocab)
      c.fail(fmt::format("targets {} at position {} holds {}, outside [0, {}) set by {}",
                         targets.describe(), i, t[i], vocab, vocab_from));
}

// Outputs must not overlap each other or any input.
void check_no_alias(const OpCheck& c,
                    std::initializer_list<std::pair<const TensorView*, const char*>> outputs,
                    std::initializer_list<std::pair<const TensorView*, const char*>> inputs) {
  std::vector<std::pair<const TensorView*, const char*>> outs(outputs);
  for (size_t i = 0; i < outs.size(); ++i) {
    for (size_t j = i + 1; j < outs.size(); ++j)
      c.no_alias(*outs[i].first, outs[i].second, *outs[j].first, outs[j].second);
    for (const auto& in : inputs) c.no_alias(*outs[i].first, outs[i].second, *in.first, in.second);
  }
}

}  // namespace

void logprob_forward(const TensorView& logprob, const TensorView& entropy, const TensorView& lse,
                     const TensorView& logits, const TensorView& targets, double temperature,
                     Context& ctx) {
  OpCheck c("logprob", ctx);
  c.float_arg(logits, "logits");
  c.ndim(logits, 2, "logits");
  const int64_t n = logits.shape[0], vocab = logits.shape[1];
  c.require(vocab >= 1, fmt::format("logits {} must have a vocab dim >= 1", logits.describe()));
  stat_arg(c, logprob, n, "logprob");
  stat_arg(c, lse, n, "lse");
  const bool with_entropy = present(entropy);
  if (with_entropy) stat_arg(c, entropy, n, "entropy");
  check_temperature(c, temperature);
  c.same_precision({{&logits, "logits"}, {&logprob, "logprob"}, {&lse, "lse"}});
  if (with_entropy) c.same_precision({{&logits, "logits"}, {&entropy, "entropy"}});
  check_no_alias(c, {{&logprob, "logprob"}, {&lse, "lse"}, {&entropy, "entropy"}},
                 {{&logits, "logits"}, {&targets, "targets"}});
  check_targets(c, targets, n, vocab, "logits " + logits.describe());
  if (ctx.is_cuda())
    return cuda::logprob_forward(logprob, entropy, lse, logits, targets, temperature, ctx);
  cpu::logprob_forward(logprob, entropy, lse, logits, targets, temperature, ctx);
}

void logprob_backward(const TensorView& dlogits, const TensorView& dlogprob,
                      const TensorView& dentropy, const TensorView& logits,
                      const TensorView& targets, const TensorView& lse, double temperature,
                      Context& ctx) {
  OpCheck c("logprob_backward", ctx);
  c.float_arg(logits, "logits");
  c.ndim(logits, 2, "logits");
  const int64_t n = logits.shape[0], vocab = logits.shape[1];
  c.require(vocab >= 1, fmt::format("logits {} must have a vocab dim >= 1", logits.describe()));
  c.float_arg(dlogits, "dlogits");
  c.shape(dlogits, {n, vocab}, "dlogits");
  stat_arg(c, dlogprob, n, "dlogprob");
  stat_arg(c, lse, n, "lse");
  const bool with_entropy = present(dentropy);
  if (with_entropy) stat_arg(c, dentropy, n, "dentropy");
  check_temperature(c, temperature);
  c.same_precision(
      {{&logits, "logits"}, {&dlogits, "dlogits"}, {&dlogprob, "dlogprob"}, {&lse, "lse"}});
  if (with_entropy) c.same_precision({{&logits, "logits"}, {&dentropy, "dentropy"}});
  check_no_alias(c, {{&dlogits, "dlogits"}},
                 {{&dlogprob, "dlogprob"},
                  {&dentropy, "dentropy"},
                  {&logits, "logits"},
                  {&targets, "targets"},
                  {&lse, "lse"}});
  check_targets(c, targets, n, vocab, "logits " + logits.describe());
  if (ctx.is_cuda())
    return cuda::logprob_backward(dlogits, dlogprob, dentropy, logits, targets, lse, temperature,
                                  ctx);
  cpu::logprob_backward(dlogits, dlogprob, dentropy, logits, targets, lse, temperature, ctx);
}

void logprob_head_forward(const TensorView& logprob, const TensorView& entropy,
                          const TensorView& lse, const TensorView& h, const TensorView& w,
                          const TensorView& targets, double temperature, int64_t chunk_tokens,
                          Context& ctx) {
  OpCheck c("logprob_head", ctx);
  c.float_arg(h, "h");
  c.float_arg(w, "w");
  c.ndim(h, 2, "h");
  c.ndim(w, 2, "w");
  const int64_t n = h.shape[0], ch = h.shape[1], vocab = w.shape[0];
  c.require(ch >= 1 && vocab >= 1,
            fmt::format("h {} and w {} need at least one channel and one vocab row", h.describe(),
                        w.describe()));
  c.require(w.shape[1] == ch, fmt::format("w {} must have shape ({}, {}) to match h {}",
                                          w.describe(), vocab, ch, h.describe()));
  stat_arg(c, logprob, n, "logprob");
  stat_arg(c, lse, n, "lse");
  const bool with_entropy = present(entropy);
  if (with_entropy) stat_arg(c, entropy, n, "entropy");
  check_temperature(c, temperature);
  c.require(chunk_tokens >= 1, fmt::format("chunk_tokens {} must be >= 1", chunk_tokens));
  c.same_precision({{&h, "h"}, {&w, "w"}, {&logprob, "logprob"}, {&lse, "lse"}});
  if (with_entropy) c.same_precision({{&h, "h"}, {&entropy, "entropy"}});
  check_no_alias(c, {{&logprob, "logprob"}, {&lse, "lse"}, {&entropy, "entropy"}},
                 {{&h, "h"}, {&w, "w"}, {&targets, "targets"}});
  check_targets(c, targets, n, vocab, "w " + w.describe());
  if (ctx.is_cuda())
    return cuda::logprob_head_forward(logprob, entropy, lse, h, w, targets, temperature,
                                      chunk_tokens, ctx);
  cpu::logprob_head_forward(logprob, entropy, lse, h, w, targets, temperature, chunk_tokens, ctx);
}

void logprob_head_backward(const TensorView& dh, const TensorView& dw, const TensorView& dlogprob,
                           const TensorView& dentropy, const TensorView& h, const TensorView& w,
                           const TensorView& targets, const TensorView& lse, double temperature,
                           int64_t chunk_tokens, Context& ctx) {
  OpCheck c("logprob_head_backward", ctx);
  c.float_arg(h, "h");
  c.float_arg(w, "w");
  c.ndim(h, 2, "h");
  c.ndim(w, 2, "w");
  const int64_t n = h.shape[0], ch = h.shape[1], vocab = w.shape[0];
  c.require(ch >= 1 && vocab >= 1,
            fmt::format("h {} and w {} need at least one channel and one vocab row", h.describe(),
                        w.describe()));
  c.require(w.shape[1] == ch, fmt::format("w {} must have shape ({}, {}) to match h {}",
                                          w.describe(), vocab, ch, h.describe()));
  c.float_arg(dh, "dh");
  c.shape(dh, {n, ch}, "dh");
  c.float_arg(dw, "dw");
  c.shape(dw, {vocab, ch}, "dw");
  stat_arg(c, dlogprob, n, "dlogprob");
  stat_arg(c, lse, n, "lse");
  const bool with_entropy = present(dentropy);
  if (with_entropy) stat_arg(c, dentropy, n, "dentropy");
  check_temperature(c, temperature);
  c.require(chunk_tokens >= 1, fmt::format("chunk_tokens {} must be >= 1", chunk_tokens));
  c.same_precision(
      {{&h, "h"}, {&w, "w"}, {&dh, "dh"}, {&dw, "dw"}, {&dlogprob, "dlogprob"}, {&lse, "lse"}});
  if (with_entropy) c.same_precision({{&h, "h"}, {&dentropy, "dentropy"}});
  check_no_alias(c, {{&dh, "dh"}, {&dw, "dw"}},
                 {{&dlogprob, "dlogprob"},
                  {&dentropy, "dentropy"},
                  {&h, "h"},
                  {&w, "w"},
                  {&targets, "targets"},
                  {&lse, "lse"}});
  check_targets(c, targets, n, vocab, "w " + w.describe());
  if (ctx.is_cuda())
    return cuda::logprob_head_backward(dh, dw, dlogprob, dentropy, h, w, targets, lse, temperature,
                                       chunk_tokens, ctx);
  cpu::logprob_head_backward(dh, dw, dlogprob, dentropy, h, w, targets, lse, temperature,
                             chunk_tokens, ctx);
}

}  // namespace r1kit::kernels

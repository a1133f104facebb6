// Token log-prob head front-ends: validation (shapes, dtypes, aliasing, target range), then the
// device switch.
#include "kernels/logprob.h"

#include <cmath>
#include <tuple>
#include <utility>

namespace r1kit::kernels {
namespace {

// Per-token statistics (logprob, entropy, lse and their gradients): (N) f32 or f64.
void stat_arg(const OpCheck& c, const TensorView& v, int64_t n, const char* role) {
  c.float_arg(v, role);
  c.shape(v, {n}, role);
  c.f32_or_f64(v, role);
}

void check_temperature(const OpCheck& c, double temperature) {
  c.require(std::isfinite(temperature) && temperature > 0,
            [&] { return fmt::format("temperature {} must be finite and > 0", temperature); });
}

// The per-token statistics of a call, (N) each: `stat` (logprob or dlogprob) and lse, and the
// optional `ent` (entropy or dentropy; skipped when not defined()) in the precision of `like`
// (the logits or h); then the temperature.
void check_stats(const OpCheck& c, int64_t n, NamedView stat, const TensorView& lse, NamedView ent,
                 NamedView like, double temperature) {
  stat_arg(c, *stat.first, n, stat.second);
  stat_arg(c, lse, n, "lse");
  if (ent.first->defined()) {
    stat_arg(c, *ent.first, n, ent.second);
    c.same_precision({like, ent});
  }
  check_temperature(c, temperature);
}

// logits (N, V) with V >= 1; returns (N, V).
std::pair<int64_t, int64_t> check_logits(const OpCheck& c, const TensorView& logits) {
  c.float_arg(logits, "logits");
  c.ndim(logits, 2, "logits");
  const int64_t n = logits.shape[0], vocab = logits.shape[1];
  c.require(vocab >= 1,
            [&] { return fmt::format("logits {} must have a vocab dim >= 1", logits.describe()); });
  return {n, vocab};
}

// h (N, C) and the lm_head weight w (V, C) with C, V >= 1; returns (N, C, V).
std::tuple<int64_t, int64_t, int64_t> check_head(const OpCheck& c, const TensorView& h,
                                                 const TensorView& w) {
  c.float_arg(h, "h");
  c.float_arg(w, "w");
  c.ndim(h, 2, "h");
  c.ndim(w, 2, "w");
  const int64_t n = h.shape[0], ch = h.shape[1], vocab = w.shape[0];
  c.require(ch >= 1 && vocab >= 1, [&] {
    return fmt::format("h {} and w {} need at least one channel and one vocab row", h.describe(),
                       w.describe());
  });
  c.require(w.shape[1] == ch, [&] {
    return fmt::format("w {} must have shape ({}, {}) to match h {}", w.describe(), vocab, ch,
                       h.describe());
  });
  return {n, ch, vocab};
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

}  // namespace

void logprob_forward(const TensorView& logprob, const TensorView& entropy, const TensorView& lse,
                     const TensorView& logits, const TensorView& targets, double temperature,
                     Context& ctx) {
  OpCheck c("logprob", ctx);
  const auto [n, vocab] = check_logits(c, logits);
  check_stats(c, n, {&logprob, "logprob"}, lse, {&entropy, "entropy"}, {&logits, "logits"},
              temperature);
  c.same_precision({{&logits, "logits"}, {&logprob, "logprob"}, {&lse, "lse"}});
  c.outputs_distinct({{&logprob, "logprob"}, {&lse, "lse"}, {&entropy, "entropy"}},
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
  const auto [n, vocab] = check_logits(c, logits);
  c.float_arg(dlogits, "dlogits");
  c.shape(dlogits, {n, vocab}, "dlogits");
  check_stats(c, n, {&dlogprob, "dlogprob"}, lse, {&dentropy, "dentropy"}, {&logits, "logits"},
              temperature);
  c.same_precision(
      {{&logits, "logits"}, {&dlogits, "dlogits"}, {&dlogprob, "dlogprob"}, {&lse, "lse"}});
  c.outputs_distinct({{&dlogits, "dlogits"}}, {{&dlogprob, "dlogprob"},
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
  const auto [n, ch, vocab] = check_head(c, h, w);
  check_stats(c, n, {&logprob, "logprob"}, lse, {&entropy, "entropy"}, {&h, "h"}, temperature);
  c.require(chunk_tokens >= 1,
            [&] { return fmt::format("chunk_tokens {} must be >= 1", chunk_tokens); });
  c.same_precision({{&h, "h"}, {&w, "w"}, {&logprob, "logprob"}, {&lse, "lse"}});
  c.outputs_distinct({{&logprob, "logprob"}, {&lse, "lse"}, {&entropy, "entropy"}},
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
  const auto [n, ch, vocab] = check_head(c, h, w);
  c.float_arg(dh, "dh");
  c.shape(dh, {n, ch}, "dh");
  c.float_arg(dw, "dw");
  c.shape(dw, {vocab, ch}, "dw");
  check_stats(c, n, {&dlogprob, "dlogprob"}, lse, {&dentropy, "dentropy"}, {&h, "h"}, temperature);
  c.require(chunk_tokens >= 1,
            [&] { return fmt::format("chunk_tokens {} must be >= 1", chunk_tokens); });
  c.same_precision(
      {{&h, "h"}, {&w, "w"}, {&dh, "dh"}, {&dw, "dw"}, {&dlogprob, "dlogprob"}, {&lse, "lse"}});
  c.outputs_distinct({{&dh, "dh"}, {&dw, "dw"}}, {{&dlogprob, "dlogprob"},
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

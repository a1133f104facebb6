// Top-k and multi-target log-prob head front-ends: validation (shapes, dtypes, K range, aliasing,
// target range), then the device switch.
#include "kernels/topk_head.h"

#include <cmath>
#include <string>
#include <tuple>

namespace r1kit::kernels {
namespace {

// Per-row or per-(row, k) statistics (log-probs, lse and their gradients): f32 or f64.
void stat_arg(const OpCheck& c, const TensorView& v, std::initializer_list<int64_t> dims,
              const char* role) {
  c.float_arg(v, role);
  c.shape(v, dims, role);
  c.f32_or_f64(v, role);
}

void check_temperature_chunk(const OpCheck& c, double temperature, int64_t chunk_tokens) {
  c.require(std::isfinite(temperature) && temperature > 0,
            [&] { return fmt::format("temperature {} must be finite and > 0", temperature); });
  c.require(chunk_tokens >= 1,
            [&] { return fmt::format("chunk_tokens {} must be >= 1", chunk_tokens); });
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

// (N, K) i32 ids (topk_idx, targets); returns K.
int64_t check_ids(const OpCheck& c, const TensorView& ids, int64_t n, const char* role) {
  c.int_arg(ids, role);
  c.ndim(ids, 2, role);
  c.require(ids.shape[0] == n, [&] {
    return fmt::format("{} {} must have shape ({}, K) to match h's {} rows", role, ids.describe(),
                       n, n);
  });
  return ids.shape[1];
}

// targets (N, K) i32, every value in [0, V). The values are read only when they live on the host;
// the CUDA kernels flag out-of-range targets themselves.
void check_target_values(const OpCheck& c, const TensorView& targets, const TensorView& w) {
  if (!targets.device.is_cpu()) return;
  const int64_t n = targets.shape[0], k = targets.shape[1], vocab = w.shape[0];
  const int32_t* t = targets.ptr<int32_t>();
  for (int64_t i = 0; i < n * k; ++i)
    if (t[i] < 0 || t[i] >= vocab)
      c.fail(fmt::format("targets {} at row {}, column {} holds {}, outside [0, {}) set by w {}",
                         targets.describe(), i / k, i % k, t[i], vocab, w.describe()));
}

}  // namespace

void logprob_head_topk(const TensorView& topk_logprob, const TensorView& topk_idx,
                       const TensorView& lse, const TensorView& h, const TensorView& w,
                       double temperature, int64_t chunk_tokens, Context& ctx) {
  OpCheck c("logprob_head_topk", ctx);
  const auto [n, ch, vocab] = check_head(c, h, w);
  const int64_t k = check_ids(c, topk_idx, n, "topk_idx");
  c.require(k >= 1 && k <= vocab, [&] {
    return fmt::format("K = {} (topk_idx {}) must be in [1, {}], the vocab of w {}", k,
                       topk_idx.describe(), vocab, w.describe());
  });
  c.require(!ctx.is_cuda() || k <= kTopkCudaMaxK, [&] {
    return fmt::format("K = {} (topk_idx {}) is above the CUDA kernel's maximum {}", k,
                       topk_idx.describe(), kTopkCudaMaxK);
  });
  stat_arg(c, topk_logprob, {n, k}, "topk_logprob");
  stat_arg(c, lse, {n}, "lse");
  check_temperature_chunk(c, temperature, chunk_tokens);
  c.same_precision({{&h, "h"}, {&w, "w"}, {&topk_logprob, "topk_logprob"}, {&lse, "lse"}});
  c.outputs_distinct({{&topk_logprob, "topk_logprob"}, {&topk_idx, "topk_idx"}, {&lse, "lse"}},
                     {{&h, "h"}, {&w, "w"}});
  if (ctx.is_cuda())
    return cuda::logprob_head_topk(topk_logprob, topk_idx, lse, h, w, temperature, chunk_tokens,
                                   ctx);
  cpu::logprob_head_topk(topk_logprob, topk_idx, lse, h, w, temperature, chunk_tokens, ctx);
}

void logprob_head_multi_forward(const TensorView& logprob, const TensorView& lse,
                                const TensorView& h, const TensorView& w, const TensorView& targets,
                                double temperature, int64_t chunk_tokens, Context& ctx) {
  OpCheck c("logprob_head_multi", ctx);
  const auto [n, ch, vocab] = check_head(c, h, w);
  const int64_t k = check_ids(c, targets, n, "targets");
  stat_arg(c, logprob, {n, k}, "logprob");
  stat_arg(c, lse, {n}, "lse");
  check_temperature_chunk(c, temperature, chunk_tokens);
  c.same_precision({{&h, "h"}, {&w, "w"}, {&logprob, "logprob"}, {&lse, "lse"}});
  c.outputs_distinct({{&logprob, "logprob"}, {&lse, "lse"}},
                     {{&h, "h"}, {&w, "w"}, {&targets, "targets"}});
  check_target_values(c, targets, w);
  if (ctx.is_cuda())
    return cuda::logprob_head_multi_forward(logprob, lse, h, w, targets, temperature, chunk_tokens,
                                            ctx);
  cpu::logprob_head_multi_forward(logprob, lse, h, w, targets, temperature, chunk_tokens, ctx);
}

void logprob_head_multi_backward(const TensorView& dh, const TensorView& dw,
                                 const TensorView& dlogprob, const TensorView& h,
                                 const TensorView& w, const TensorView& targets,
                                 const TensorView& lse, double temperature, int64_t chunk_tokens,
                                 Context& ctx) {
  OpCheck c("logprob_head_multi_backward", ctx);
  const auto [n, ch, vocab] = check_head(c, h, w);
  c.float_arg(dh, "dh");
  c.shape(dh, {n, ch}, "dh");
  c.float_arg(dw, "dw");
  c.shape(dw, {vocab, ch}, "dw");
  const int64_t k = check_ids(c, targets, n, "targets");
  stat_arg(c, dlogprob, {n, k}, "dlogprob");
  stat_arg(c, lse, {n}, "lse");
  check_temperature_chunk(c, temperature, chunk_tokens);
  c.same_precision(
      {{&h, "h"}, {&w, "w"}, {&dh, "dh"}, {&dw, "dw"}, {&dlogprob, "dlogprob"}, {&lse, "lse"}});
  c.outputs_distinct(
      {{&dh, "dh"}, {&dw, "dw"}},
      {{&dlogprob, "dlogprob"}, {&h, "h"}, {&w, "w"}, {&targets, "targets"}, {&lse, "lse"}});
  check_target_values(c, targets, w);
  if (ctx.is_cuda())
    return cuda::logprob_head_multi_backward(dh, dw, dlogprob, h, w, targets, lse, temperature,
                                             chunk_tokens, ctx);
  cpu::logprob_head_multi_backward(dh, dw, dlogprob, h, w, targets, lse, temperature, chunk_tokens,
                                   ctx);
}

}  // namespace r1kit::kernels

// The SFT objective, LR schedules and the optimizer step (sft/loss.h).
#include "sft/loss.h"

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "kernels/grad_norm.h"

namespace r1kit::sft {

double learning_rate(const OptimConfig& cfg, int64_t step) {
  R1_CHECK(step >= 1, "[sft] learning_rate: step {} must be >= 1", step);
  const double lr = cfg.lr, r = cfg.min_lr_ratio;
  const int64_t w = cfg.warmup_steps, s = cfg.total_steps;
  if (step <= w) return lr * static_cast<double>(step) / static_cast<double>(w);
  const double p = std::min(
      1.0, static_cast<double>(step - w) / static_cast<double>(std::max<int64_t>(1, s - w)));
  switch (cfg.schedule) {
    case LrSchedule::constant:
      return lr;
    case LrSchedule::linear:
      return lr * (r + (1 - r) * (1 - p));
    case LrSchedule::cosine:
      return lr * (r + (1 - r) * 0.5 * (1 + std::cos(std::numbers::pi * p)));
  }
  return lr;
}

MicroResult micro_step(policy::Policy& policy, const std::vector<const Example*>& examples,
                       double norm, bool backward, Context& ctx) {
  R1_CHECK(!examples.empty(), "[sft] a micro-batch needs at least one example");
  R1_CHECK(norm > 0, "[sft] the step's target count must be > 0, got {}", norm);
  std::vector<std::vector<int32_t>> seqs;
  MicroResult r;
  for (const Example* e : examples) {
    R1_CHECK(e->tokens.size() == e->loss_mask.size() && e->tokens.size() >= 2,
             "[sft] example (line {}) has {} tokens and {} mask entries; it needs >= 2 tokens and "
             "one mask entry per token",
             e->line, e->tokens.size(), e->loss_mask.size());
    seqs.push_back(e->tokens);
    r.tokens += static_cast<int64_t>(e->tokens.size());
  }
  const policy::TokenBatch batch = policy::TokenBatch::from_sequences(seqs, ctx);
  const Tensor targets = policy::shifted_targets(seqs, 1, ctx.host_allocator());
  // w[t] = mask[i + 1] for position t = (example, i); 0 at each example's last token.
  const int64_t T = batch.num_tokens();
  const DType st = policy::stats_dtype(policy.options().dtype);
  std::vector<double> w(static_cast<size_t>(T), 0.0);
  int64_t t = 0;
  for (const Example* e : examples) {
    const size_t n = e->tokens.size();
    for (size_t i = 0; i + 1 < n; ++i) w[static_cast<size_t>(t) + i] = e->loss_mask[i + 1];
    t += static_cast<int64_t>(n);
  }
  policy::ForwardOptions fo;
  fo.targets = targets;
  fo.for_backward = backward;
  policy::ForwardContext f = policy.forward(batch, fo, ctx);
  Tensor lp_host(f.logprob.view().dims(), f.logprob.dtype(), ctx.host_allocator(), "logprob");
  ctx.copy(lp_host, f.logprob);
  for (int64_t i = 0; i < T; ++i) {
    if (w[static_cast<size_t>(i)] == 0) continue;
    const double lp =
        st == DType::f64 ? lp_host.ptr<double>()[i] : static_cast<double>(lp_host.ptr<float>()[i]);
    r.loss_sum -= lp;
    ++r.targets;
  }
  if (backward) {
    Tensor g({T}, st, ctx.host_allocator(), "dlogprob");
    for (int64_t i = 0; i < T; ++i) {
      const double v = -w[static_cast<size_t>(i)] / norm;
      if (st == DType::f64) {
        g.ptr<double>()[i] = v;
      } else {
        g.ptr<float>()[i] = static_cast<float>(v);
      }
    }
    Tensor gd = ctx.empty({T}, st, "dlogprob");
    ctx.copy(gd, g);
    policy.backward(f, gd, ctx);
  }
  return r;
}

StepResult optimizer_step(policy::Policy& policy,
                          const std::vector<std::vector<const Example*>>& micro_batches,
                          const OptimConfig& cfg, Context& ctx) {
  StepResult r;
  int64_t n = 0;
  for (const auto& mb : micro_batches)
    for (const Example* e : mb) n += e->targets() - (e->loss_mask.empty() ? 0 : e->loss_mask[0]);
  R1_CHECK(n > 0, "[sft] the step's examples have no targets");
  policy.zero_grad(ctx);
  double loss_sum = 0;
  for (const auto& mb : micro_batches) {
    const MicroResult m = micro_step(policy, mb, static_cast<double>(n), true, ctx);
    loss_sum += m.loss_sum;
    r.targets += m.targets;
    r.tokens += m.tokens;
  }
  r.loss = loss_sum / static_cast<double>(n);
  const TensorView grads = policy.grads().flat();
  r.grad_norm = cfg.max_grad_norm > 0 ? kernels::clip_grad_norm(grads, cfg.max_grad_norm, ctx)
                                      : kernels::grad_global_norm(grads, ctx);
  r.lr = learning_rate(cfg, policy.step() + 1);
  if (!std::isfinite(r.grad_norm)) {
    r.skipped = true;
    return r;
  }
  kernels::AdamWParams hp;
  hp.lr = r.lr;
  hp.beta1 = cfg.beta1;
  hp.beta2 = cfg.beta2;
  hp.eps = cfg.eps;
  hp.weight_decay = cfg.weight_decay;
  policy.adamw_step(hp, ctx);
  return r;
}

}  // namespace r1kit::sft

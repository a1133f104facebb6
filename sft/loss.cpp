// The SFT objective, LR schedules and the optimizer step (sft/loss.h).
#include "sft/loss.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/host_values.h"
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

namespace {

// Targets of an example for MTP depth k (k = 0: the main head): tokens i >= k + 1 with loss.
int64_t depth_targets(const Example& e, int64_t k) {
  int64_t n = 0;
  for (size_t i = static_cast<size_t>(k) + 1; i < e.loss_mask.size(); ++i) n += e.loss_mask[i];
  return n;
}

}  // namespace

StepNorms step_norms(const std::vector<std::vector<const Example*>>& micro_batches,
                     const LossOptions& opts) {
  StepNorms n;
  n.mtp_targets.assign(static_cast<size_t>(opts.mtp_depths), 0.0);
  for (const auto& mb : micro_batches)
    for (const Example* e : mb) {
      n.targets += static_cast<double>(depth_targets(*e, 0));
      for (int64_t k = 1; k <= opts.mtp_depths; ++k)
        n.mtp_targets[static_cast<size_t>(k - 1)] += static_cast<double>(depth_targets(*e, k));
    }
  return n;
}

MicroResult micro_step(policy::Policy& policy, const std::vector<const Example*>& examples,
                       double norm, bool backward, Context& ctx) {
  StepNorms n;
  n.targets = norm;
  return micro_step(policy, examples, n, LossOptions{}, backward, ctx);
}

MicroResult micro_step(policy::Policy& policy, const std::vector<const Example*>& examples,
                       const StepNorms& norms, const LossOptions& opts, bool backward,
                       Context& ctx) {
  R1_CHECK(!examples.empty(), "[sft] a micro-batch needs at least one example");
  R1_CHECK(norms.targets > 0, "[sft] the step's target count must be > 0, got {}", norms.targets);
  const int64_t D = opts.mtp_depths;
  R1_CHECK(D >= 0 && D <= policy.config().num_mtp_modules(),
           "[sft] {} MTP depths asked for; the model has {} MTP modules", D,
           policy.config().num_mtp_modules());
  R1_CHECK(static_cast<int64_t>(norms.mtp_targets.size()) >= D,
           "[sft] {} MTP normalisers for {} depths", norms.mtp_targets.size(), D);
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
  const int64_t T = batch.num_tokens();
  const DType st = policy::stats_dtype(policy.options().dtype);
  // w[t] = mask[i + 1] for position t = (example, i); 0 at each example's last token. Depth k:
  // wk[t] = mask[i + k + 1] (0 past the end).
  std::vector<double> w(static_cast<size_t>(T), 0.0);
  std::vector<std::vector<double>> wk(static_cast<size_t>(D), std::vector<double>(w.size(), 0.0));
  {
    int64_t t = 0;
    for (const Example* e : examples) {
      const size_t n = e->tokens.size();
      for (size_t i = 0; i + 1 < n; ++i) {
        w[static_cast<size_t>(t) + i] = e->loss_mask[i + 1];
        for (int64_t k = 1; k <= D; ++k)
          if (i + static_cast<size_t>(k) + 1 < n)
            wk[static_cast<size_t>(k - 1)][static_cast<size_t>(t) + i] =
                e->loss_mask[i + static_cast<size_t>(k) + 1];
      }
      t += static_cast<int64_t>(n);
    }
  }
  std::vector<Tensor> mtp_in, mtp_tg;
  policy::ForwardOptions fo;
  fo.targets = targets;
  fo.for_backward = backward;
  fo.topk = opts.accuracy ? 1 : 0;
  for (int64_t k = 1; k <= D; ++k) {
    mtp_in.push_back(policy::shifted_targets(seqs, k, ctx.host_allocator()));
    mtp_tg.push_back(policy::shifted_targets(seqs, k + 1, ctx.host_allocator()));
    fo.mtp_inputs.push_back(mtp_in.back());
    fo.mtp_targets.push_back(mtp_tg.back());
  }

  // Distillation: the teacher's top-k per position (K columns; rows of non-targets stay zero).
  const KdConfig* kd = opts.kd;
  int64_t K = 0;
  Tensor kd_ids, kd_lp;  // (T, K) host: i32 ids, f32 teacher log-probs
  if (kd) {
    if (opts.teacher) {
      K = kd->topk;
      policy::ForwardOptions tf;
      tf.for_backward = false;
      tf.topk = K;
      policy::ForwardContext tfwd = opts.teacher->forward(batch, tf, ctx);
      kd_ids = host_copy(tfwd.topk_idx, ctx);
      const Tensor lp = host_copy(tfwd.topk_logprob, ctx);
      kd_lp = Tensor({T, K}, DType::f32, ctx.host_allocator(), "teacher_logprob");
      for (int64_t i = 0; i < T * K; ++i)
        kd_lp.ptr<float>()[i] = static_cast<float>(host_value(lp, i));
    } else {
      for (const Example* e : examples) {
        R1_CHECK(e->teacher_k > 0 && e->teacher_ids.size() ==
                                         static_cast<size_t>(depth_targets(*e, 0) * e->teacher_k),
                 "[sft] distillation without a teacher model needs every example to carry its "
                 "teacher's top-k; the example at line {} has {} entries for {} targets",
                 e->line, e->teacher_ids.size(), depth_targets(*e, 0));
        R1_CHECK(K == 0 || e->teacher_k == K,
                 "[sft] the examples of one micro-batch store different top-k sizes ({} and {}, "
                 "line {})",
                 K, e->teacher_k, e->line);
        K = e->teacher_k;
      }
      kd_ids = Tensor({T, K}, DType::i32, ctx.host_allocator(), "teacher_ids");
      kd_lp = Tensor({T, K}, DType::f32, ctx.host_allocator(), "teacher_logprob");
      std::fill_n(kd_ids.ptr<int32_t>(), T * K, 0);
      std::fill_n(kd_lp.ptr<float>(), T * K, 0.0f);
      int64_t t = 0;
      for (const Example* e : examples) {
        int64_t row = 0;
        for (size_t i = 1; i < e->tokens.size(); ++i) {
          if (!e->loss_mask[i]) continue;
          const int64_t pos = t + static_cast<int64_t>(i) - 1;
          std::copy_n(e->teacher_ids.data() + row * K, K, kd_ids.ptr<int32_t>() + pos * K);
          std::copy_n(e->teacher_logprobs.data() + row * K, K, kd_lp.ptr<float>() + pos * K);
          ++row;
        }
        t += static_cast<int64_t>(e->tokens.size());
      }
    }
    const int64_t V = policy.config().vocab_size;
    for (int64_t i = 0; i < T * K; ++i)
      R1_CHECK(kd_ids.ptr<int32_t>()[i] >= 0 && kd_ids.ptr<int32_t>()[i] < V,
               "[sft] a teacher top-k token id {} is outside the student's vocabulary [0, {})",
               kd_ids.ptr<int32_t>()[i], V);
    fo.multi_targets = kd_ids;
  }

  policy::ForwardContext f = policy.forward(batch, fo, ctx);
  const Tensor lp_host = host_copy(f.logprob, ctx);
  Tensor top_host;
  if (opts.accuracy) top_host = host_copy(f.topk_idx, ctx);
  for (int64_t i = 0; i < T; ++i) {
    if (w[static_cast<size_t>(i)] == 0) continue;
    r.loss_sum -= host_value(lp_host, i);
    ++r.targets;
    if (opts.accuracy && top_host.ptr<int32_t>()[i] == targets.ptr<int32_t>()[i]) ++r.correct;
  }
  const double alpha = kd ? kd->weight : 0.0;
  std::vector<double> dmulti;
  if (kd) {
    const Tensor slp = host_copy(f.multi_logprob, ctx);
    dmulti.assign(static_cast<size_t>(T * K), 0.0);
    std::vector<double> s(static_cast<size_t>(K)), ds(static_cast<size_t>(K));
    for (int64_t i = 0; i < T; ++i) {
      if (w[static_cast<size_t>(i)] == 0) continue;
      for (int64_t j = 0; j < K; ++j) s[static_cast<size_t>(j)] = host_value(slp, i * K + j);
      r.kd_sum += kd_position_loss(kd_lp.ptr<float>() + i * K, s.data(), K, *kd, ds.data());
      for (int64_t j = 0; j < K; ++j)
        dmulti[static_cast<size_t>(i * K + j)] = alpha * ds[static_cast<size_t>(j)] / norms.targets;
    }
  }
  r.mtp_loss_sum.assign(static_cast<size_t>(D), 0.0);
  r.mtp_targets.assign(static_cast<size_t>(D), 0);
  for (int64_t k = 1; k <= D; ++k) {
    const Tensor lk = host_copy(f.mtp[static_cast<size_t>(k - 1)].logprob, ctx);
    for (int64_t i = 0; i < T; ++i) {
      if (wk[static_cast<size_t>(k - 1)][static_cast<size_t>(i)] == 0) continue;
      r.mtp_loss_sum[static_cast<size_t>(k - 1)] -= host_value(lk, i);
      ++r.mtp_targets[static_cast<size_t>(k - 1)];
    }
  }
  if (backward) {
    std::vector<double> g(static_cast<size_t>(T));
    for (int64_t i = 0; i < T; ++i)
      g[static_cast<size_t>(i)] = -(1 - alpha) * w[static_cast<size_t>(i)] / norms.targets;
    const Tensor gd = upload_values(g, {T}, st, ctx);
    policy::HeadGrads hg;
    hg.dlogprob = gd;
    std::vector<Tensor> gk;
    for (int64_t k = 1; k <= D; ++k) {
      const double nk = norms.mtp_targets[static_cast<size_t>(k - 1)];
      for (int64_t i = 0; i < T; ++i)
        g[static_cast<size_t>(i)] =
            nk > 0 ? -wk[static_cast<size_t>(k - 1)][static_cast<size_t>(i)] / nk : 0.0;
      gk.push_back(upload_values(g, {T}, st, ctx));
      hg.mtp_dlogprob.push_back(gk.back());
    }
    Tensor gm;
    if (kd) {
      gm = upload_values(dmulti, {T, K}, st, ctx);
      hg.dmulti_logprob = gm;
    }
    policy.backward(f, hg, ctx);
  }
  return r;
}

StepResult optimizer_step(policy::Policy& policy,
                          const std::vector<std::vector<const Example*>>& micro_batches,
                          const OptimConfig& cfg, Context& ctx, const LossOptions& opts) {
  StepResult r;
  const StepNorms norms = step_norms(micro_batches, opts);
  R1_CHECK(norms.targets > 0, "[sft] the step's examples have no targets");
  policy.zero_grad(ctx);
  double loss_sum = 0, kd_sum = 0;
  std::vector<double> mtp_sum(static_cast<size_t>(opts.mtp_depths), 0.0);
  for (const auto& mb : micro_batches) {
    const MicroResult m = micro_step(policy, mb, norms, opts, true, ctx);
    loss_sum += m.loss_sum;
    kd_sum += m.kd_sum;
    for (size_t k = 0; k < mtp_sum.size(); ++k) mtp_sum[k] += m.mtp_loss_sum[k];
    r.targets += m.targets;
    r.tokens += m.tokens;
  }
  r.nll = loss_sum / norms.targets;
  r.kd = kd_sum / norms.targets;
  r.loss = opts.kd ? (1 - opts.kd->weight) * r.nll + opts.kd->weight * r.kd : r.nll;
  for (size_t k = 0; k < mtp_sum.size(); ++k)
    r.mtp_loss.push_back(norms.mtp_targets[k] > 0 ? mtp_sum[k] / norms.mtp_targets[k] : 0.0);
  const UpdateInfo u = apply_update(policy, cfg, ctx);
  r.grad_norm = u.grad_norm;
  r.lr = u.lr;
  r.skipped = u.skipped;
  return r;
}

UpdateInfo apply_update(policy::Policy& policy, const OptimConfig& cfg, Context& ctx) {
  UpdateInfo r;
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

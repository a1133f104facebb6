// The GRPO objective through the policy (grpo/loss.h).
#include "grpo/loss.h"

#include <algorithm>

#include "core/error.h"
#include "core/host_values.h"
#include "policy/batch.h"

namespace r1kit::grpo {

void Sample::validate(std::string_view where) const {
  const int64_t n = completion_len();
  R1_CHECK(prompt_len >= 1 && n >= 1, "{}: a sample needs a prompt and a completion ({} and {})",
           where, prompt_len, n);
  auto ok = [&](size_t s, bool optional) {
    return s == static_cast<size_t>(n) || (optional && s == 0);
  };
  R1_CHECK(ok(mask.size(), false) && ok(old_logprob.size(), true) && ok(advantage.size(), false) &&
               ok(rollout_logprob.size(), true) && ok(ref_logprob.size(), true),
           "{}: per-token vectors must have one entry per completion token ({}): mask {}, "
           "old_logprob {}, advantage {}, rollout_logprob {}, ref_logprob {}",
           where, n, mask.size(), old_logprob.size(), advantage.size(), rollout_logprob.size(),
           ref_logprob.size());
}

LossNorms loss_norms(const std::vector<const Sample*>& samples, const LossConfig& cfg,
                     double default_constant) {
  LossNorms n;
  for (const Sample* s : samples) {
    double len = 0;
    for (const uint8_t m : s->mask) len += m;
    n.tokens += len;
    if (len > 0) n.sequences += 1;
  }
  n.constant = cfg.norm_constant > 0 ? cfg.norm_constant : default_constant;
  return n;
}

namespace {

struct Packed {
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int64_t> offset;  // first token of each sample in the packed batch
  std::vector<Tensor> replay;   // per layer (T, K), concatenated; empty without replay
  std::vector<TensorView> replay_views;
};

Packed pack(const std::vector<const Sample*>& samples, Context& ctx) {
  Packed p;
  int64_t T = 0;
  for (const Sample* s : samples) {
    p.offset.push_back(T);
    p.seqs.push_back(s->tokens);
    T += static_cast<int64_t>(s->tokens.size());
  }
  const bool replay = !samples.empty() && !samples[0]->replay.empty();
  for (const Sample* s : samples)
    R1_CHECK(s->replay.empty() != replay,
             "[grpo] the samples of one micro-batch must all carry router replay or none");
  if (!replay) return p;
  const size_t L = samples[0]->replay.size();
  for (size_t l = 0; l < L; ++l) {
    if (!samples[0]->replay[l].defined()) {
      p.replay.emplace_back();
      p.replay_views.emplace_back();
      continue;
    }
    const int64_t K = samples[0]->replay[l].size(1);
    Tensor t({T, K}, DType::i32, ctx.host_allocator(), "replay_topk_idx");
    for (size_t i = 0; i < samples.size(); ++i) {
      const Sample& s = *samples[i];
      R1_CHECK(s.replay.size() == L && s.replay[l].defined() &&
                   s.replay[l].size(0) == static_cast<int64_t>(s.tokens.size()) &&
                   s.replay[l].size(1) == K,
               "[grpo] sample {}'s router replay does not match its tokens ({} rows for {})", i,
               s.replay.size() == L && s.replay[l].defined() ? s.replay[l].size(0) : 0,
               s.tokens.size());
      std::copy_n(s.replay[l].ptr<int32_t>(), s.tokens.size() * static_cast<size_t>(K),
                  t.ptr<int32_t>() + p.offset[i] * K);
    }
    p.replay.push_back(std::move(t));
    p.replay_views.push_back(p.replay.back());
  }
  return p;
}

}  // namespace

std::vector<std::vector<double>> completion_logprobs(policy::Policy& policy,
                                                     const std::vector<const Sample*>& samples,
                                                     double temperature, int64_t max_tokens,
                                                     Context& ctx) {
  std::vector<std::vector<double>> out(samples.size());
  for (size_t b = 0; b < samples.size();) {
    std::vector<const Sample*> mb;
    int64_t tokens = 0;
    const size_t first = b;
    while (b < samples.size() &&
           (mb.empty() || tokens + static_cast<int64_t>(samples[b]->tokens.size()) <= max_tokens)) {
      tokens += static_cast<int64_t>(samples[b]->tokens.size());
      mb.push_back(samples[b++]);
    }
    Packed p = pack(mb, ctx);
    const policy::TokenBatch batch = policy::TokenBatch::from_sequences(p.seqs, ctx);
    const Tensor targets = policy::shifted_targets(p.seqs, 1, ctx.host_allocator());
    policy::ForwardOptions fo;
    fo.targets = targets;
    fo.temperature = temperature;
    fo.for_backward = false;
    fo.replay_topk_idx = p.replay_views;
    policy::ForwardContext f = policy.forward(batch, fo, ctx);
    const Tensor lp = host_copy(f.logprob, ctx);
    for (size_t i = 0; i < mb.size(); ++i) {
      const Sample& s = *mb[i];
      std::vector<double>& o = out[first + i];
      const int64_t base = p.offset[i] + s.prompt_len - 1;
      for (int64_t t = 0; t < s.completion_len(); ++t) o.push_back(host_value(lp, base + t));
    }
  }
  return out;
}

LossStats micro_step(policy::Policy& policy, const std::vector<const Sample*>& samples,
                     const LossConfig& cfg, const KlConfig& kl, const LossNorms& norms,
                     double temperature, bool backward, Context& ctx) {
  R1_CHECK(!samples.empty(), "[grpo] a micro-batch needs at least one sample");
  for (size_t i = 0; i < samples.size(); ++i)
    samples[i]->validate(fmt::format("[grpo] micro-batch sample {}", i));
  Packed p = pack(samples, ctx);
  const policy::TokenBatch batch = policy::TokenBatch::from_sequences(p.seqs, ctx);
  const Tensor targets = policy::shifted_targets(p.seqs, 1, ctx.host_allocator());
  const int64_t T = batch.num_tokens();
  policy::ForwardOptions fo;
  fo.targets = targets;
  fo.temperature = temperature;
  fo.entropy = true;
  fo.for_backward = backward;
  fo.replay_topk_idx = p.replay_views;
  policy::ForwardContext f = policy.forward(batch, fo, ctx);
  const Tensor lp = host_copy(f.logprob, ctx);
  const Tensor ent = host_copy(f.entropy, ctx);
  std::vector<double> g(static_cast<size_t>(T), 0.0), gh(static_cast<size_t>(T), 0.0);
  LossStats total;
  std::vector<double> l, h, dl, dh;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = *samples[i];
    const int64_t n = s.completion_len();
    const int64_t base = p.offset[i] + s.prompt_len - 1;
    l.resize(static_cast<size_t>(n));
    h.resize(static_cast<size_t>(n));
    dl.resize(static_cast<size_t>(n));
    dh.resize(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
      l[static_cast<size_t>(t)] = host_value(lp, base + t);
      h[static_cast<size_t>(t)] = host_value(ent, base + t);
    }
    SequenceTerms st;
    st.n = n;
    st.logprob = l.data();
    // No old log-probs: the update's own, detached (one update per batch: ratio 1).
    st.old_logprob = s.old_logprob.empty() ? l.data() : s.old_logprob.data();
    st.ref_logprob = s.ref_logprob.empty() ? nullptr : s.ref_logprob.data();
    st.rollout_logprob = s.rollout_logprob.empty() ? nullptr : s.rollout_logprob.data();
    st.entropy = h.data();
    st.advantage = s.advantage.data();
    st.mask = s.mask.data();
    total.add(sequence_loss(st, cfg, kl, norms, dl.data(), dh.data()));
    for (int64_t t = 0; t < n; ++t) {
      g[static_cast<size_t>(base + t)] = dl[static_cast<size_t>(t)];
      gh[static_cast<size_t>(base + t)] = dh[static_cast<size_t>(t)];
    }
  }
  if (backward) {
    const DType st = policy::stats_dtype(policy.options().dtype);
    const Tensor gd = upload_values(g, {T}, st, ctx);
    Tensor ghd;
    if (cfg.entropy_coef != 0) ghd = upload_values(gh, {T}, st, ctx);
    policy.backward(f, gd, ctx, ghd);
  }
  return total;
}

}  // namespace r1kit::grpo

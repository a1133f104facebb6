// The GRPO stage (grpo/trainer.h).
#include "grpo/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "policy/chat_template.h"
#include "policy/policy.h"
#include "policy/tokenizer.h"
#include "rewards/compose.h"
#include "rollout/prompts.h"
#include "sft/checkpoint.h"
#include "sft/data_order.h"
#include "sft/stage.h"

namespace r1kit::grpo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

const std::vector<std::pair<std::string, Objective>> kObjectives = {
    {"grpo", Objective::grpo}, {"on_policy_distill", Objective::on_policy_distill}};
const std::vector<std::pair<std::string, OldLogprobs>> kOld = {
    {"recompute", OldLogprobs::recompute}, {"rollout", OldLogprobs::rollout}};

template <typename E>
std::string keyword(const std::vector<std::pair<std::string, E>>& names, E v) {
  for (const auto& [n, e] : names)
    if (e == v) return n;
  return names.front().first;
}

// The fields a resumed run must share with the run that wrote the checkpoint.
Json trajectory(const GrpoConfig& c, int64_t prompts) {
  Json j = c.to_json();
  for (const char* k : {"output", "save_every", "keep_checkpoints", "log_every", "log_samples",
                        "device", "threads", "max_steps", "engine"})
    j.erase(k);
  j["prompts"] = prompts;
  return j;
}

using rollout::PromptRow;

// One scored completion of a group.
struct Scored {
  Sample sample;
  double reward = 0;
  std::map<std::string, double> components;
  bool keep = true;
  bool truncated = false;
  int64_t group = 0;
  int64_t length = 0;
  std::string text;                // the completion (for samples.jsonl)
  const PromptRow* row = nullptr;  // its prompt
};

struct Group {
  std::vector<Scored> members;
  bool signal() const {
    const Scored* first = nullptr;
    for (const Scored& s : members) {
      if (!s.keep) continue;
      if (!first) {
        first = &s;
      } else if (s.reward != first->reward) {
        return true;
      }
    }
    return false;
  }
};

// Up to `count` traces of this step, one member of each group in turn (member 0 of every group,
// then member 1, ...), so the log shows different prompts first.
void write_samples(JsonlWriter& w, const std::vector<Group>& groups, int64_t step, int64_t count) {
  size_t most = 0;
  for (const Group& g : groups) most = std::max(most, g.members.size());
  int64_t written = 0;
  for (size_t m = 0; m < most && written < count; ++m)
    for (const Group& g : groups) {
      if (m >= g.members.size() || written >= count) continue;
      const Scored& s = g.members[m];
      Json comps = Json::object();
      for (const auto& [k, v] : s.components) comps[k] = v;
      w.write(Json{{"step", step},
                   {"group", s.group},
                   {"prompt", s.row ? s.row->question : std::string()},
                   {"completion", s.text},
                   {"reward", s.reward},
                   {"components", comps},
                   {"in_loss", s.keep},
                   {"truncated", s.truncated},
                   {"length", s.length}});
      ++written;
    }
}

struct Mean {
  double sum = 0, sq = 0, n = 0, max = -1e300;
  void add(double v) {
    sum += v;
    sq += v * v;
    n += 1;
    max = std::max(max, v);
  }
  double mean() const { return n > 0 ? sum / n : 0.0; }
  double std() const {
    if (n < 2) return 0.0;
    const double m = mean();
    return std::sqrt(std::max(0.0, (sq - n * m * m) / (n - 1)));
  }
};

}  // namespace

GrpoConfig GrpoConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j,
                      {"objective",
                       "model",
                       "tokenizer",
                       "chat_template",
                       "prompt_template",
                       "system_prompt",
                       "train",
                       "prompt_field",
                       "max_prompt_tokens",
                       "rewards",
                       "sampling",
                       "group_size",
                       "prompts_per_step",
                       "max_steps",
                       "epochs",
                       "ppo_epochs",
                       "mini_batches",
                       "micro_batch_tokens",
                       "shuffle",
                       "advantage",
                       "loss",
                       "kl",
                       "old_logprobs",
                       "router_replay",
                       "dynamic_sampling",
                       "max_rounds",
                       "overlong_filter",
                       "teacher",
                       "optim",
                       "moe",
                       "engine",
                       "output",
                       "save_every",
                       "keep_checkpoints",
                       "log_every",
                       "log_samples",
                       "seed",
                       "device",
                       "dtype",
                       "threads",
                       "recompute"},
                      where);
  GrpoConfig c;
  c.objective = get_enum(j, "objective", where, kObjectives, c.objective);
  c.model = get_required<std::string>(j, "model", where);
  c.tokenizer = get_optional<std::string>(j, "tokenizer", where, "");
  c.chat_template = get_optional<std::string>(j, "chat_template", where, "");
  c.prompt_template = get_optional<std::string>(j, "prompt_template", where, "");
  R1_CHECK(c.chat_template.empty() || c.prompt_template.empty(),
           "{}: give 'chat_template' (a built-in name) or 'prompt_template' (a pattern), not both",
           where);
  if (!c.prompt_template.empty()) policy::ChatTemplate::from_pattern(c.prompt_template);
  c.system_prompt = get_optional<std::string>(j, "system_prompt", where, "");
  c.train = get_required<std::string>(j, "train", where);
  c.prompt_field = get_optional<std::string>(j, "prompt_field", where, "");
  c.max_prompt_tokens = get_optional<int64_t>(j, "max_prompt_tokens", where, c.max_prompt_tokens);
  R1_CHECK(c.max_prompt_tokens >= 1, "{}: 'max_prompt_tokens' must be >= 1", where);
  if (c.objective == Objective::grpo) {
    R1_CHECK(j.contains("rewards"),
             "{}: 'rewards' is required for objective grpo (a reward config object or a path)",
             where);
  }
  if (j.contains("rewards")) {
    c.rewards = j.at("rewards");
    R1_CHECK(c.rewards.is_object() || c.rewards.is_string(),
             "{}: 'rewards' must be a reward config object or the path of one", where);
    // Built now so that a bad reward config fails before any model is loaded.
    if (c.rewards.is_object())
      rewards::ComposedReward::from_json(c.rewards, json_where(where, "rewards"));
    else
      rewards::load_reward_config(c.rewards.get<std::string>());
  }
  if (j.contains("sampling")) {
    const Json& s = j.at("sampling");
    R1_CHECK(!s.is_object() || !s.contains("n"),
             "{}: the group size is 'group_size', not sampling.n", where);
    c.sampling = rollout::sampling_params_from_json(s, json_where(where, "sampling"));
  }
  c.group_size = get_optional<int64_t>(j, "group_size", where, c.group_size);
  R1_CHECK(c.group_size >= 1, "{}: 'group_size' must be >= 1", where);
  c.sampling.n = c.group_size;
  c.sampling.validate(json_where(where, "sampling"));
  R1_CHECK(c.sampling.temperature > 0,
           "{}: sampling.temperature must be > 0 for RL (the log-probs are of softmax(z/τ))",
           where);
  c.prompts_per_step = get_optional<int64_t>(j, "prompts_per_step", where, c.prompts_per_step);
  c.max_steps = get_optional<int64_t>(j, "max_steps", where, c.max_steps);
  c.epochs = get_optional<int64_t>(j, "epochs", where, c.epochs);
  c.ppo_epochs = get_optional<int64_t>(j, "ppo_epochs", where, c.ppo_epochs);
  c.mini_batches = get_optional<int64_t>(j, "mini_batches", where, c.mini_batches);
  c.micro_batch_tokens =
      get_optional<int64_t>(j, "micro_batch_tokens", where, c.micro_batch_tokens);
  R1_CHECK(c.prompts_per_step >= 1 && c.epochs >= 1 && c.ppo_epochs >= 1 && c.mini_batches >= 1 &&
               c.max_steps >= 0 && c.micro_batch_tokens >= 2,
           "{}: prompts_per_step, epochs, ppo_epochs, mini_batches must be >= 1, max_steps >= 0, "
           "micro_batch_tokens >= 2",
           where);
  c.shuffle = get_optional<bool>(j, "shuffle", where, c.shuffle);
  if (j.contains("advantage"))
    c.advantage = AdvantageConfig::from_json(j.at("advantage"), json_where(where, "advantage"));
  if (j.contains("loss")) c.loss = LossConfig::from_json(j.at("loss"), json_where(where, "loss"));
  if (j.contains("kl")) {
    Json k = j.at("kl");
    require_object(k, json_where(where, "kl"));
    c.reference = get_optional<std::string>(k, "reference", json_where(where, "kl"), "");
    k.erase("reference");
    c.kl = KlConfig::from_json(k, json_where(where, "kl"));
  }
  c.old_logprobs = get_enum(j, "old_logprobs", where, kOld, c.old_logprobs);
  c.router_replay = get_optional<bool>(j, "router_replay", where, c.router_replay);
  c.dynamic_sampling = get_optional<bool>(j, "dynamic_sampling", where, c.dynamic_sampling);
  c.max_rounds = get_optional<int64_t>(j, "max_rounds", where, c.max_rounds);
  R1_CHECK(c.max_rounds >= 1, "{}: 'max_rounds' must be >= 1", where);
  c.overlong_filter = get_optional<bool>(j, "overlong_filter", where, c.overlong_filter);
  c.teacher = get_optional<std::string>(j, "teacher", where, "");
  R1_CHECK(c.objective != Objective::on_policy_distill || !c.teacher.empty(),
           "{}: objective on_policy_distill needs 'teacher' (a model directory)", where);
  if (j.contains("optim"))
    c.optim = sft::optim_from_json(j.at("optim"), json_where(where, "optim"));
  if (j.contains("moe")) {
    const Json& m = j.at("moe");
    const std::string w = json_where(where, "moe");
    require_object(m, w);
    reject_unknown_keys(m, {"bias_update_rate", "balance_loss_alpha"}, w);
    c.bias_update_rate = get_optional<double>(m, "bias_update_rate", w, c.bias_update_rate);
    c.balance_loss_alpha = get_optional<double>(m, "balance_loss_alpha", w, c.balance_loss_alpha);
    R1_CHECK(c.bias_update_rate >= 0 && c.balance_loss_alpha >= 0,
             "{}: 'bias_update_rate' and 'balance_loss_alpha' must be >= 0", w);
  }
  if (j.contains("engine"))
    c.engine = rollout::EngineOptions::from_json(j.at("engine"), json_where(where, "engine"));
  c.output = get_required<std::string>(j, "output", where);
  R1_CHECK(!c.output.empty(), "{}: 'output' must name a directory", where);
  c.save_every = get_optional<int64_t>(j, "save_every", where, c.save_every);
  c.keep_checkpoints = get_optional<int64_t>(j, "keep_checkpoints", where, c.keep_checkpoints);
  c.log_every = get_optional<int64_t>(j, "log_every", where, c.log_every);
  c.log_samples = get_optional<int64_t>(j, "log_samples", where, c.log_samples);
  R1_CHECK(c.log_samples >= 0, "{}: 'log_samples' must be >= 0", where);
  R1_CHECK(c.save_every >= 0 && c.keep_checkpoints >= 1 && c.log_every >= 1,
           "{}: 'save_every' must be >= 0, 'keep_checkpoints' and 'log_every' >= 1", where);
  c.seed = get_optional<uint64_t>(j, "seed", where, c.seed);
  c.sampling.seed = c.seed;
  c.device = get_optional<std::string>(j, "device", where, c.device);
  c.dtype = get_optional<std::string>(j, "dtype", where, c.dtype);
  sft::check_device_and_dtype(c.device, c.dtype, where);
  c.threads = get_optional<int32_t>(j, "threads", where, c.threads);
  c.recompute = get_optional<bool>(j, "recompute", where, c.recompute);
  return c;
}

Json GrpoConfig::to_json() const {
  Json s = rollout::to_json(sampling);
  s.erase("n");
  s.erase("seed");
  Json kl_j = kl.to_json();
  kl_j["reference"] = reference;
  return Json{
      {"objective", keyword(kObjectives, objective)},
      {"model", model},
      {"tokenizer", tokenizer},
      {"chat_template", chat_template},
      {"prompt_template", prompt_template},
      {"system_prompt", system_prompt},
      {"train", train},
      {"prompt_field", prompt_field},
      {"max_prompt_tokens", max_prompt_tokens},
      {"rewards", rewards},
      {"sampling", s},
      {"group_size", group_size},
      {"prompts_per_step", prompts_per_step},
      {"max_steps", max_steps},
      {"epochs", epochs},
      {"ppo_epochs", ppo_epochs},
      {"mini_batches", mini_batches},
      {"micro_batch_tokens", micro_batch_tokens},
      {"shuffle", shuffle},
      {"advantage", advantage.to_json()},
      {"loss", loss.to_json()},
      {"kl", kl_j},
      {"old_logprobs", keyword(kOld, old_logprobs)},
      {"router_replay", router_replay},
      {"dynamic_sampling", dynamic_sampling},
      {"max_rounds", max_rounds},
      {"overlong_filter", overlong_filter},
      {"teacher", teacher},
      {"optim", sft::optim_to_json(optim)},
      {"moe", {{"bias_update_rate", bias_update_rate}, {"balance_loss_alpha", balance_loss_alpha}}},
      {"engine", engine.to_json()},
      {"output", output},
      {"save_every", save_every},
      {"keep_checkpoints", keep_checkpoints},
      {"log_every", log_every},
      {"log_samples", log_samples},
      {"seed", seed},
      {"device", device},
      {"dtype", dtype},
      {"threads", threads},
      {"recompute", recompute}};
}

UpdateResult optimizer_step(policy::Policy& policy,
                            const std::vector<std::vector<const Sample*>>& micro_batches,
                            const LossConfig& loss, const KlConfig& kl, double temperature,
                            double default_constant, const sft::OptimConfig& optim,
                            double bias_update_rate, Context& ctx) {
  UpdateResult r;
  std::vector<const Sample*> all;
  for (const auto& mb : micro_batches) all.insert(all.end(), mb.begin(), mb.end());
  const LossNorms norms = loss_norms(all, loss, default_constant);
  policy.zero_grad(ctx);
  for (const auto& mb : micro_batches) {
    if (mb.empty()) continue;
    r.stats.add(micro_step(policy, mb, loss, kl, norms, temperature, true, ctx));
  }
  const sft::UpdateInfo u = sft::apply_update(policy, optim, ctx);
  r.grad_norm = u.grad_norm;
  r.lr = u.lr;
  r.skipped = u.skipped;
  if (r.skipped) return r;
  if (policy.config().is_moe()) policy.update_expert_bias(bias_update_rate, ctx);
  return r;
}

GrpoResult run_grpo(const GrpoConfig& cfg_in, const StepCallback& on_step) {
  GrpoConfig cfg = cfg_in;
  const bool distill = cfg.objective == Objective::on_policy_distill;
  auto ctxp = sft::make_context(cfg.device, cfg.threads, cfg.seed);
  Context& ctx = *ctxp;
  const std::string tok_dir = cfg.tokenizer.empty() ? cfg.model : cfg.tokenizer;

  policy::PolicyOptions po;
  po.dtype = sft::working_dtype(cfg.dtype, ctx);
  po.recompute = cfg.recompute;
  po.balance_loss_alpha = cfg.balance_loss_alpha;
  const fs::path out(cfg.output);
  const std::string ck_root = (out / "checkpoints").string();
  const std::string metrics_path = (out / "metrics.jsonl").string();
  const std::string samples_path = (out / "samples.jsonl").string();
  const auto existing = sft::list_checkpoints(ck_root);
  const std::string resume_dir = existing.empty() ? std::string() : existing.back().second;
  policy::Policy policy =
      policy::Policy::load(resume_dir.empty() ? cfg.model : resume_dir, ctx, po);
  const policy::ModelConfig& mc = policy.config();
  const int64_t vocab = mc.vocab_size;

  // Tokenizer, prompts, rewards.
  const std::unique_ptr<policy::Tokenizer> tok = policy::Tokenizer::load(tok_dir);
  const policy::ChatTemplate chat =
      cfg.prompt_template.empty()
          ? policy::ChatTemplate::for_model(tok_dir, cfg.chat_template)
          : policy::ChatTemplate::from_pattern(cfg.prompt_template,
                                               policy::read_chat_special_tokens(tok_dir));
  GrpoResult result;
  rollout::PromptSetOptions pso;
  pso.path = cfg.train;
  pso.field = cfg.prompt_field;
  pso.system_prompt = cfg.system_prompt;
  pso.max_tokens = cfg.max_prompt_tokens;
  pso.vocab = vocab;
  pso.label = "train";
  rollout::PromptSet prompt_set = rollout::load_prompt_set(pso, *tok, chat);
  const std::vector<PromptRow> prompts = std::move(prompt_set.rows);
  result.skipped_prompts = prompt_set.skipped;
  result.prompts = static_cast<int64_t>(prompts.size());
  logger()->info("[grpo] {}: {} prompts ({} rows skipped)", cfg.train, prompts.size(),
                 result.skipped_prompts);
  std::unique_ptr<rewards::ComposedReward> reward;
  if (cfg.rewards.is_object())
    reward = rewards::ComposedReward::from_json(cfg.rewards, "rewards");
  else if (cfg.rewards.is_string())
    reward = rewards::load_reward_config(cfg.rewards.get<std::string>());

  // Reference and teacher (frozen, forward only).
  std::optional<policy::Policy> ref, teacher;
  policy::PolicyOptions frozen;
  frozen.dtype = po.dtype;
  if (cfg.kl.active()) {
    const std::string dir = cfg.reference.empty() ? cfg.model : cfg.reference;
    ref.emplace(policy::Policy::load(dir, ctx, frozen));
    R1_CHECK(ref->config().vocab_size == vocab,
             "the reference model {} has vocabulary {}, the policy {}", dir,
             ref->config().vocab_size, vocab);
  }
  if (distill) {
    teacher.emplace(policy::Policy::load(cfg.teacher, ctx, frozen));
    R1_CHECK(teacher->config().vocab_size == vocab,
             "on-policy distillation needs the teacher ({}, vocabulary {}) and the student ({}, "
             "vocabulary {}) to share a tokenizer",
             cfg.teacher, teacher->config().vocab_size, cfg.model, vocab);
    sft::check_same_tokenizer(*tok, *policy::Tokenizer::load(cfg.teacher), tok_dir, cfg.teacher);
  }
  const bool replay = cfg.router_replay && mc.is_moe();

  // Schedule: optimizer steps = steps × ppo_epochs × mini_batches.
  const int64_t N = static_cast<int64_t>(prompts.size());
  const int64_t steps_per_epoch = (N + cfg.prompts_per_step - 1) / cfg.prompts_per_step;
  const int64_t total_steps =
      cfg.max_steps > 0 ? cfg.max_steps : std::max<int64_t>(1, steps_per_epoch * cfg.epochs);
  cfg.optim.total_steps = total_steps * cfg.ppo_epochs * cfg.mini_batches;
  fs::create_directories(out);
  write_json_file_atomic((out / "config.json").string(), cfg.to_json());

  sft::DataOrderState start;
  int64_t step = 0, drawn = 0;
  if (!resume_dir.empty()) {
    const Json t = sft::load_training_checkpoint(resume_dir, policy, ctx);
    sft::check_same_trajectory(t.at("trajectory"), trajectory(cfg, N), resume_dir);
    start = sft::data_order_state_from_json(t.at("data_order"), resume_dir + ": data_order");
    step = t.at("step").get<int64_t>();
    drawn = t.at("prompts_drawn").get<int64_t>();
    result.resumed_from = step;
    sft::cut_metrics(metrics_path, step);
    sft::cut_metrics(samples_path, step);
    logger()->info("[grpo] resuming from {} (step {})", resume_dir, step);
  } else {
    sft::cut_metrics(metrics_path, 0);
    sft::cut_metrics(samples_path, 0);
  }
  sft::DataOrder order(N, cfg.seed, cfg.shuffle, start);
  JsonlWriter metrics(metrics_path);
  std::optional<JsonlWriter> sample_log;
  if (cfg.log_samples > 0) sample_log.emplace(samples_path);
  rollout::Engine engine(policy, tok.get(), cfg.engine, ctx);

  auto save = [&](int64_t s) {
    const Json state{{"kind", "grpo"},
                     {"step", s},
                     {"data_order", sft::to_json(order.state())},
                     {"prompts_drawn", drawn},
                     {"trajectory", trajectory(cfg, N)}};
    sft::save_checkpoint_keeping(ck_root, s, cfg.keep_checkpoints, policy, state, ctx, tok_dir);
  };

  const double tau = cfg.sampling.temperature;
  const double default_constant = static_cast<double>(cfg.sampling.max_new_tokens);
  const bool need_old_before = cfg.old_logprobs == OldLogprobs::recompute &&
                               (cfg.ppo_epochs > 1 || cfg.mini_batches > 1 || distill ||
                                cfg.kl.placement == KlPlacement::reward);
  const auto t_run = Clock::now();
  while (step < total_steps) {
    const auto t_step = Clock::now();
    double t_rollout = 0, t_reward = 0, t_logprobs = 0, t_update = 0, t_refresh = 0;
    int64_t groups_dropped = 0, reward_skipped = 0, reward_errors = 0, rounds = 0;
    int64_t generated = 0;
    std::vector<Group> groups;
    // Sampling rounds (one without dynamic sampling).
    while (static_cast<int64_t>(groups.size()) < cfg.prompts_per_step &&
           rounds < (cfg.dynamic_sampling ? cfg.max_rounds : 1)) {
      ++rounds;
      const int64_t want = cfg.prompts_per_step - static_cast<int64_t>(groups.size());
      std::vector<rollout::Request> reqs;
      std::vector<int64_t> rows;
      for (int64_t i = 0; i < want; ++i) {
        rollout::Request r;
        rows.push_back(order.next());
        r.prompt_ids = prompts[static_cast<size_t>(rows.back())].ids;
        r.sampling = cfg.sampling;
        r.index = static_cast<uint64_t>(drawn++);
        reqs.push_back(std::move(r));
      }
      auto t0 = Clock::now();
      std::vector<rollout::RequestOutput> outs = engine.generate(reqs);
      t_rollout += seconds_since(t0);
      t0 = Clock::now();
      for (size_t q = 0; q < outs.size(); ++q) {
        R1_CHECK(outs[q].ok(), "[grpo] step {}: sampling failed: {}", step + 1, outs[q].error);
        const rollout::Request& rq = reqs[q];
        const PromptRow* row = &prompts[static_cast<size_t>(rows[q])];
        Group g;
        for (size_t s = 0; s < outs[q].completions.size(); ++s) {
          rollout::Completion& c = outs[q].completions[s];
          Scored sc;
          sc.group = static_cast<int64_t>(rq.index);
          sc.length = static_cast<int64_t>(c.token_ids.size());
          sc.truncated = c.finish_reason == rollout::FinishReason::length;
          sc.row = row;
          if (cfg.log_samples > 0) sc.text = c.text;
          generated += sc.length;
          Sample& smp = sc.sample;
          smp.tokens = rq.prompt_ids;
          smp.prompt_len = static_cast<int64_t>(rq.prompt_ids.size());
          smp.tokens.insert(smp.tokens.end(), c.token_ids.begin(), c.token_ids.end());
          smp.rollout_logprob.assign(c.logprobs.begin(), c.logprobs.end());
          smp.mask.assign(c.token_ids.size(), 1);
          if (replay) smp.replay = rollout::replay_experts(mc, outs[q], s, ctx.host_allocator());
          if (reward) {
            const rewards::RewardInput in{row->question, c.text, row->row,
                                          static_cast<size_t>(sc.length), nullptr};
            const rewards::RewardResult rr = reward->score(in);
            if (rr.status == rewards::RewardStatus::ok) {
              sc.reward = rr.score;
              sc.components = rr.components;
            } else {
              sc.keep = false;
              ++(rr.status == rewards::RewardStatus::skip ? reward_skipped : reward_errors);
            }
          }
          if (cfg.overlong_filter && sc.truncated) sc.keep = false;
          g.members.push_back(std::move(sc));
        }
        if (cfg.dynamic_sampling && !distill && !g.signal()) {
          ++groups_dropped;
          continue;
        }
        groups.push_back(std::move(g));
      }
      t_reward += seconds_since(t0);
    }
    // The batch: every kept member of the groups (dropped members stay out of the loss).
    std::vector<Scored*> batch;
    for (Group& g : groups)
      for (Scored& s : g.members) batch.push_back(&s);
    for (Scored* s : batch)
      if (!s->keep) std::fill(s->sample.mask.begin(), s->sample.mask.end(), 0);
    std::vector<const Sample*> samples;
    for (Scored* s : batch) samples.push_back(&s->sample);

    // Old, reference and teacher log-probs.
    auto t0 = Clock::now();
    if (cfg.old_logprobs == OldLogprobs::rollout) {
      for (Scored* s : batch) s->sample.old_logprob = s->sample.rollout_logprob;
    } else if (need_old_before && !samples.empty()) {
      auto old = completion_logprobs(policy, samples, tau, cfg.micro_batch_tokens, ctx);
      for (size_t i = 0; i < batch.size(); ++i) batch[i]->sample.old_logprob = std::move(old[i]);
    }
    if (ref && !samples.empty()) {
      auto lr = completion_logprobs(*ref, samples, tau, cfg.micro_batch_tokens, ctx);
      for (size_t i = 0; i < batch.size(); ++i) batch[i]->sample.ref_logprob = std::move(lr[i]);
    }
    std::vector<std::vector<double>> teacher_lp;
    if (teacher && !samples.empty())
      teacher_lp = completion_logprobs(*teacher, samples, tau, cfg.micro_batch_tokens, ctx);
    t_logprobs = seconds_since(t0);

    // Advantages.
    Mean reward_m, len_m, kl_reward_m, teacher_kl;
    std::map<std::string, Mean> comp_m;
    double truncated = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      Scored& s = *batch[i];
      len_m.add(static_cast<double>(s.length));
      truncated += s.truncated ? 1 : 0;
      if (!s.keep) continue;
      reward_m.add(s.reward);
      for (const auto& [k, v] : s.components) comp_m[k].add(v);
    }
    if (cfg.kl.placement == KlPlacement::reward) {
      for (Scored* s : batch) {
        if (!s->keep) continue;
        double k = 0;
        const Sample& sm = s->sample;
        for (int64_t t = 0; t < sm.completion_len(); ++t)
          k += kl_value(cfg.kl.estimator, sm.old_logprob[static_cast<size_t>(t)],
                        sm.ref_logprob[static_cast<size_t>(t)]);
        kl_reward_m.add(k);
        s->reward -= cfg.kl.beta * k;
      }
    }
    if (distill) {
      for (size_t i = 0; i < batch.size(); ++i) {
        Sample& sm = batch[i]->sample;
        sm.advantage.assign(static_cast<size_t>(sm.completion_len()), 0.0);
        for (size_t t = 0; t < sm.advantage.size(); ++t) {
          const double k = sm.old_logprob[t] - teacher_lp[i][t];
          if (sm.mask[t]) teacher_kl.add(k);
          sm.advantage[t] = -k;
        }
      }
    } else {
      std::vector<double> rw;
      std::vector<int64_t> gid;
      std::vector<uint8_t> keep;
      for (Scored* s : batch) {
        rw.push_back(s->reward);
        gid.push_back(s->group);
        keep.push_back(s->keep ? 1 : 0);
      }
      const std::vector<double> adv = compute_advantages(rw, gid, keep, cfg.advantage);
      for (size_t i = 0; i < batch.size(); ++i)
        batch[i]->sample.advantage.assign(static_cast<size_t>(batch[i]->sample.completion_len()),
                                          adv[i]);
    }

    // Updates: ppo_epochs passes of mini_batches optimizer steps each.
    t0 = Clock::now();
    LossStats ls;
    double grad_norm = 0, lr = 0;
    int64_t updates = 0, skipped_updates = 0;
    double kept_tokens = 0;
    std::vector<const Sample*> kept;
    for (const Sample* s : samples) {
      double n = 0;
      for (const uint8_t m : s->mask) n += m;
      if (n > 0) kept.push_back(s);
      kept_tokens += n;
    }
    if (!kept.empty()) {
      const int64_t K = static_cast<int64_t>(kept.size());
      const int64_t M = std::min<int64_t>(cfg.mini_batches, K);
      for (int64_t pass = 0; pass < cfg.ppo_epochs; ++pass) {
        std::vector<int64_t> perm =
            cfg.mini_batches > 1 ? sft::data_order_permutation(K, cfg.seed ^ 0x9e3779b97f4a7c15ULL,
                                                               step * cfg.ppo_epochs + pass, true)
                                 : sft::data_order_permutation(K, 0, 0, false);
        for (int64_t m = 0; m < M; ++m) {
          // Mini-batch m: samples [m·K/M, (m+1)·K/M) of the permuted order.
          std::vector<std::vector<const Sample*>> mbs(1);
          int64_t tokens = 0;
          for (int64_t q = m * K / M; q < (m + 1) * K / M; ++q) {
            const Sample* s = kept[static_cast<size_t>(perm[static_cast<size_t>(q)])];
            const int64_t len = static_cast<int64_t>(s->tokens.size());
            if (!mbs.back().empty() && tokens + len > cfg.micro_batch_tokens) {
              mbs.emplace_back();
              tokens = 0;
            }
            mbs.back().push_back(s);
            tokens += len;
          }
          const UpdateResult u =
              optimizer_step(policy, mbs, cfg.loss, cfg.kl, tau, default_constant, cfg.optim,
                             cfg.bias_update_rate, ctx);
          if (pass == 0) ls.add(u.stats);
          grad_norm = u.grad_norm;
          lr = u.lr;
          ++updates;
          if (u.skipped) {
            ++skipped_updates;
            logger()->warn("[grpo] step {}: non-finite gradient norm, update skipped", step + 1);
          }
        }
      }
    } else {
      logger()->warn("[grpo] step {}: no sample is in the loss (all skipped or filtered)",
                     step + 1);
    }
    t_update = seconds_since(t0);
    t0 = Clock::now();
    engine.refresh_weights();
    t_refresh = seconds_since(t0);
    ++step;
    result.last_reward_mean = reward_m.mean();

    if (step % cfg.log_every == 0 || step == total_steps) {
      const double secs = seconds_since(t_step);
      auto per_token = [&](double v) { return ls.tokens > 0 ? v / ls.tokens : 0.0; };
      Json comps = Json::object();
      for (const auto& [k, m] : comp_m) comps[k] = m.mean();
      Json line{{"type", "train"},
                {"step", step},
                {"total_steps", total_steps},
                {"reward_mean", reward_m.mean()},
                {"reward_std", reward_m.std()},
                {"reward_components", comps},
                {"samples", batch.size()},
                {"samples_in_loss", kept.size()},
                {"groups", groups.size()},
                {"groups_dropped", groups_dropped},
                {"sampling_rounds", rounds},
                {"reward_skipped", reward_skipped},
                {"reward_errors", reward_errors},
                {"response_length_mean", len_m.mean()},
                {"response_length_max", len_m.n > 0 ? len_m.max : 0.0},
                {"response_clipped_fraction",
                 batch.empty() ? 0.0 : truncated / static_cast<double>(batch.size())},
                {"loss", ls.loss},
                {"pg_loss", ls.pg},
                {"entropy", per_token(ls.entropy)},
                {"clip_fraction", per_token(ls.clipped)},
                {"dual_clip_fraction", per_token(ls.dual_clipped)},
                {"ratio_mean", per_token(ls.ratio)},
                {"ratio_max", ls.ratio_max},
                {"is_weight_mean", per_token(ls.is_weight)},
                {"is_weight_max", ls.is_weight_max},
                {"is_capped_fraction", per_token(ls.is_capped)},
                {"grad_norm", grad_norm},
                {"lr", lr},
                {"updates", updates},
                {"skipped_updates", skipped_updates},
                {"tokens_in_loss", kept_tokens},
                {"generated_tokens", generated},
                {"tokens_per_s", secs > 0 ? static_cast<double>(generated) / secs : 0.0},
                {"time_s",
                 {{"rollout", t_rollout},
                  {"reward", t_reward},
                  {"logprobs", t_logprobs},
                  {"update", t_update},
                  {"refresh", t_refresh},
                  {"step", secs}}},
                {"elapsed_s", seconds_since(t_run)}};
      if (comp_m.count("accuracy")) line["accuracy"] = comp_m.at("accuracy").mean();
      if (comp_m.count("format")) line["format_rate"] = comp_m.at("format").mean();
      if (ref) line["kl"] = per_token(ls.kl);
      if (cfg.kl.placement == KlPlacement::reward) line["kl_reward_mean"] = kl_reward_m.mean();
      if (distill) line["teacher_kl"] = teacher_kl.mean();
      metrics.write(line);
      if (sample_log) write_samples(*sample_log, groups, step, cfg.log_samples);
      if (on_step) on_step(line);
    }
    if (cfg.save_every > 0 && step % cfg.save_every == 0 && step < total_steps) save(step);
    if (interrupt_requested() && step < total_steps) {
      metrics.close();
      if (sample_log) sample_log->close();
      if (cfg.save_every == 0 || step % cfg.save_every != 0) save(step);
      throw Interrupted(fmt::format(
          "[grpo] interrupted after step {}: checkpoint written, running again resumes there",
          step));
    }
  }
  metrics.close();
  if (sample_log) sample_log->close();
  if (step > result.resumed_from || result.resumed_from == 0) save(step);
  result.final_dir = sft::save_final_model(out.string(), policy, po.dtype, tok_dir, ctx);
  result.steps = step;
  return result;
}

}  // namespace r1kit::grpo

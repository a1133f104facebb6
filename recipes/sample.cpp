// The rejection-sampling stage (recipes/sample.h).
#include "recipes/sample.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>
#include <tuple>
#include <unordered_set>

#include "core/error.h"
#include "core/log.h"
#include "policy/policy.h"
#include "policy/tokenizer.h"
#include "rewards/compose.h"
#include "rollout/prompts.h"
#include "sft/stage.h"

namespace r1kit::recipes {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::vector<std::pair<std::string, SampleSelect>> kSelect = {
    {"all", SampleSelect::all}, {"best", SampleSelect::best}, {"shortest", SampleSelect::shortest}};

std::string select_name(SampleSelect s) {
  for (const auto& [n, e] : kSelect)
    if (e == s) return n;
  return "all";
}

// The histogram's bin width: 16 bins over [0, max_new_tokens].
int64_t histogram_bin_width(int64_t max_new_tokens) {
  return std::max<int64_t>(1, (max_new_tokens + 15) / 16);
}

std::unique_ptr<rewards::ComposedReward> build_reward(const Json& rewards, std::string_view where) {
  if (rewards.is_object()) return rewards::ComposedReward::from_json(rewards, where);
  return rewards::load_reward_config(rewards.get<std::string>());
}

// A filter that reads a component needs the reward to have one by that name.
void check_component(const rewards::ComposedReward& reward, bool needed, const std::string& name,
                     const std::string& key, const std::string& off, std::string_view where) {
  if (!needed) return;
  std::string have;
  for (const auto& c : reward.components()) {
    if (c.name == name) return;
    have += (have.empty() ? "" : ", ") + c.name;
  }
  R1_THROW(
      "{}: filters.{} reads the reward component '{}', which the rewards do not have (they "
      "have: {}); add a component named '{}' or set \"{}\": {}",
      where, key, name, have.empty() ? "none" : have, name, key, off);
}

bool is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

// A component's effective score; a missing one fails any threshold.
bool component_at_least(const Candidate& c, const std::string& name, double threshold) {
  const auto it = c.components.find(name);
  return it != c.components.end() && it->second >= threshold;
}

Json messages_to_json(const std::vector<policy::ChatMessage>& msgs) {
  Json a = Json::array();
  for (const auto& m : msgs) {
    Json o = {{"role", m.role}, {"content", m.content}};
    if (m.reasoning) o["reasoning"] = *m.reasoning;
    a.push_back(std::move(o));
  }
  return a;
}

}  // namespace

// --- Config
// ---------------------------------------------------------------------------------------

SampleFilters SampleFilters::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j,
                      {"min_reward", "require_correct", "require_format", "min_language",
                       "max_tokens", "drop_truncated", "max_repetition"},
                      where);
  SampleFilters f;
  f.min_reward = get_optional<double>(j, "min_reward", where);
  f.require_correct = get_optional<bool>(j, "require_correct", where, f.require_correct);
  f.require_format = get_optional<bool>(j, "require_format", where, f.require_format);
  f.min_language = get_optional<double>(j, "min_language", where);
  f.max_tokens = get_optional<int64_t>(j, "max_tokens", where, f.max_tokens);
  f.drop_truncated = get_optional<bool>(j, "drop_truncated", where, f.drop_truncated);
  // null switches the check off (get_optional would read it as absent: the default).
  if (j.contains("max_repetition") && j.at("max_repetition").is_null())
    f.max_repetition = 0;
  else
    f.max_repetition = get_optional<double>(j, "max_repetition", where, f.max_repetition);
  R1_CHECK(!f.min_reward || std::isfinite(*f.min_reward),
           "{}: 'min_reward' must be a finite number or null", where);
  R1_CHECK(!f.min_language || std::isfinite(*f.min_language),
           "{}: 'min_language' must be a finite number or null", where);
  R1_CHECK(f.max_tokens >= 0, "{}: 'max_tokens' must be >= 0 (0 = off), got {}", where,
           f.max_tokens);
  R1_CHECK(f.max_repetition >= 0 && f.max_repetition <= 1,
           "{}: 'max_repetition' must be in [0, 1] (0 or null = off), got {}", where,
           f.max_repetition);
  return f;
}

Json SampleFilters::to_json() const {
  return Json{{"min_reward", min_reward ? Json(*min_reward) : Json(nullptr)},
              {"require_correct", require_correct},
              {"require_format", require_format},
              {"min_language", min_language ? Json(*min_language) : Json(nullptr)},
              {"max_tokens", max_tokens},
              {"drop_truncated", drop_truncated},
              {"max_repetition", max_repetition}};
}

SampleConfig SampleConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j,
                      {"model",
                       "tokenizer",
                       "chat_template",
                       "prompt_template",
                       "system_prompt",
                       "prompts",
                       "prompt_field",
                       "max_prompt_tokens",
                       "rewards",
                       "sampling",
                       "samples_per_prompt",
                       "filters",
                       "select",
                       "max_per_prompt",
                       "dedupe",
                       "prompts_per_batch",
                       "engine",
                       "output",
                       "device",
                       "dtype",
                       "threads",
                       "seed"},
                      where);
  SampleConfig c;
  c.model = get_required<std::string>(j, "model", where);
  c.tokenizer = get_optional<std::string>(j, "tokenizer", where, "");
  c.chat_template = get_optional<std::string>(j, "chat_template", where, "");
  c.prompt_template = get_optional<std::string>(j, "prompt_template", where, "");
  R1_CHECK(c.chat_template.empty() || c.prompt_template.empty(),
           "{}: give 'chat_template' (a built-in name) or 'prompt_template' (a pattern), not both",
           where);
  if (!c.prompt_template.empty()) policy::ChatTemplate::from_pattern(c.prompt_template);
  c.system_prompt = get_optional<std::string>(j, "system_prompt", where, "");
  c.prompts = get_required<std::string>(j, "prompts", where);
  c.prompt_field = get_optional<std::string>(j, "prompt_field", where, "");
  c.max_prompt_tokens = get_optional<int64_t>(j, "max_prompt_tokens", where, c.max_prompt_tokens);
  R1_CHECK(c.max_prompt_tokens >= 1, "{}: 'max_prompt_tokens' must be >= 1", where);

  R1_CHECK(j.contains("rewards"),
           "{}: 'rewards' is required (a reward config object or the path of one)", where);
  c.rewards = j.at("rewards");
  R1_CHECK(c.rewards.is_object() || c.rewards.is_string(),
           "{}: 'rewards' must be a reward config object or the path of one, got {}", where,
           json_type_name(c.rewards));
  const auto reward = build_reward(c.rewards, json_where(where, "rewards"));

  if (j.contains("sampling")) {
    const Json& s = j.at("sampling");
    R1_CHECK(!s.is_object() || !s.contains("n"),
             "{}: the number of samples is 'samples_per_prompt', not sampling.n", where);
    R1_CHECK(!s.is_object() || !s.contains("seed"),
             "{}: the sampling seed is the stage's 'seed', not sampling.seed", where);
    c.sampling = rollout::sampling_params_from_json(s, json_where(where, "sampling"));
  }
  c.samples_per_prompt =
      get_optional<int64_t>(j, "samples_per_prompt", where, c.samples_per_prompt);
  R1_CHECK(c.samples_per_prompt >= 1, "{}: 'samples_per_prompt' must be >= 1, got {}", where,
           c.samples_per_prompt);
  c.sampling.n = c.samples_per_prompt;
  c.sampling.validate(json_where(where, "sampling"));

  if (j.contains("filters"))
    c.filters = SampleFilters::from_json(j.at("filters"), json_where(where, "filters"));
  check_component(*reward, c.filters.require_correct, "accuracy", "require_correct", "false",
                  where);
  check_component(*reward, c.filters.require_format, "format", "require_format", "false", where);
  check_component(*reward, c.filters.min_language.has_value(), "language", "min_language", "null",
                  where);

  c.select = get_enum(j, "select", where, kSelect, c.select);
  c.max_per_prompt = get_optional<int64_t>(j, "max_per_prompt", where, c.max_per_prompt);
  R1_CHECK(c.max_per_prompt >= 0, "{}: 'max_per_prompt' must be >= 0 (0 = the select default)",
           where);
  c.dedupe = get_optional<bool>(j, "dedupe", where, c.dedupe);
  c.prompts_per_batch = get_optional<int64_t>(j, "prompts_per_batch", where, c.prompts_per_batch);
  R1_CHECK(c.prompts_per_batch >= 1, "{}: 'prompts_per_batch' must be >= 1", where);
  if (j.contains("engine"))
    c.engine = rollout::EngineOptions::from_json(j.at("engine"), json_where(where, "engine"));
  c.output = get_required<std::string>(j, "output", where);
  R1_CHECK(!c.output.empty(), "{}: 'output' must name a directory", where);
  c.device = get_optional<std::string>(j, "device", where, c.device);
  c.dtype = get_optional<std::string>(j, "dtype", where, c.dtype);
  sft::check_device_and_dtype(c.device, c.dtype, where);
  c.threads = get_optional<int32_t>(j, "threads", where, c.threads);
  R1_CHECK(c.threads >= 0, "{}: 'threads' must be >= 0 (0 = all cores)", where);
  c.seed = get_optional<uint64_t>(j, "seed", where, c.seed);
  c.sampling.seed = c.seed;
  return c;
}

Json SampleConfig::to_json() const {
  Json s = rollout::to_json(sampling);
  s.erase("n");
  s.erase("seed");
  return Json{{"model", model},
              {"tokenizer", tokenizer},
              {"chat_template", chat_template},
              {"prompt_template", prompt_template},
              {"system_prompt", system_prompt},
              {"prompts", prompts},
              {"prompt_field", prompt_field},
              {"max_prompt_tokens", max_prompt_tokens},
              {"rewards", rewards},
              {"sampling", s},
              {"samples_per_prompt", samples_per_prompt},
              {"filters", filters.to_json()},
              {"select", select_name(select)},
              {"max_per_prompt", max_per_prompt},
              {"dedupe", dedupe},
              {"prompts_per_batch", prompts_per_batch},
              {"engine", engine.to_json()},
              {"output", output},
              {"device", device},
              {"dtype", dtype},
              {"threads", threads},
              {"seed", seed}};
}

// --- Judging and selection
// ------------------------------------------------------------------------

std::string_view rejection_name(Rejection r) {
  switch (r) {
    case Rejection::none:
      return "accepted";
    case Rejection::empty:
      return "empty";
    case Rejection::truncated:
      return "truncated";
    case Rejection::max_tokens:
      return "max_tokens";
    case Rejection::repetition:
      return "repetition";
    case Rejection::reward:
      return "reward";
    case Rejection::correct:
      return "correct";
    case Rejection::format:
      return "format";
    case Rejection::language:
      return "language";
    case Rejection::min_reward:
      return "min_reward";
    case Rejection::duplicate:
      return "duplicate";
    case Rejection::select:
      return "select";
  }
  return "?";
}

const std::vector<Rejection>& rejection_order() {
  static const std::vector<Rejection> kOrder = {
      Rejection::empty,      Rejection::truncated, Rejection::max_tokens, Rejection::repetition,
      Rejection::reward,     Rejection::correct,   Rejection::format,     Rejection::language,
      Rejection::min_reward, Rejection::duplicate, Rejection::select};
  return kOrder;
}

double repetition_rate(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  constexpr size_t kN = 4;
  if (words.size() < kN) return 0.0;
  const size_t total = words.size() - kN + 1;
  std::set<std::vector<std::string_view>> distinct;
  for (size_t w = 0; w < total; ++w)
    distinct.insert(std::vector<std::string_view>(words.begin() + static_cast<ptrdiff_t>(w),
                                                  words.begin() + static_cast<ptrdiff_t>(w + kN)));
  return 1.0 - static_cast<double>(distinct.size()) / static_cast<double>(total);
}

std::string utf8_sanitize(std::string_view text, int64_t* replaced) {
  int64_t n = 0;
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t bad = utf8_invalid_offset(text);
    if (bad == std::string_view::npos) {
      out.append(text);
      break;
    }
    out.append(text.substr(0, bad));
    out += "\xEF\xBF\xBD";
    ++n;
    text.remove_prefix(bad + 1);
  }
  if (replaced) *replaced = n;
  return out;
}

Rejection judge_unscored(const Candidate& c, const SampleFilters& f) {
  if (std::all_of(c.text.begin(), c.text.end(), is_space)) return Rejection::empty;
  if (f.drop_truncated && c.finish_reason == rollout::FinishReason::length)
    return Rejection::truncated;
  if (f.max_tokens > 0 && c.length > f.max_tokens) return Rejection::max_tokens;
  if (f.max_repetition > 0 && repetition_rate(c.text) > f.max_repetition)
    return Rejection::repetition;
  return Rejection::none;
}

Rejection judge(const Candidate& c, const SampleFilters& f) {
  const Rejection r = judge_unscored(c, f);
  if (r != Rejection::none) return r;
  if (c.status != rewards::RewardStatus::ok) return Rejection::reward;
  if (f.require_correct && !component_at_least(c, "accuracy", 1.0)) return Rejection::correct;
  if (f.require_format && !component_at_least(c, "format", 1.0)) return Rejection::format;
  if (f.min_language && !component_at_least(c, "language", *f.min_language))
    return Rejection::language;
  if (f.min_reward && !(c.reward >= *f.min_reward)) return Rejection::min_reward;
  return Rejection::none;
}

Selection select_candidates(const std::vector<Candidate>& candidates, const SampleFilters& f,
                            SampleSelect select, int64_t max_per_prompt, bool dedupe) {
  Selection s;
  s.verdicts.reserve(candidates.size());
  std::vector<size_t> order;
  for (size_t i = 0; i < candidates.size(); ++i) {
    s.verdicts.push_back(judge(candidates[i], f));
    if (s.verdicts.back() == Rejection::none) order.push_back(i);
  }
  s.passed = static_cast<int64_t>(order.size());
  // Selection order; the sample index breaks the remaining ties, so the order is total.
  // A NaN reward sorts as the lowest (a strict weak order needs comparable keys).
  auto neg_reward = [&](size_t i) {
    const double r = candidates[i].reward;
    return std::isnan(r) ? std::numeric_limits<double>::infinity() : -r;
  };
  auto key_best = [&](size_t i) {
    return std::make_tuple(neg_reward(i), candidates[i].length, candidates[i].sample, i);
  };
  auto key_shortest = [&](size_t i) {
    return std::make_tuple(candidates[i].length, neg_reward(i), candidates[i].sample, i);
  };
  if (select == SampleSelect::best)
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return key_best(a) < key_best(b); });
  else if (select == SampleSelect::shortest)
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return key_shortest(a) < key_shortest(b); });
  else
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::make_pair(candidates[a].sample, a) < std::make_pair(candidates[b].sample, b);
    });
  const size_t limit = max_per_prompt > 0            ? static_cast<size_t>(max_per_prompt)
                       : select == SampleSelect::all ? order.size()
                                                     : 1;
  std::unordered_set<std::string_view> seen;
  for (const size_t i : order) {
    if (dedupe && !seen.insert(candidates[i].text).second) {
      s.verdicts[i] = Rejection::duplicate;
    } else if (s.kept.size() >= limit) {
      s.verdicts[i] = Rejection::select;
    } else {
      s.kept.push_back(i);
    }
  }
  return s;
}

std::vector<policy::ChatMessage> prompt_messages(const Json& row, const std::string& field,
                                                 const std::string& system_prompt) {
  std::string f = field;
  if (f.empty())
    for (const char* name : {"messages", "prompt", "question", "problem"})
      if (row.contains(name)) {
        f = name;
        break;
      }
  R1_CHECK(!f.empty() && row.contains(f), "[sample] the prompt row has no prompt field '{}'", f);
  const Json& v = row.at(f);
  if (v.is_array()) return policy::parse_chat_messages(v, f);
  std::vector<policy::ChatMessage> msgs;
  if (!system_prompt.empty()) msgs.push_back({"system", system_prompt, std::nullopt});
  msgs.push_back({"user", get_required<std::string>(row, f, "[sample] prompt row"), std::nullopt});
  return msgs;
}

// --- Tally
// ----------------------------------------------------------------------------------------

SampleTally::SampleTally(const SampleConfig& cfg)
    : filters_(cfg.filters),
      select_(cfg.select),
      max_per_prompt_(cfg.max_per_prompt),
      dedupe_(cfg.dedupe),
      bin_width_(histogram_bin_width(cfg.sampling.max_new_tokens)),
      histogram_(static_cast<size_t>(cfg.sampling.max_new_tokens / bin_width_ + 1), 0) {
  for (const Rejection r : rejection_order()) rejected_[r] = 0;
}

Selection SampleTally::add(const PromptSamples& p) {
  Selection s = select_candidates(p.candidates, filters_, select_, max_per_prompt_, dedupe_);
  const Json prompt = messages_to_json(p.messages);
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    const Candidate& c = p.candidates[i];
    if (c.invalid_utf8 || utf8_invalid_offset(c.text) != std::string_view::npos) ++invalid_utf8_;
    if (s.verdicts[i] != Rejection::none) ++rejected_[s.verdicts[i]];
  }
  for (const size_t i : s.kept) {
    const Candidate& c = p.candidates[i];
    Json messages = prompt;
    // The writer refuses ill-formed UTF-8; a caller's candidates may not have been sanitised.
    messages.push_back({{"role", "assistant"}, {"content", utf8_sanitize(c.text)}});
    rows_.push_back(Json{{"messages", std::move(messages)},
                         {"prompt_line", p.line},
                         {"sample", c.sample},
                         {"reward", c.reward},
                         {"components", c.components},
                         {"length", c.length},
                         {"finish_reason", rollout::finish_reason_name(c.finish_reason)}});
    const size_t bin = static_cast<size_t>(std::max<int64_t>(0, c.length) / bin_width_);
    if (bin >= histogram_.size()) histogram_.resize(bin + 1, 0);
    ++histogram_[bin];
  }
  samples_ += static_cast<int64_t>(p.candidates.size());
  if (!s.kept.empty()) ++prompts_with_any_;
  per_prompt_.push_back(Json{{"line", p.line},
                             {"samples", p.candidates.size()},
                             {"passed", s.passed},
                             {"kept", s.kept.size()}});
  return s;
}

Json SampleTally::stats() const {
  Json by = Json::object();
  for (const auto& [r, n] : rejected_) by[std::string(rejection_name(r))] = n;
  const int64_t acc = accepted();
  return Json{
      {"prompts", prompts()},
      {"skipped_prompts", skipped_prompts_},
      {"failed_prompts", failed_prompts_},
      {"samples", samples_},
      {"accepted", acc},
      {"acceptance_rate",
       samples_ > 0 ? static_cast<double>(acc) / static_cast<double>(samples_) : 0.0},
      {"rejected_by", by},
      {"duplicates", rejected_.at(Rejection::duplicate)},
      {"invalid_utf8", invalid_utf8_},
      {"prompts_with_any", prompts_with_any_},
      {"per_prompt", per_prompt_},
      {"length_histogram", {{"bin_width", bin_width_}, {"counts", histogram_}}},
  };
}

// --- The stage
// ------------------------------------------------------------------------------------

SampleResult write_sample_outputs(const SampleConfig& cfg, const SampleTally& tally) {
  const fs::path out(cfg.output);
  fs::create_directories(out);
  SampleResult r;
  r.accepted_path = (out / "accepted.jsonl").string();
  r.stats_path = (out / "stats.json").string();
  r.config_path = (out / "config.json").string();
  write_jsonl_file_atomic(r.accepted_path, tally.rows());
  write_json_file_atomic(r.stats_path, tally.stats());
  write_json_file_atomic(r.config_path, cfg.to_json());
  r.prompts = tally.prompts();
  r.samples = tally.samples();
  r.accepted = tally.accepted();
  r.prompts_with_any = tally.prompts_with_any();
  return r;
}

SampleResult run_sample(const SampleConfig& cfg, const SampleCallback& on_batch) {
  const auto start = Clock::now();
  auto ctxp = sft::make_context(cfg.device, cfg.threads, cfg.seed);
  Context& ctx = *ctxp;
  const std::string tok_dir = cfg.tokenizer.empty() ? cfg.model : cfg.tokenizer;
  policy::PolicyOptions po;
  po.dtype = sft::working_dtype(cfg.dtype, ctx);
  policy::Policy policy = policy::Policy::load(cfg.model, ctx, po);

  const std::unique_ptr<policy::Tokenizer> tok = policy::Tokenizer::load(tok_dir);
  const policy::ChatTemplate chat =
      cfg.prompt_template.empty()
          ? policy::ChatTemplate::for_model(tok_dir, cfg.chat_template)
          : policy::ChatTemplate::from_pattern(cfg.prompt_template,
                                               policy::read_chat_special_tokens(tok_dir));
  rollout::PromptSetOptions pso;
  pso.path = cfg.prompts;
  pso.field = cfg.prompt_field;
  pso.system_prompt = cfg.system_prompt;
  pso.max_tokens = cfg.max_prompt_tokens;
  pso.vocab = policy.config().vocab_size;
  pso.label = "prompts";
  const rollout::PromptSet set = rollout::load_prompt_set(pso, *tok, chat);
  logger()->info("[sample] {}: {} prompts ({} rows skipped), {} samples each", cfg.prompts,
                 set.rows.size(), set.skipped, cfg.samples_per_prompt);
  const auto reward = build_reward(cfg.rewards, "rewards");

  SampleTally tally(cfg);
  tally.add_skipped_prompts(set.skipped);
  rollout::Engine engine(policy, tok.get(), cfg.engine, ctx);
  const size_t N = set.rows.size();
  const size_t per_batch = static_cast<size_t>(cfg.prompts_per_batch);
  int64_t batch = 0;
  for (size_t b0 = 0; b0 < N; b0 += per_batch) {
    const size_t b1 = std::min(N, b0 + per_batch);
    std::vector<rollout::Request> reqs;
    for (size_t q = b0; q < b1; ++q) {
      rollout::Request r;
      r.prompt_ids = set.rows[q].ids;
      r.sampling = cfg.sampling;
      r.index = static_cast<uint64_t>(set.rows[q].line);  // the stream: see the file comment
      reqs.push_back(std::move(r));
    }
    std::vector<rollout::RequestOutput> outs = engine.generate(reqs);
    for (size_t q = b0; q < b1; ++q) {
      const rollout::PromptRow& row = set.rows[q];
      rollout::RequestOutput& o = outs[q - b0];
      if (!o.ok()) {
        logger()->warn("[sample] {}:{}: not sampled: {}", cfg.prompts, row.line, o.error);
        tally.add_failed_prompt();
        continue;
      }
      PromptSamples p;
      p.line = row.line;
      p.messages = prompt_messages(row.row, cfg.prompt_field, cfg.system_prompt);
      for (size_t s = 0; s < o.completions.size(); ++s) {
        const rollout::Completion& comp = o.completions[s];
        Candidate c;
        c.sample = static_cast<int64_t>(s);
        int64_t replaced = 0;
        c.text = utf8_sanitize(comp.text, &replaced);
        c.invalid_utf8 = replaced > 0;
        c.length = static_cast<int64_t>(comp.token_ids.size());
        c.finish_reason = comp.finish_reason;
        if (judge_unscored(c, cfg.filters) == Rejection::none) {
          const rewards::RewardInput in{row.question, c.text, row.row,
                                        static_cast<size_t>(c.length), nullptr};
          rewards::RewardResult rr = reward->score(in);
          c.status = rr.status;
          c.reward = rr.score;
          c.components = std::move(rr.components);
        }
        p.candidates.push_back(std::move(c));
      }
      tally.add(p);
    }
    ++batch;
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    logger()->info("[sample] batch {}: {}/{} prompts, {} samples, {} accepted ({:.1f} s)", batch,
                   b1, N, tally.samples(), tally.accepted(), seconds);
    if (on_batch)
      on_batch(Json{{"batch", batch},
                    {"prompts_done", b1},
                    {"prompts", N},
                    {"samples", tally.samples()},
                    {"accepted", tally.accepted()},
                    {"seconds", seconds}});
  }
  SampleResult r = write_sample_outputs(cfg, tally);
  r.skipped_prompts = set.skipped;
  logger()->info("[sample] {} of {} samples accepted ({} of {} prompts have one) -> {}", r.accepted,
                 r.samples, r.prompts_with_any, r.prompts, r.accepted_path);
  return r;
}

}  // namespace r1kit::recipes

// Reward composition by config (see compose.h).
#include "rewards/compose.h"

#include <cmath>
#include <map>

#include "core/error.h"
#include "rewards/accuracy.h"
#include "rewards/code.h"
#include "rewards/countdown.h"
#include "rewards/format.h"
#include "rewards/language.h"
#include "rewards/length.h"

namespace r1kit::rewards {

const std::vector<std::string>& reward_types() {
  static const std::vector<std::string> types = {
      "format", "tag_count", "code_format", "reasoning_steps", "accuracy",
      "code",   "countdown", "language",    "soft_overlong",   "cosine_length"};
  return types;
}

std::unique_ptr<Reward> make_reward(std::string_view type, const Json& options,
                                    std::string_view where) {
  const Json empty = Json::object();
  const Json& o = options.is_null() ? empty : options;
  std::string w(where);
  if (type == "format") return std::make_unique<FormatReward>(FormatOptions::from_json(o, w));
  if (type == "tag_count")
    return std::make_unique<TagCountReward>(TagCountOptions::from_json(o, w));
  if (type == "code_format")
    return std::make_unique<CodeFormatReward>(CodeFormatOptions::from_json(o, w));
  if (type == "reasoning_steps")
    return std::make_unique<ReasoningStepsReward>(ReasoningStepsOptions::from_json(o, w));
  if (type == "accuracy") return std::make_unique<AccuracyReward>(AccuracyOptions::from_json(o, w));
  if (type == "code") return std::make_unique<CodeReward>(CodeRewardOptions::from_json(o, w));
  if (type == "countdown")
    return std::make_unique<CountdownReward>(CountdownRewardOptions::from_json(o, w));
  if (type == "language") return std::make_unique<LanguageReward>(LanguageOptions::from_json(o, w));
  if (type == "soft_overlong")
    return std::make_unique<SoftOverlongReward>(SoftOverlongOptions::from_json(o, w));
  if (type == "cosine_length")
    return std::make_unique<CosineLengthReward>(CosineLengthOptions::from_json(o, w));
  std::string msg = fmt::format("{}: unknown reward type '{}'", where, type);
  if (auto m = closest_match(type, reward_types())) {
    msg += fmt::format("; did you mean '{}'?", *m);
  } else {
    msg += fmt::format("; known types: {}", fmt::join(reward_types(), ", "));
  }
  throw Error(msg);
}

namespace {

SkipPolicy skip_policy(const std::string& s, std::string_view where) {
  if (s == "skip") return SkipPolicy::skip;
  if (s == "renormalize" || s == "renormalise") return SkipPolicy::renormalize;
  R1_THROW("{}: on_skip '{}': expected skip or renormalize", where, s);
}

std::vector<std::string> names_of(const std::vector<ComposedReward::Component>& cs, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n && i < cs.size(); ++i) out.push_back(cs[i].name);
  return out;
}

std::string suggestion(std::string_view name, const std::vector<std::string>& names) {
  if (auto m = closest_match(name, names)) return fmt::format("; did you mean '{}'?", *m);
  return names.empty() ? "" : fmt::format("; components: {}", fmt::join(names, ", "));
}

}  // namespace

ComposedReward::ComposedReward(std::vector<Component> components, bool normalize,
                               std::string_view where)
    : components_(std::move(components)), normalize_(normalize) {
  std::string w = where.empty() ? "reward config" : std::string(where);
  R1_CHECK(!components_.empty(), "{}: no rewards", w);
  double total = 0;
  for (size_t i = 0; i < components_.size(); ++i) {
    const auto& c = components_[i];
    std::string cw = json_where(json_where(w, "rewards"), i);
    R1_CHECK(c.reward != nullptr, "{}: no reward", cw);
    R1_CHECK(!c.name.empty(), "{}: empty name", cw);
    R1_CHECK(std::isfinite(c.weight) && c.weight >= 0,
             "{}: weight must be a finite number >= 0, got {} (give penalties as negative scores, "
             "not negative weights)",
             cw, c.weight);
    total += c.weight;
    for (size_t k = 0; k < i; ++k)
      R1_CHECK(components_[k].name != c.name,
               "{}: a second component named '{}' (give each a distinct \"name\")", cw, c.name);
  }
  R1_CHECK(total > 0, "{}: the weights sum to 0", w);
  auto all = names_of(components_, components_.size());
  for (size_t i = 0; i < components_.size(); ++i) {
    const auto& c = components_[i];
    std::string cw = json_where(json_where(w, "rewards"), i);
    if (!c.gate.empty()) {
      R1_CHECK(c.gate != c.name, "{}: '{}' cannot gate itself", cw, c.name);
      R1_CHECK(std::find(all.begin(), all.end(), c.gate) != all.end(),
               "{}: gate '{}' is not a component{}", cw, c.gate, suggestion(c.gate, all));
    }
    auto before = names_of(components_, i);
    for (const auto& dep : c.reward->depends_on()) {
      if (dep.empty()) continue;
      if (std::find(before.begin(), before.end(), dep) != before.end()) continue;
      bool later = std::find(all.begin(), all.end(), dep) != all.end();
      R1_THROW("{}: '{}' reads component '{}', which {}{}", cw, c.name, dep,
               later ? "must come before it in the list" : "is not a component",
               later ? "" : suggestion(dep, before));
    }
  }
}

std::unique_ptr<ComposedReward> ComposedReward::from_json(const Json& config,
                                                          std::string_view where) {
  std::string w = where.empty() ? "reward config" : std::string(where);
  require_object(config, w);
  reject_unknown_keys(config, {"rewards", "on_skip", "normalize", "comment"}, w);
  SkipPolicy default_skip = skip_policy(get_optional<std::string>(config, "on_skip", w, "skip"),
                                        json_where(w, "on_skip"));
  bool normalize = get_optional<bool>(config, "normalize", w, false);
  R1_CHECK(config.contains("rewards") && config["rewards"].is_array(),
           "{}: 'rewards' must be an array of {{\"type\": ..., \"weight\": ...}}", w);
  std::vector<Component> comps;
  const Json& list = config["rewards"];
  for (size_t i = 0; i < list.size(); ++i) {
    std::string cw = json_where(json_where(w, "rewards"), i);
    const Json& c = list[i];
    require_object(c, cw);
    reject_unknown_keys(
        c, {"type", "name", "weight", "options", "gate", "gate_threshold", "on_skip", "comment"},
        cw);
    Component comp;
    comp.type = get_required<std::string>(c, "type", cw);
    comp.name = get_optional<std::string>(c, "name", cw, comp.type);
    comp.weight = get_optional<double>(c, "weight", cw, 1.0);
    comp.gate = get_optional<std::string>(c, "gate", cw, "");
    comp.gate_threshold = get_optional<double>(c, "gate_threshold", cw, 1.0);
    comp.on_skip = c.contains("on_skip") ? skip_policy(get_required<std::string>(c, "on_skip", cw),
                                                       json_where(cw, "on_skip"))
                                         : default_skip;
    Json options = c.contains("options") ? c["options"] : Json::object();
    if (!options.is_null()) require_object(options, json_where(cw, "options"));
    comp.reward = make_reward(comp.type, options, json_where(cw, "options"));
    comps.push_back(std::move(comp));
  }
  return std::make_unique<ComposedReward>(std::move(comps), normalize, w);
}

RewardResult ComposedReward::score(const RewardInput& in) const {
  std::map<std::string, RewardResult> results;
  RewardInput sub = in;
  sub.earlier = &results;
  for (const auto& c : components_) {
    RewardResult r;
    try {
      r = c.reward->score(sub);
    } catch (const std::exception& e) {  // rewards do not throw; keep the promise if one does
      r = reward_error(std::string("threw: ") + e.what());
    }
    results.emplace(c.name, std::move(r));
  }

  RewardResult out;
  Json per = Json::array();
  double total_w = 0, ok_w = 0, sum = 0;
  std::string skip_reason, error_reason;
  for (const auto& c : components_) {
    const RewardResult& r = results.at(c.name);
    total_w += c.weight;
    RewardStatus status = r.status;
    std::string reason = r.reason;
    bool gated = false;
    if (!c.gate.empty() && status == RewardStatus::ok) {
      const RewardResult& g = results.at(c.gate);
      if (g.status == RewardStatus::skip) {
        status = RewardStatus::skip;
        reason = "gate '" + c.gate + "' skipped: " + g.reason;
      } else if (g.status == RewardStatus::error) {
        status = RewardStatus::error;
        reason = "gate '" + c.gate + "' failed: " + g.reason;
      } else {
        gated = !(g.score >= c.gate_threshold);
      }
    }
    double effective = status == RewardStatus::ok && !gated ? r.score : 0.0;
    Json pj = {{"name", c.name},     {"type", c.type},
               {"weight", c.weight}, {"status", reward_status_name(status)},
               {"score", r.score},   {"effective", effective}};
    if (gated) pj["gated"] = true;
    if (!reason.empty()) pj["reason"] = reason;
    if (!r.details.is_null()) pj["details"] = r.details;
    per.push_back(std::move(pj));
    if (status == RewardStatus::error) {
      if (error_reason.empty()) error_reason = c.name + ": " + reason;
      continue;
    }
    if (status == RewardStatus::skip) {
      if (c.on_skip == SkipPolicy::skip && skip_reason.empty())
        skip_reason = c.name + " skipped: " + reason;
      continue;
    }
    out.components[c.name] = effective;
    ok_w += c.weight;
    sum += c.weight * effective;
  }
  out.details = {{"components", std::move(per)}};
  if (!error_reason.empty()) {
    out.status = RewardStatus::error;
    out.reason = error_reason;
    return out;
  }
  if (!skip_reason.empty()) {
    out.status = RewardStatus::skip;
    out.reason = skip_reason;
    return out;
  }
  if (ok_w <= 0) {
    out.status = RewardStatus::skip;
    out.reason = "every weighted component skipped";
    return out;
  }
  // Renormalised: the components left carry the whole weight.
  double score = sum * (total_w / ok_w);
  if (normalize_) score /= total_w;
  out.score = score;
  return out;
}

std::unique_ptr<ComposedReward> load_reward_config(const std::string& path) {
  return ComposedReward::from_json(read_json_file(path), path);
}

}  // namespace r1kit::rewards

// Math accuracy reward (see accuracy.h).
#include "rewards/accuracy.h"

#include "core/error.h"

namespace r1kit::rewards {
namespace {

ExtractOptions extract_from_json(const Json& j, std::string_view where, ExtractOptions o) {
  reject_unknown_keys(j,
                      {"answer_tag", "boxed", "gsm8k_hashes", "final_answer_phrase", "answer_colon",
                       "last_number", "whole_text", "max_input_bytes", "max_candidates"},
                      where);
  o.answer_tag = get_optional<bool>(j, "answer_tag", where, o.answer_tag);
  o.boxed = get_optional<bool>(j, "boxed", where, o.boxed);
  o.gsm8k_hashes = get_optional<bool>(j, "gsm8k_hashes", where, o.gsm8k_hashes);
  o.final_answer_phrase =
      get_optional<bool>(j, "final_answer_phrase", where, o.final_answer_phrase);
  o.answer_colon = get_optional<bool>(j, "answer_colon", where, o.answer_colon);
  o.last_number = get_optional<bool>(j, "last_number", where, o.last_number);
  o.whole_text = get_optional<bool>(j, "whole_text", where, o.whole_text);
  o.max_input_bytes = get_optional<uint64_t>(j, "max_input_bytes", where, o.max_input_bytes);
  o.max_candidates = get_optional<uint64_t>(j, "max_candidates", where, o.max_candidates);
  return o;
}

}  // namespace

AccuracyOptions AccuracyOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j,
                      {"gold_fields", "mode", "rel_tol", "time_budget_s", "pred_extract",
                       "gold_extract", "strip_units", "percent_as_fraction"},
                      where);
  AccuracyOptions o;
  o.gold_fields = get_optional<std::vector<std::string>>(j, "gold_fields", where, o.gold_fields);
  R1_CHECK(!o.gold_fields.empty(), "{}: gold_fields must name at least one field", where);
  std::string mode = get_optional<std::string>(j, "mode", where, "math");
  auto m = verify_mode_from_name(mode);
  R1_CHECK(m.has_value() && *m != VerifyMode::countdown,
           "{}: mode '{}': expected math or gsm8k (countdown: use the countdown reward)", where,
           mode);
  o.verify.mode = *m;
  o.verify.rel_tol = get_optional<double>(j, "rel_tol", where, o.verify.rel_tol);
  o.verify.time_budget_s = get_optional<double>(j, "time_budget_s", where, o.verify.time_budget_s);
  R1_CHECK(o.verify.time_budget_s > 0, "{}: time_budget_s must be positive", where);
  if (j.contains("pred_extract"))
    o.verify.pred_extract = extract_from_json(j["pred_extract"], json_where(where, "pred_extract"),
                                              o.verify.pred_extract);
  if (j.contains("gold_extract"))
    o.verify.gold_extract = extract_from_json(j["gold_extract"], json_where(where, "gold_extract"),
                                              o.verify.gold_extract);
  o.verify.normalize.strip_units =
      get_optional<bool>(j, "strip_units", where, o.verify.normalize.strip_units);
  o.verify.normalize.percent_as_fraction =
      get_optional<bool>(j, "percent_as_fraction", where, o.verify.normalize.percent_as_fraction);
  return o;
}

RewardResult AccuracyReward::score(const RewardInput& in) const {
  std::string field;
  auto gold = reference_text(in.reference, opts_.gold_fields, &field);
  if (!gold) {
    std::string names;
    for (const auto& f : opts_.gold_fields) names += (names.empty() ? "'" : ", '") + f + "'";
    return reward_skip(field.empty() ? "no gold answer in the reference (looked for " + names + ")"
                                     : "reference field '" + field + "' is not text");
  }
  VerifyResult v;
  try {
    // verify() serialises its GiNaC work itself (math_verify.h); rewards that do not touch
    // GiNaC (code, format, ...) still run in parallel.
    v = verify(*gold, in.completion, opts_.verify);
  } catch (const std::exception& e) {  // verify() promises not to throw; report if it does
    return reward_error(std::string("verifier failed: ") + e.what());
  }
  RewardResult r;
  switch (v.verdict) {
    case Verdict::correct:
      r = reward_ok(1.0);
      break;
    case Verdict::incorrect:  // the verifier's reason may quote model output: clip to UTF-8
      r = reward_ok(0.0, utf8_clip(v.reason));
      break;
    case Verdict::skip:
      r = reward_skip(v.reason.empty() ? "the verifier skipped this gold" : utf8_clip(v.reason));
      break;
  }
  r.details = {{"gold_field", field},
               {"verdict", verdict_name(v.verdict)},
               {"gold_parsed", utf8_clip(v.gold_parsed, 512)},
               {"pred_parsed", utf8_clip(v.pred_parsed, 512)}};
  return r;
}

}  // namespace r1kit::rewards

// Length shaping rewards (see length.h).
#include "rewards/length.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace r1kit::rewards {
namespace {

LengthUnit unit_from_json(const Json& j, std::string_view where) {
  std::string u = get_optional<std::string>(j, "unit", where, "tokens");
  if (u == "tokens") return LengthUnit::tokens;
  if (u == "chars") return LengthUnit::chars;
  if (u == "bytes") return LengthUnit::bytes;
  R1_THROW("{}: unit '{}': expected tokens, chars or bytes", where, u);
}

const char* unit_name(LengthUnit u) {
  switch (u) {
    case LengthUnit::tokens:
      return "tokens";
    case LengthUnit::chars:
      return "chars";
    case LengthUnit::bytes:
      return "bytes";
  }
  return "tokens";
}

// Code points: every byte that does not continue a sequence (ill-formed bytes count as one).
size_t count_chars(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (uint8_t(c) & 0xC0) != 0x80;
  return n;
}

Json length_details(size_t len, LengthUnit used) {
  return {{"length", len}, {"length_unit", unit_name(used)}};
}

}  // namespace

size_t completion_length(const RewardInput& in, LengthUnit unit, LengthUnit* used_unit) {
  if (unit == LengthUnit::tokens && in.completion_tokens > 0) {
    *used_unit = LengthUnit::tokens;
    return in.completion_tokens;
  }
  if (unit == LengthUnit::bytes) {
    *used_unit = LengthUnit::bytes;
    return in.completion.size();
  }
  *used_unit = LengthUnit::chars;
  return count_chars(in.completion);
}

double soft_overlong_penalty(size_t length, size_t max_length, size_t cache_length) {
  size_t expected = max_length - cache_length;  // L_max - L_cache
  if (length <= expected) return 0.0;
  if (length > max_length) return -1.0;
  return (double(expected) - double(length)) / double(cache_length);
}

SoftOverlongOptions SoftOverlongOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j, {"max_length", "cache_length", "scale", "unit"}, where);
  SoftOverlongOptions o;
  o.max_length = get_optional<uint64_t>(j, "max_length", where, o.max_length);
  o.cache_length = get_optional<uint64_t>(j, "cache_length", where, o.cache_length);
  o.scale = get_optional<double>(j, "scale", where, o.scale);
  o.unit = unit_from_json(j, where);
  R1_CHECK(o.cache_length > 0 && o.cache_length <= o.max_length,
           "{}: need 0 < cache_length ({}) <= max_length ({})", where, o.cache_length,
           o.max_length);
  return o;
}

SoftOverlongReward::SoftOverlongReward(SoftOverlongOptions opts) : opts_(opts) {
  R1_CHECK(opts_.cache_length > 0 && opts_.cache_length <= opts_.max_length,
           "[soft_overlong] need 0 < cache_length <= max_length");
}

RewardResult SoftOverlongReward::score(const RewardInput& in) const {
  LengthUnit used;
  size_t len = completion_length(in, opts_.unit, &used);
  RewardResult r =
      reward_ok(opts_.scale * soft_overlong_penalty(len, opts_.max_length, opts_.cache_length));
  r.details = length_details(len, used);
  return r;
}

CosineLengthOptions CosineLengthOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(
      j,
      {"min_value_wrong", "max_value_wrong", "min_value_correct", "max_value_correct", "max_length",
       "exceed_value", "correct_from", "correct_field", "correct_threshold", "unit"},
      where);
  CosineLengthOptions o;
  o.min_value_wrong = get_optional<double>(j, "min_value_wrong", where, o.min_value_wrong);
  o.max_value_wrong = get_optional<double>(j, "max_value_wrong", where, o.max_value_wrong);
  o.min_value_correct = get_optional<double>(j, "min_value_correct", where, o.min_value_correct);
  o.max_value_correct = get_optional<double>(j, "max_value_correct", where, o.max_value_correct);
  o.max_length = get_optional<uint64_t>(j, "max_length", where, o.max_length);
  o.exceed_value = get_optional<double>(j, "exceed_value", where);
  o.correct_from = get_optional<std::string>(j, "correct_from", where, o.correct_from);
  o.correct_field = get_optional<std::string>(j, "correct_field", where, o.correct_field);
  o.correct_threshold = get_optional<double>(j, "correct_threshold", where, o.correct_threshold);
  o.unit = unit_from_json(j, where);
  R1_CHECK(o.max_length > 0, "{}: max_length must be positive", where);
  return o;
}

double cosine_length_value(size_t length, bool correct, const CosineLengthOptions& o) {
  if (length > o.max_length && o.exceed_value) return *o.exceed_value;
  double t = double(std::min(length, o.max_length)) / double(o.max_length);
  double hi = correct ? o.max_value_correct : o.min_value_wrong;  // at length 0
  double lo = correct ? o.min_value_correct : o.max_value_wrong;  // at max_length
  return lo + 0.5 * (hi - lo) * (1.0 + std::cos(std::numbers::pi * t));
}

CosineLengthReward::CosineLengthReward(CosineLengthOptions opts) : opts_(std::move(opts)) {
  R1_CHECK(opts_.max_length > 0, "[cosine_length] max_length must be positive");
}

RewardResult CosineLengthReward::score(const RewardInput& in) const {
  bool correct = false;
  std::string source;
  const RewardResult* dep = nullptr;
  if (in.earlier && !opts_.correct_from.empty()) {
    auto it = in.earlier->find(opts_.correct_from);
    if (it != in.earlier->end()) dep = &it->second;
  }
  if (dep) {
    if (dep->status == RewardStatus::skip)
      return reward_skip("'" + opts_.correct_from + "' skipped: " + dep->reason);
    if (dep->status == RewardStatus::error)
      return reward_error("'" + opts_.correct_from + "' failed: " + dep->reason);
    correct = dep->score >= opts_.correct_threshold;
    source = opts_.correct_from;
  } else if (in.reference.is_object() && !opts_.correct_field.empty() &&
             in.reference.contains(opts_.correct_field) &&
             in.reference[opts_.correct_field].is_boolean()) {
    correct = in.reference[opts_.correct_field].get<bool>();
    source = opts_.correct_field;
  } else {
    return reward_skip("no correctness: no earlier component '" + opts_.correct_from +
                       "' and no boolean reference field '" + opts_.correct_field + "'");
  }
  LengthUnit used;
  size_t len = completion_length(in, opts_.unit, &used);
  RewardResult r = reward_ok(cosine_length_value(len, correct, opts_));
  r.details = length_details(len, used);
  r.details["correct"] = correct;
  r.details["correct_from"] = source;
  return r;
}

}  // namespace r1kit::rewards

// RewardResult helpers shared by every reward.
#include "rewards/reward.h"

#include <algorithm>

namespace r1kit::rewards {

const char* reward_status_name(RewardStatus s) {
  switch (s) {
    case RewardStatus::ok:
      return "ok";
    case RewardStatus::skip:
      return "skip";
    case RewardStatus::error:
      return "error";
  }
  return "error";
}

Json to_json(const RewardResult& r) {
  Json j = Json::object();
  j["score"] = r.score;
  j["status"] = reward_status_name(r.status);
  if (!r.reason.empty()) j["reason"] = r.reason;
  if (!r.components.empty()) j["components"] = r.components;
  if (!r.details.is_null()) j["details"] = r.details;
  return j;
}

RewardResult reward_ok(double score, std::string reason) {
  RewardResult r;
  r.score = score;
  r.reason = std::move(reason);
  return r;
}

RewardResult reward_skip(std::string reason) {
  RewardResult r;
  r.status = RewardStatus::skip;
  r.reason = std::move(reason);
  return r;
}

RewardResult reward_error(std::string reason) {
  RewardResult r;
  r.status = RewardStatus::error;
  r.reason = std::move(reason);
  return r;
}

std::optional<std::string> reference_text(const Json& reference,
                                          const std::vector<std::string>& fields,
                                          std::string* used) {
  if (!reference.is_object()) return std::nullopt;
  for (const auto& f : fields) {
    auto it = reference.find(f);
    if (it == reference.end() || it->is_null()) continue;
    if (used) *used = f;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number()) return it->dump();
    return std::nullopt;  // present but not text: unusable
  }
  return std::nullopt;
}

std::string utf8_clip(std::string_view s, size_t max_bytes) {
  std::string out;
  while (!s.empty() && out.size() < max_bytes) {
    size_t bad = utf8_invalid_offset(s);
    size_t good = std::min(bad, s.size());
    if (out.size() + good > max_bytes) {
      // Cut at a code point boundary inside the valid run.
      size_t n = max_bytes - out.size();
      while (n > 0 && (uint8_t(s[n]) & 0xC0) == 0x80) --n;
      out.append(s.substr(0, n));
      return out;
    }
    out.append(s.substr(0, good));
    if (bad == std::string_view::npos) break;
    if (out.size() + 3 > max_bytes) break;
    out += "\xEF\xBF\xBD";
    s.remove_prefix(bad + 1);
  }
  return out;
}

}  // namespace r1kit::rewards

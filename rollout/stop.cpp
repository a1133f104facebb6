// Stop-string matching on streamed text (rollout/stop.h).
#include "rollout/stop.h"

#include <algorithm>

#include "core/error.h"
#include "policy/pretokenize.h"

namespace r1kit::rollout {

StopMatcher::StopMatcher(std::vector<std::string> stops, bool include_stop)
    : stops_(std::move(stops)), include_stop_(include_stop) {
  for (size_t i = 0; i < stops_.size(); ++i) {
    R1_CHECK(!stops_[i].empty(), "[stop] stop string {} is empty", i);
    max_len_ = std::max(max_len_, stops_[i].size());
  }
}

std::string StopMatcher::feed(std::string_view piece) {
  R1_CHECK(!stopped() && !finished_, "[stop] feed after the completion ended ({})",
           stopped() ? "a stop string matched" : "finish() was called");
  held_.append(piece);
  // Every match that ended before this piece was found by an earlier call, so any match in held_
  // ends inside the piece. The first to end wins; at the same end, the earliest start.
  std::optional<StopMatch> best;
  size_t best_end = 0;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = held_.find(stops_[i]);
    if (pos == std::string::npos) continue;
    const size_t end = pos + stops_[i].size();
    if (!best || end < best_end || (end == best_end && pos < best->offset)) {
      best = StopMatch{i, pos};
      best_end = end;
    }
  }
  std::string out;
  if (best) {
    out = held_.substr(0, include_stop_ ? best_end : best->offset);
    match_ = StopMatch{best->stop_index, consumed_ + best->offset};
    held_.clear();
  } else {
    // Hold back the longest suffix that is a proper prefix of some stop string, and any
    // incomplete UTF-8 character at the end.
    size_t hold = 0;
    for (size_t k = std::min(held_.size(), max_len_ == 0 ? 0 : max_len_ - 1); k > 0 && !hold; --k) {
      const std::string_view tail = std::string_view(held_).substr(held_.size() - k);
      for (const auto& s : stops_)
        if (s.size() > k && std::string_view(s).substr(0, k) == tail) hold = k;
    }
    hold = std::max(hold, policy::utf8_incomplete_tail(held_));
    out = held_.substr(0, held_.size() - hold);
    held_.erase(0, held_.size() - hold);
  }
  consumed_ += out.size();
  text_ += out;
  return out;
}

std::string StopMatcher::finish() {
  if (stopped() || finished_) return {};
  finished_ = true;
  std::string out = std::move(held_);
  held_.clear();
  consumed_ += out.size();
  text_ += out;
  return out;
}

}  // namespace r1kit::rollout

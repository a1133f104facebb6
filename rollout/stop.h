// Stop strings matched on streamed text across token boundaries. The engine feeds each piece of
// decoded text (policy::StreamDecoder::push output) and learns (1) the text safe to emit now, which
// holds back any suffix that could still begin a stop string, and (2) whether a stop string has
// appeared; generation ends at the token whose piece completed it.
//
// Which match wins: the one that ends first in the text, and among those ending at the same byte,
// the one that starts first (the longest). This depends only on the text, never on how it was cut
// into pieces. (vLLM checks its stop strings in list order each step, so there the list order
// decides between matches completed by the same token.)
// By default the completion text ends right before the stop string, as in vLLM and HF; with
// include_stop it ends right after it. Matching is on bytes; a piece that ends inside a UTF-8
// character is held back until the character completes, so emitted text never ends mid-character.
// Work per piece is O((piece + longest stop) * number of stops * longest stop); the held-back tail
// is at most max(longest stop - 1, 3) bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r1kit::rollout {

struct StopMatch {
  size_t stop_index = 0;  // into the stop strings given to the matcher
  size_t offset = 0;      // byte offset of the stop string in the full (untruncated) text
};

class StopMatcher {
 public:
  // Throws r1kit::Error for an empty stop string. No stop strings: all text is emitted at once.
  explicit StopMatcher(std::vector<std::string> stops, bool include_stop = false);

  // Appends a piece; returns the text that became safe to emit (possibly empty). After a match it
  // returns the rest of the completion text and stopped() is true. Throws when already stopped.
  std::string feed(std::string_view piece);
  // End of generation without a stop string (EOS, stop token, length): returns the held-back text.
  std::string finish();

  bool stopped() const { return match_.has_value(); }
  const std::optional<StopMatch>& match() const { return match_; }
  // Everything emitted so far: the completion text once stopped() or finish() was called.
  const std::string& text() const { return text_; }
  // Bytes fed but not yet emitted.
  std::string_view held() const { return held_; }

 private:
  std::vector<std::string> stops_;
  bool include_stop_;
  size_t max_len_ = 0;
  std::string held_;
  std::string text_;
  size_t consumed_ = 0;  // bytes of the full text before held_
  std::optional<StopMatch> match_;
  bool finished_ = false;
};

}  // namespace r1kit::rollout

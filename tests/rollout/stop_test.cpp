// Stop strings on streamed text (rollout/stop.h): matches split across pieces, overlapping
// prefixes, several stop strings, the held-back tail, UTF-8 hold-back, and independence from how
// the text is cut into pieces, checked against a brute-force reference.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "rollout/stop.h"
#include "tests/common/test_util.h"

namespace r1kit::rollout {
namespace {

using r1kit::testing::expect_error_contains;

struct StreamRun {
  std::vector<std::string> emitted;  // what each feed returned
  std::string text;
  std::optional<StopMatch> match;
  size_t stopped_at = 0;  // index of the piece that completed the match
};

StreamRun run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces,
              bool include_stop = false) {
  StopMatcher m(stops, include_stop);
  StreamRun r;
  std::string joined;
  for (size_t i = 0; i < pieces.size() && !m.stopped(); ++i) {
    r.emitted.push_back(m.feed(pieces[i]));
    joined += r.emitted.back();
    r.stopped_at = i;
  }
  joined += m.finish();
  EXPECT_EQ(joined, m.text());  // the returned pieces add up to text()
  r.text = m.text();
  r.match = m.match();
  return r;
}

TEST(Stop, NoStopStringsEmitsEverythingAtOnce) {
  const StreamRun r = run({}, {"Hello", ", ", "world"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"Hello", ", ", "world"}));
  EXPECT_EQ(r.text, "Hello, world");
  EXPECT_FALSE(r.match);
}

TEST(Stop, NoMatchEmitsAllByTheEnd) {
  StopMatcher m({"</answer>"});
  EXPECT_EQ(m.feed("x </an"), "x ");
  EXPECT_EQ(m.held(), "</an");
  EXPECT_EQ(m.feed("swer"), "");
  EXPECT_EQ(m.feed("!"), "</answer!");  // "</answer!" can no longer become a stop string
  EXPECT_EQ(m.feed(" <"), " ");
  EXPECT_EQ(m.finish(), "<");
  EXPECT_EQ(m.text(), "x </answer! <");
  EXPECT_FALSE(m.stopped());
}

TEST(Stop, SplitAcrossTwoPieces) {
  const StreamRun r = run({"</answer>"}, {"The answer is 4</ans", "wer> and more", "never fed"});
  ASSERT_TRUE(r.match);
  EXPECT_EQ(r.match->stop_index, 0u);
  EXPECT_EQ(r.match->offset, 15u);
  EXPECT_EQ(r.stopped_at, 1u);
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"The answer is 4", ""}));
  EXPECT_EQ(r.text, "The answer is 4");
}

TEST(Stop, SplitAcrossThreePieces) {
  const StreamRun r = run({"STOP"}, {"abcS", "T", "OPxyz"});
  ASSERT_TRUE(r.match);
  EXPECT_EQ(r.match->offset, 3u);
  EXPECT_EQ(r.stopped_at, 2u);
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"abc", "", ""}));
  EXPECT_EQ(r.text, "abc");
  // A false start in the middle piece: "ST" then "x" releases the held bytes.
  const StreamRun f = run({"STOP"}, {"abcS", "T", "xSTO", "P!"});
  EXPECT_EQ(f.emitted, (std::vector<std::string>{"abc", "", "STx", ""}));
  EXPECT_EQ(f.text, "abcSTx");
  EXPECT_EQ(f.match->offset, 6u);
}

TEST(Stop, OverlappingPrefixes) {
  // "ab" and "aab" both end at byte 4 of "xaab": the earlier start (the longer one) wins.
  StreamRun r = run({"ab", "aab"}, {"xa", "a", "b"});
  ASSERT_TRUE(r.match);
  EXPECT_EQ(r.match->stop_index, 1u);
  EXPECT_EQ(r.match->offset, 1u);
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"x", "", ""}));
  EXPECT_EQ(r.text, "x");
  // A stop string that overlaps itself: "aab" in "aaab" starts at 1, not at the first 'a'.
  r = run({"aab"}, {"a", "a", "a", "b"});
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"", "", "a", ""}));
  EXPECT_EQ(r.text, "a");
  EXPECT_EQ(r.match->offset, 1u);
  r = run({"aab"}, {"a", "a", "a", "c"});
  EXPECT_FALSE(r.match);
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"", "", "a", "aac"}));
}

TEST(Stop, SeveralStopStringsTheFirstToEndWins) {
  // "lo w" ends (byte 7) before "world" (byte 11), whatever the list order.
  for (const auto& stops :
       {std::vector<std::string>{"world", "lo w"}, std::vector<std::string>{"lo w", "world"}}) {
    const StreamRun r = run(stops, {"hello world"});
    ASSERT_TRUE(r.match);
    EXPECT_EQ(stops[r.match->stop_index], "lo w");
    EXPECT_EQ(r.text, "hel");
  }
  // An earlier start does not win when the match ends later: streaming one byte at a time would
  // have stopped at "bc" first.
  EXPECT_EQ(run({"abcd", "bc"}, {"abcd"}).text, "a");
  EXPECT_EQ(run({"abcd", "bc"}, {"a", "b", "c", "d"}).text, "a");
}

TEST(Stop, IncludeStopKeepsTheStopStringAndDropsTheRest) {
  const StreamRun r =
      run({"</answer>"}, {"<answer>4</ans", "wer>\n\nextra"}, /*include_stop=*/true);
  EXPECT_EQ(r.text, "<answer>4</answer>");
  EXPECT_EQ(r.match->offset, 9u);
  EXPECT_EQ(r.emitted, (std::vector<std::string>{"<answer>4", "</answer>"}));
}

TEST(Stop, HoldsBackIncompleteUtf8) {
  StopMatcher m({});
  EXPECT_EQ(m.feed("caf\xC3"), "caf");
  EXPECT_EQ(m.feed("\xA9!"), "\xC3\xA9!");
  // A multi-byte stop string split inside a character: "。" is E3 80 82.
  const StreamRun r =
      run({"\xE3\x80\x82"}, {"\xE4\xBD\xA0\xE5", "\xA5\xBD\xE3\x80", "\x82\xE5\x90\x97"});
  EXPECT_EQ(r.text, "\xE4\xBD\xA0\xE5\xA5\xBD");  // 你好
  EXPECT_EQ(r.emitted[0], "\xE4\xBD\xA0");
  EXPECT_EQ(r.match->offset, 6u);
}

TEST(Stop, Errors) {
  expect_error_contains([] { StopMatcher({"a", ""}); }, {"[stop] stop string 1 is empty"});
  StopMatcher m({"x"});
  m.feed("axb");
  ASSERT_TRUE(m.stopped());
  expect_error_contains([&] { m.feed("c"); }, {"feed after the completion ended"});
  EXPECT_EQ(m.finish(), "");
  StopMatcher done({"x"});
  done.finish();
  expect_error_contains([&] { done.feed("c"); }, {"finish() was called"});
}

// The first match by (end, start), by brute force over the whole text.
std::optional<StopMatch> reference(const std::vector<std::string>& stops, const std::string& t) {
  for (size_t end = 1; end <= t.size(); ++end)
    for (size_t start = 0; start < end; ++start)
      for (size_t i = 0; i < stops.size(); ++i)
        if (t.compare(start, end - start, stops[i]) == 0) return StopMatch{i, start};
  return std::nullopt;
}

TEST(Stop, IndependentOfHowTheTextIsCut) {
  const std::vector<std::string> stops = {"ab", "abc", "cab", "bb", "cccc"};
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string t;
    const size_t len = rng() % 24;
    for (size_t i = 0; i < len; ++i) t += "abc"[rng() % 3];
    std::vector<std::string> pieces;
    for (size_t i = 0; i < t.size();) {
      const size_t k = std::min(t.size() - i, static_cast<size_t>(rng() % 5));
      pieces.push_back(t.substr(i, k));  // empty pieces included (a token with no text yet)
      i += k;
    }
    const auto want = reference(stops, t);
    const StreamRun r = run(stops, pieces);
    SCOPED_TRACE(t);
    ASSERT_EQ(r.match.has_value(), want.has_value());
    if (want) {
      EXPECT_EQ(r.match->stop_index, want->stop_index);
      EXPECT_EQ(r.match->offset, want->offset);
      EXPECT_EQ(r.text, t.substr(0, want->offset));
    } else {
      EXPECT_EQ(r.text, t);
    }
  }
}

TEST(Stop, LongStreamKeepsTheHeldTailShort) {
  const std::string stop = "<|end_of_a_rather_long_stop_string|>";
  StopMatcher m({stop});
  std::string fed;
  for (int i = 0; i < 50000; ++i) {
    const std::string piece = (i % 7 == 0) ? "<|end_of_a" : "x";  // many false starts
    fed += piece;
    m.feed(piece);
    ASSERT_LT(m.held().size(), stop.size());
  }
  m.feed(stop.substr(0, 10));
  m.feed(stop.substr(10));
  ASSERT_TRUE(m.stopped());
  EXPECT_EQ(m.text(), fed);
  EXPECT_EQ(m.match()->offset, fed.size());
}

}  // namespace
}  // namespace r1kit::rollout

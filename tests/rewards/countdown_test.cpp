// Countdown (rewards/countdown.h): on the shared cd3 test set, a small exact search builds a
// correct expression for every problem and the checker accepts it, while wrong variants (another
// value, a number left out, a number used twice, division by zero) are rejected; plus the gold
// forms, the accepted spellings and the bounds.
#include <gtest/gtest.h>

#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "core/json.h"
#include "rewards/countdown.h"

namespace r1kit::rewards {
namespace {

const std::string kFile = R1KIT_SHARED_DIR "/data/math/countdown/countdown_cd3_test.jsonl";

// A small exact rational for the test's own search (the numbers are below 1000).
struct Frac {
  int64_t n, d;
};
std::optional<Frac> apply(Frac x, char op, Frac y) {
  Frac r;
  switch (op) {
    case '+':
      r = {x.n * y.d + y.n * x.d, x.d * y.d};
      break;
    case '-':
      r = {x.n * y.d - y.n * x.d, x.d * y.d};
      break;
    case '*':
      r = {x.n * y.n, x.d * y.d};
      break;
    default:
      if (y.n == 0) return std::nullopt;
      r = {x.n * y.d, x.d * y.n};
  }
  if (r.d < 0) r = {-r.n, -r.d};
  int64_t g = std::gcd(r.n, r.d);
  return Frac{r.n / g, r.d / g};
}

struct Found {
  std::string expr;
  Frac value;
};

// Every expression over the three numbers in the two tree shapes, with its value.
std::vector<Found> all_expressions(std::vector<int64_t> v) {
  std::vector<Found> out;
  std::sort(v.begin(), v.end());
  const std::string ops = "+-*/";
  do {
    for (char o1 : ops)
      for (char o2 : ops) {
        Frac a{v[0], 1}, b{v[1], 1}, c{v[2], 1};
        if (auto x = apply(a, o1, b))
          if (auto y = apply(*x, o2, c))
            out.push_back({fmt::format("({} {} {}) {} {}", v[0], o1, v[1], o2, v[2]), *y});
        if (auto x = apply(b, o2, c))
          if (auto y = apply(a, o1, *x))
            out.push_back({fmt::format("{} {} ({} {} {})", v[0], o1, v[1], o2, v[2]), *y});
      }
  } while (std::next_permutation(v.begin(), v.end()));
  return out;
}

TEST(Countdown, SharedTestSetCorrectAndWrong) {
  auto rows = read_jsonl_file(kFile);
  ASSERT_EQ(rows.size(), 256u);
  size_t solved = 0, wrong_rejected = 0;
  for (const auto& row : rows) {
    std::string why;
    auto p = countdown_problem_from_json(row, &why);
    ASSERT_TRUE(p.has_value()) << row.dump() << ": " << why;
    ASSERT_EQ(p->numbers.size(), 3u);
    auto exprs = all_expressions(p->numbers);
    const Found* good = nullptr;
    const Found* bad = nullptr;
    for (const auto& f : exprs) {
      bool hit = f.value.d == 1 && f.value.n == p->target;
      if (hit && !good) good = &f;
      if (!hit && !bad) bad = &f;
    }
    ASSERT_NE(good, nullptr) << row.dump();
    auto ok =
        check_countdown(*p, fmt::format("<think>search</think>\n<answer>{}</answer>", good->expr));
    EXPECT_TRUE(ok.correct) << good->expr << ": " << ok.reason;
    EXPECT_EQ(ok.value, std::to_string(p->target));
    solved += ok.correct;
    // "= target" is accepted, a wrong claimed value is not.
    std::string t = std::to_string(p->target);
    EXPECT_TRUE(
        check_countdown(*p, fmt::format("<answer>{} = {}</answer>", good->expr, t)).correct);
    EXPECT_FALSE(
        check_countdown(*p, fmt::format("<answer>{} = {}1</answer>", good->expr, t)).correct);
    // Wrong: another value; a number left out; a number used twice (value unchanged).
    ASSERT_NE(bad, nullptr);
    auto w1 = check_countdown(*p, fmt::format("<answer>{}</answer>", bad->expr));
    auto n = [&](int i) { return std::to_string(p->numbers[i]); };
    auto w2 = check_countdown(*p, fmt::format("<answer>{} + {}</answer>", n(0), n(1)));
    auto w3 =
        check_countdown(*p, fmt::format("<answer>{} + {} - {}</answer>", good->expr, n(2), n(2)));
    EXPECT_FALSE(w1.correct) << bad->expr;
    EXPECT_TRUE(w1.well_formed);
    EXPECT_FALSE(w2.correct);
    EXPECT_NE(w2.reason.find("does not use"), std::string::npos) << w2.reason;
    EXPECT_FALSE(w3.correct);
    EXPECT_NE(w3.reason.find("more often"), std::string::npos) << w3.reason;
    // Division by zero is incorrect, not a crash.
    auto z = check_countdown(*p, fmt::format("<answer>{} / ({} - {})</answer>", n(0), n(1), n(1)));
    EXPECT_FALSE(z.correct);
    EXPECT_TRUE(z.well_formed);
    wrong_rejected += !w1.correct && !w2.correct && !w3.correct && !z.correct;
  }
  EXPECT_EQ(solved, 256u);
  EXPECT_EQ(wrong_rejected, 256u);
}

TEST(Countdown, ProblemForms) {
  std::string why;
  auto a = countdown_problem_from_json(Json{{"numbers", {3, 4, 5}}, {"target", 23}}, &why);
  auto b = countdown_problem_from_json(Json{{"nums", {3, 4, 5}}, {"target", "23"}}, &why);
  auto c = countdown_problem_from_text("3,4,5=23", &why);
  auto d = countdown_problem_from_text("3 4 5 -> 23", &why);
  auto e = countdown_problem_from_text(R"({"input":"3,4,5","output":"23"})", &why);
  for (const auto& p : {a, b, c, d, e}) {
    ASSERT_TRUE(p.has_value()) << why;
    EXPECT_EQ(p->numbers, (std::vector<int64_t>{3, 4, 5}));
    EXPECT_EQ(p->target, 23);
  }
  EXPECT_FALSE(countdown_problem_from_json(Json{{"numbers", {3, 4}}}, &why));
  EXPECT_FALSE(countdown_problem_from_json(Json{{"numbers", {1.5, 4}}, {"target", 1}}, &why));
  EXPECT_FALSE(countdown_problem_from_text("3,4,x=23", &why));
  EXPECT_FALSE(countdown_problem_from_text("{bad json", &why));
  EXPECT_FALSE(countdown_problem_from_text("no target", &why));
}

TEST(Countdown, SpellingsAndFallbackLine) {
  CountdownProblem p{{3, 4, 5}, 23};
  EXPECT_TRUE(check_countdown(p, "<answer>4 \xC3\x97 5 + 3</answer>").correct);  // ×
  EXPECT_TRUE(check_countdown(p, "<answer>$4 \\times 5 + 3$</answer>").correct);
  EXPECT_TRUE(check_countdown(p, "<answer>\\boxed{4 \\cdot 5 + 3}</answer>").correct);
  CountdownProblem p4{{10, 5, 2}, 4}, p3{{10, 5, 2}, 3};
  EXPECT_TRUE(check_countdown(p4, "<answer>10 \xC3\xB7 5 + 2</answer>").correct);  // ÷
  EXPECT_TRUE(
      check_countdown(p3, "<answer>10 \xE2\x88\x92 5 \xE2\x88\x92 2</answer>").correct);  // −
  EXPECT_FALSE(check_countdown(p, "<answer>4 x 5 + 3</answer>").correct);
  EXPECT_TRUE(check_countdown(p, "so the answer is:\n4*5+3\n").correct);
  EXPECT_TRUE(check_countdown(p, "4*5+3 = 23.").correct);
  auto none = check_countdown(p, "I could not find it");
  EXPECT_FALSE(none.correct);
  EXPECT_FALSE(none.well_formed);
  auto unary = check_countdown(p, "<answer>-3 + 4*5 + 3 + 3</answer>");
  EXPECT_FALSE(unary.correct);
  EXPECT_NE(unary.reason.find("unary"), std::string::npos);
  EXPECT_FALSE(check_countdown(p, "<answer>4.0*5+3</answer>").correct);
  EXPECT_FALSE(check_countdown(p, "<answer>4*5+3 import os</answer>").correct);
  // Fractions along the way are exact: 23 = (3 / 4 + ... ) style expressions.
  CountdownProblem q{{1, 3, 4, 6}, 24};
  auto exact = check_countdown(q, "<answer>6 / (1 - 3 / 4)</answer>");
  EXPECT_TRUE(exact.correct) << exact.reason;
  auto frac = check_countdown(q, "<answer>6 / 4 + 1 + 3</answer>");
  EXPECT_FALSE(frac.correct);
  EXPECT_EQ(frac.value, "11/2");
}

TEST(Countdown, BoundsAndHostileInput) {
  CountdownProblem p{{3, 4, 5}, 23};
  std::string deep(100, '(');
  deep += "3";
  deep += std::string(100, ')');
  auto d = check_countdown(p, fmt::format("<answer>{}+4+5</answer>", deep));
  EXPECT_FALSE(d.correct);
  EXPECT_NE(d.reason.find("deeply"), std::string::npos) << d.reason;
  std::string longexpr = "<answer>";
  for (int i = 0; i < 600; ++i) longexpr += "3+";
  longexpr += "3</answer>";
  EXPECT_FALSE(check_countdown(p, longexpr).correct);
  // Overflow is reported, not undefined behaviour.
  CountdownProblem big{std::vector<int64_t>(20, 999999999999), 1};
  std::string prod = "<answer>";
  for (int i = 0; i < 20; ++i) prod += i ? "*999999999999" : "999999999999";
  prod += "</answer>";
  auto o = check_countdown(big, prod);
  EXPECT_FALSE(o.correct);
  EXPECT_NE(o.reason.find("too large"), std::string::npos) << o.reason;
  EXPECT_FALSE(check_countdown(p, "<answer>\xff\xfe 3+4+5</answer>").correct);
  EXPECT_FALSE(
      check_countdown(p, "<answer>99999999999999999999999999999999999+3</answer>").correct);
}

TEST(Countdown, RewardScoresAndSkips) {
  CountdownReward r;
  Json ref = {{"input", "3,4,5"}, {"output", "23"}};
  EXPECT_EQ(r.score({"", "<answer>4*5+3</answer>", ref}).score, 1.0);
  EXPECT_EQ(r.score({"", "<answer>4*5-3</answer>", ref}).score, 0.0);
  CountdownReward tinyzero(CountdownRewardOptions{0.1});
  EXPECT_DOUBLE_EQ(tinyzero.score({"", "<answer>4*5-3</answer>", ref}).score, 0.1);
  EXPECT_EQ(tinyzero.score({"", "no answer", ref}).score, 0.0);
  auto s = r.score({"", "<answer>4*5+3</answer>", Json{{"gold", "x"}}});
  EXPECT_EQ(s.status, RewardStatus::skip);
}

}  // namespace
}  // namespace r1kit::rewards

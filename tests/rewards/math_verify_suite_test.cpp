// The math verifier against other projects' test suites (tests/shared/data/rewards/): Math-Verify's
// own 269 gold/pred pairs (agreement >= 97%, every disagreement printed and listed in
// docs/MATH_VERIFY.md), its extra and issue cases (rate reported), the original MATH is_equiv
// tests (16/16) and verl's prime math fixtures.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/json.h"
#include "rewards/math_verify.h"

namespace r1kit::rewards {
namespace {

const std::string kData = R1KIT_SHARED_DIR "/data/rewards/";

bool has_type(const Json& config, const char* t) {
  if (!config.contains("match_types")) return false;
  for (const auto& m : config["match_types"]) {
    if (m.get<std::string>() == t) return true;
  }
  return false;
}

// Our options for one Math-Verify row: `config` says which extractors upstream used (latex: boxes
// and math segments; expr: plain numbers too) and its comparison settings.
VerifyOptions options_for(const Json& row) {
  VerifyOptions o;
  const Json& c = row["config"];
  const std::string helper = c.value("helper", "");
  bool latex = true, expr = true;
  if (helper == "compare_strings") {
    latex = has_type(c, "latex");
    expr = has_type(c, "expr");
  }
  o.pred_extract.last_math = latex;
  o.pred_extract.boxed = latex;
  o.pred_extract.last_number = expr;
  o.gold_extract.last_number = expr;
  if (c.contains("precision")) o.float_rounding = c["precision"].get<int>();
  if (c.contains("strict")) o.strict = c["strict"].get<bool>();
  if (c.contains("allow_set_relation_comp")) {
    o.allow_set_relation = c["allow_set_relation_comp"].get<bool>();
  }
  return o;
}

TEST(MathVerifySuite, MathVerifyPairsAgreeAtLeast97Percent) {
  int pairs = 0, agree = 0;
  for (const Json& row : read_jsonl_file(kData + "math_verify_tests.jsonl")) {
    if (!row.contains("gold") || !row["expected"].is_number()) continue;  // extraction-only rows
    ++pairs;
    const std::string gold = row["gold"].get<std::string>();
    const std::string pred = row["pred"].get<std::string>();
    const bool expected = row["expected"].get<int>() == 1;
    const VerifyResult r = verify(gold, pred, options_for(row));
    const bool ours = r.verdict == Verdict::correct;
    if (ours == expected) {
      ++agree;
    } else {
      std::printf(
          "disagree %s:%d (%s) expected %d: gold=[%s] pred=[%.120s] -> %s gold_parsed=[%s] "
          "pred_parsed=[%s] %s\n",
          row["test"].get<std::string>().c_str(), row["lineno"].get<int>(),
          row["file"].get<std::string>().c_str(), expected, gold.substr(0, 120).c_str(),
          pred.c_str(), verdict_name(r.verdict), r.gold_parsed.c_str(), r.pred_parsed.c_str(),
          r.reason.c_str());
    }
  }
  EXPECT_EQ(pairs, 269);
  const double rate = pairs ? static_cast<double>(agree) / pairs : 0;
  std::printf("Math-Verify suite: %d/%d agree (%.1f%%)\n", agree, pairs, 100 * rate);
  EXPECT_GE(rate, 0.97);
}

// The original MATH benchmark's is_equiv tests compare strings in order: ordered lists.
TEST(MathVerifySuite, HendrycksMathEquivalence16of16) {
  int n = 0;
  for (const Json& row : read_jsonl_file(kData + "hendrycks_math_equivalence_tests.jsonl")) {
    ++n;
    VerifyOptions o;
    o.ordered_lists = true;
    const std::string gold = row["gold"].get<std::string>();
    const std::string pred = row["pred"].get<std::string>();
    const VerifyResult r = verify(gold, pred, o);
    EXPECT_EQ(r.verdict == Verdict::correct, row["expected"].get<int>() == 1)
        << row["test"].get<std::string>() << ": " << gold << " vs " << pred << " -> "
        << verdict_name(r.verdict) << " " << r.gold_parsed << " | " << r.pred_parsed << " "
        << r.reason;
  }
  EXPECT_EQ(n, 16);
}

// verl's prime math fixtures are positive examples (verl prints their scores).
TEST(MathVerifySuite, VerlPrimeMathFixturesAreCorrect) {
  int n = 0;
  for (const Json& row : read_jsonl_file(kData + "verl_prime_fixtures.jsonl")) {
    if (row.value("kind", "") != "math") continue;
    ++n;
    const std::string gold = row["gold"].get<std::string>();
    const std::string pred = row["pred"].get<std::string>();
    const VerifyResult r = verify(gold, pred);
    EXPECT_EQ(r.verdict, Verdict::correct) << gold << " vs " << pred << ": " << r.reason;
  }
  EXPECT_EQ(n, 3);
}

// Math-Verify's issue threads: what users asked for ("desired"). Reported, not all asserted:
// several are ambiguous by design; docs/MATH_VERIFY.md explains each.
TEST(MathVerifySuite, MathVerifyIssueCasesReport) {
  int n = 0, as_desired = 0;
  for (const Json& row : read_jsonl_file(kData + "math_verify_issue_cases.jsonl")) {
    if (!row["desired"].is_number() || !row["pred"].is_string()) continue;
    ++n;
    const std::string gold = row["gold"].get<std::string>();
    const std::string pred = row["pred"].get<std::string>();
    const VerifyResult r = verify(gold, pred);
    const bool want = row["desired"].get<int>() == 1;
    const bool ours = r.verdict == Verdict::correct;
    if (ours == want) ++as_desired;
    std::printf("issue %s: %s -> %s (desired %d) %s | %s\n",
                row["issue"].get<std::string>().c_str(),
                ours == want ? "as desired" : "NOT as desired", verdict_name(r.verdict), want,
                r.gold_parsed.substr(0, 80).c_str(), r.pred_parsed.substr(0, 80).c_str());
  }
  std::printf("Math-Verify issue cases: %d/%d as desired\n", as_desired, n);
  EXPECT_GE(n, 10);
  EXPECT_GE(as_desired, n - 2);
}

// The extra file: sympy-level precision checks (mapped to float_rounding), a compare_strings
// row, and latex2sympy2's unit-normalisation cases (normalize_answer).
TEST(MathVerifySuite, MathVerifyExtraCases) {
  int n = 0, ok = 0;
  for (const Json& row : read_jsonl_file(kData + "math_verify_tests_extra.jsonl")) {
    const std::string kind = row.value("kind", "");
    bool pass = false;
    if (kind == "sympy_expr_eq") {
      // Rational(1,3) vs Float(0.333) at float_rounding digits
      auto to_latex = [](std::string s) {
        if (s.rfind("Rational(1,3)", 0) == 0) return "\\frac{1}{3}" + s.substr(13);
        if (s.rfind("Float(", 0) == 0) return s.substr(6, s.size() - 7);
        return s;
      };
      VerifyOptions o;
      o.float_rounding = row["float_rounding"].get<int>();
      o.rel_tol = 1e-12;
      const VerifyResult r = verify(to_latex(row["gold"].get<std::string>()),
                                    to_latex(row["pred"].get<std::string>()), o);
      pass = (r.verdict == Verdict::correct) == (row["expected"].get<int>() == 1);
    } else if (kind == "compare_strings") {
      VerifyOptions o = options_for(row);
      const VerifyResult r =
          verify(row["gold"].get<std::string>(), row["pred"].get<std::string>(), o);
      pass = (r.verdict == Verdict::correct) == (row["expected"].get<int>() == 1);
    } else if (kind == "normalize_latex(units)") {
      pass =
          normalize_answer(row["input"].get<std::string>()) == row["expected"].get<std::string>();
    } else if (kind == "normalize_latex(boxed=all only)") {
      const auto c = extract_answers(row["input"].get<std::string>());
      pass = !c.empty() && c[0].text == row["expected"].get<std::string>();
    } else {
      continue;  // configuration / timeout behaviour of the Python API: not applicable
    }
    ++n;
    if (pass)
      ++ok;
    else
      std::printf("extra case differs: %s %s\n", kind.c_str(), row.dump().substr(0, 200).c_str());
  }
  std::printf("Math-Verify extra cases: %d/%d\n", ok, n);
  EXPECT_GE(n, 10);
  EXPECT_GE(ok, n - 1);
}

}  // namespace
}  // namespace r1kit::rewards

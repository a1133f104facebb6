// verify(): candidates from extract_answers (plus joined boxes and the short whole text) ->
// normalize_answer -> parse_math (first candidate that parses) -> math_equivalent, all inside one
// Deadline. Nothing here throws: BudgetExceeded and any CAS error become a verdict with a reason.
#include "rewards/math_verify.h"

#include <ginac/ginac.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "rewards/budget.h"
#include "rewards/countdown.h"
#include "rewards/math_equiv.h"
#include "rewards/math_value.h"

namespace r1kit::rewards {

std::optional<VerifyMode> verify_mode_from_name(std::string_view name) {
  if (name == "math") return VerifyMode::math;
  if (name == "gsm8k") return VerifyMode::gsm8k;
  if (name == "countdown") return VerifyMode::countdown;
  return std::nullopt;
}

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::correct:
      return "correct";
    case Verdict::incorrect:
      return "incorrect";
    case Verdict::skip:
      return "skip";
  }
  return "skip";
}

ExtractOptions default_gold_extract() {
  ExtractOptions o;
  o.last_math = true;
  o.whole_text = true;
  return o;
}

ExtractOptions default_pred_extract() {
  ExtractOptions o;
  o.last_math = true;
  return o;
}

namespace {

constexpr size_t kMaxBoxes = 64;      // boxes remembered by the joining scan
constexpr size_t kMaxJoined = 32;     // boxes joined into one list
constexpr size_t kMaxSeparator = 64;  // bytes of text allowed between joined boxes
constexpr size_t kWholeGold = 512;    // a gold this short is tried whole first
constexpr size_t kWholePred = 128;
constexpr size_t kMaxTextAnswer = 200;  // an unparsable answer this short is compared as text

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// "\\boxed" (a doubled backslash from JSON escaping) -> "\boxed".
std::string undouble_boxes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '\\' &&
        (s.compare(i + 2, 5, "boxed") == 0 || s.compare(i + 2, 4, "fbox") == 0)) {
      continue;
    }
    out += s[i];
  }
  return out;
}

struct Box {
  size_t cmd;    // index of the backslash of \boxed
  size_t begin;  // content
  size_t end;
};

// Complete top-level boxes, in order (the last kMaxBoxes): one pass with a brace stack.
std::vector<Box> top_level_boxes(std::string_view s) {
  std::vector<Box> boxes;
  struct Open {
    size_t cmd;
    size_t content;
    bool box;
  };
  std::vector<Open> stack;
  size_t pending_cmd = std::string_view::npos;
  int box_depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\') {
      if (s.compare(i, 6, "\\boxed") == 0 && !(i + 6 < s.size() && is_alpha(s[i + 6]))) {
        pending_cmd = i;
        i += 5;
        continue;
      }
      if (s.compare(i, 5, "\\fbox") == 0 && !(i + 5 < s.size() && is_alpha(s[i + 5]))) {
        pending_cmd = i;
        i += 4;
        continue;
      }
      ++i;  // an escaped character (\{ \} \\)
      continue;
    }
    if (c == ' ' && pending_cmd != std::string_view::npos) continue;
    if (c == '{') {
      bool box = pending_cmd != std::string_view::npos;
      stack.push_back({pending_cmd, i + 1, box});
      if (box) ++box_depth;
      pending_cmd = std::string_view::npos;
      continue;
    }
    pending_cmd = std::string_view::npos;
    if (c == '}' && !stack.empty()) {
      Open o = stack.back();
      stack.pop_back();
      if (o.box) {
        --box_depth;
        if (box_depth == 0) {
          boxes.push_back({o.cmd, o.content, i});
          if (boxes.size() > 2 * kMaxBoxes) boxes.erase(boxes.begin(), boxes.begin() + kMaxBoxes);
        }
      }
    }
  }
  if (boxes.size() > kMaxBoxes) boxes.erase(boxes.begin(), boxes.end() - kMaxBoxes);
  return boxes;
}

// Text between two boxes that still joins them: short, at most three words besides
// and/or and LaTeX commands ("\quad \text{and} \quad", ", ", " papers and ").
bool joining_separator(std::string_view sep) {
  if (sep.size() > kMaxSeparator) return false;
  int words = 0;
  for (size_t i = 0; i < sep.size();) {
    if (sep[i] == '\\') {
      ++i;
      while (i < sep.size() && is_alpha(sep[i])) ++i;
      continue;
    }
    if (is_alpha(sep[i])) {
      size_t j = i;
      while (j < sep.size() && is_alpha(sep[j])) ++j;
      std::string_view w = sep.substr(i, j - i);
      if (w != "and" && w != "or" && w != "und" && w != "et") ++words;
      i = j;
      continue;
    }
    if (sep[i] == '.' && i + 1 < sep.size() && sep[i + 1] == ' ') return false;  // a new sentence
    ++i;
  }
  return words <= 3;
}

// The last box and the boxes before it that are joined to it, as "a, b, c" (only when more
// than one box joins).
std::optional<std::string> joined_boxes(std::string_view s) {
  std::vector<Box> boxes = top_level_boxes(s);
  if (boxes.size() < 2) return std::nullopt;
  size_t first = boxes.size() - 1;
  while (first > 0 && boxes.size() - first < kMaxJoined) {
    const Box& prev = boxes[first - 1];
    const Box& next = boxes[first];
    if (!joining_separator(s.substr(prev.end + 1, next.cmd - prev.end - 1))) break;
    --first;
  }
  if (first == boxes.size() - 1) return std::nullopt;
  std::string out;
  for (size_t k = first; k < boxes.size(); ++k) {
    if (!out.empty()) out += ", ";
    out += s.substr(boxes[k].begin, boxes[k].end - boxes[k].begin);
  }
  return out;
}

bool has_box(std::string_view s) {
  return s.find("\\boxed") != std::string_view::npos || s.find("\\fbox") != std::string_view::npos;
}

struct Side {
  bool found = false;  // some candidate existed
  bool ok = false;     // a value (parsed, or a short text answer)
  MathValue value;
  std::string text;  // the normalised candidate
  std::string error;
};

bool plain_source(const Candidate& c) {
  if (c.source != AnswerSource::whole_text && c.source != AnswerSource::last_number &&
      c.source != AnswerSource::gsm8k_hashes) {
    return false;
  }
  return c.text.find('\\') == std::string::npos && c.text.find('$') == std::string::npos;
}

Side parse_side(const std::vector<Candidate>& cands, SymbolTable& syms, Deadline& dl,
                const VerifyOptions& opts, bool gsm8k) {
  Side side;
  NormalizeOptions nopts = opts.normalize;
  if (!nopts.percent_as_fraction) nopts.keep_percent = true;
  std::string first_text;
  std::vector<std::string_view> failed_math;  // raw texts of math candidates that did not parse
  for (const Candidate& c : cands) {
    dl.check();
    // a number taken from inside an answer that did not parse is not that answer ("12:00")
    if (c.source == AnswerSource::last_number && c.text.size() <= 64 &&
        std::any_of(failed_math.begin(), failed_math.end(),
                    [&](std::string_view f) { return f.find(c.text) != std::string_view::npos; })) {
      continue;
    }
    std::string text = normalize_answer(c.text, nopts);
    if (text.empty()) continue;
    side.found = true;
    if (first_text.empty()) first_text = text;
    ParseOptions po;
    po.plain_text = plain_source(c) || gsm8k;
    ParseResult r = parse_math(text, syms, dl, po);
    if (r.ok) {
      side.ok = true;
      side.value = std::move(r.value);
      side.text = std::move(text);
      return side;
    }
    if (side.error.empty()) side.error = r.error;
    if ((c.source == AnswerSource::boxed || c.source == AnswerSource::last_math ||
         c.source == AnswerSource::whole_text) &&
        c.text.size() <= 8192) {
      failed_math.push_back(c.text);
    }
  }
  // nothing parsed: a short answer is compared as text ("12:00", "Monday")
  if (!first_text.empty() && first_text.size() <= kMaxTextAnswer) {
    side.ok = true;
    side.value.kind = MathValue::Kind::text;
    side.value.text = first_text;
    side.text = first_text;
  }
  return side;
}

// Extraction tiers: boxes and "the answer is", then "Answer:", the last math segment or number,
// then the whole answer tag. Within a tier the candidate that ends later in the text comes first (a
// "final answer is" after an intermediate \boxed{}, a number after the last $…$).
int tier(AnswerSource s) {
  switch (s) {
    case AnswerSource::choice:
      return 0;
    case AnswerSource::boxed:
    case AnswerSource::final_answer_phrase:
    case AnswerSource::gsm8k_hashes:
      return 1;
    case AnswerSource::answer_colon:  // "We may check our answer: …" is often not the answer
    case AnswerSource::last_math:
    case AnswerSource::last_number:
      return 2;
    default:
      return 3;
  }
}

void order_by_position(std::vector<Candidate>* c) {
  std::vector<std::pair<size_t, size_t>> keys;  // (tier, end offset)
  for (const auto& x : *c) keys.emplace_back(static_cast<size_t>(tier(x.source)), x.end);
  std::vector<size_t> idx(c->size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    if (keys[a].first != keys[b].first) return keys[a].first < keys[b].first;
    return keys[a].second > keys[b].second;
  });
  std::vector<Candidate> out;
  for (size_t i : idx) out.push_back(std::move((*c)[i]));
  *c = std::move(out);
}

// A whole prediction that reads as prose ("not it's 10 it's 1,000.99m") is not one answer.
bool reads_as_prose(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\\') {
      ++i;
      while (i < s.size() && is_alpha(s[i])) ++i;
      continue;
    }
    if (!is_alpha(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && is_alpha(s[j])) ++j;
    std::string_view w = s.substr(i, j - i);
    if (w.size() >= 2 && w != "pi" && w != "sin" && w != "cos" && w != "tan" && w != "log" &&
        w != "ln" && w != "exp" && w != "sqrt" && w != "and" && w != "or" && w != "percent" &&
        w != "pct" && w != "infty") {
      return true;
    }
    i = j;
  }
  return false;
}

std::vector<Candidate> candidates(std::string_view text, const ExtractOptions& eo,
                                  const VerifyOptions& opts, bool gold) {
  std::vector<Candidate> out;
  auto add = [&](std::string t, AnswerSource src, size_t end) {
    for (const auto& c : out) {
      if (c.text == t) return;
    }
    out.push_back(Candidate{std::move(t), src, end});
  };
  std::string s = undouble_boxes(text);
  if (opts.join_boxes && eo.boxed) {
    if (auto j = joined_boxes(s)) add(*j, AnswerSource::boxed, s.size());
  }
  std::vector<Candidate> ex = extract_answers(s, eo);
  order_by_position(&ex);
  bool boxed_first = !ex.empty() && ex[0].source == AnswerSource::boxed;
  // a short answer with no box is tried whole first ("$1$ and $2$", "1,000.99$")
  size_t limit = gold ? kWholeGold : kWholePred;
  bool whole = (gold ? eo.whole_text : opts.pred_whole_text) && s.size() <= limit && !has_box(s) &&
               (gold || (s.find('\n') == std::string::npos && !reads_as_prose(s)));
  if (whole && !boxed_first) add(std::string(s), AnswerSource::whole_text, s.size());
  for (auto& c : ex) add(std::move(c.text), c.source, c.end);
  // nothing found: a short prediction may be the bare answer (verl passes extracted answers)
  if (out.empty() && !gold && opts.pred_whole_text && s.size() <= kWholeGold) {
    add(std::string(s), AnswerSource::whole_text, s.size());
  }
  return out;
}

EquivOptions equiv_options(const VerifyOptions& o) {
  EquivOptions e;
  e.rel_tol = o.rel_tol;
  e.float_rounding = o.float_rounding;
  e.allow_set_relation = o.allow_set_relation;
  e.strict = o.strict;
  e.ordered_lists = o.ordered_lists;
  return e;
}

VerifyResult verify_countdown(std::string_view gold, std::string_view pred) {
  VerifyResult r;
  std::string why;
  auto problem = countdown_problem_from_text(gold, &why);
  if (!problem) {
    r.verdict = Verdict::skip;
    r.reason = "unusable countdown gold: " + why;
    return r;
  }
  std::string g;
  for (size_t i = 0; i < problem->numbers.size(); ++i) {
    if (i) g += ",";
    g += std::to_string(problem->numbers[i]);
  }
  r.gold_parsed = g + "=" + std::to_string(problem->target);
  CountdownCheck c = check_countdown(*problem, pred);
  r.pred_parsed = c.expression;
  r.verdict = c.correct ? Verdict::correct : Verdict::incorrect;
  r.reason = c.reason;
  return r;
}

VerifyResult verify_math(std::string_view gold, std::string_view pred, const VerifyOptions& opts,
                         Deadline& dl) {
  VerifyResult r;
  bool gsm8k = opts.mode == VerifyMode::gsm8k;
  SymbolTable syms;
  ExtractOptions geo = opts.gold_extract;
  ExtractOptions peo = opts.pred_extract;
  if (gsm8k) {
    geo.gsm8k_hashes = true;
    geo.whole_text = true;
    peo.last_number = true;
  }
  Side g;
  try {
    g = parse_side(candidates(gold, geo, opts, true), syms, dl, opts, gsm8k);
  } catch (const BudgetExceeded&) {
    r.verdict = Verdict::skip;
    r.reason = "time budget exceeded while parsing the gold answer";
    return r;
  }
  if (!g.found) {
    r.verdict = Verdict::skip;
    r.reason = "gold answer is empty";
    return r;
  }
  if (!g.ok) {
    r.verdict = Verdict::skip;
    r.reason = "gold did not parse: " + g.error;
    return r;
  }
  if (gsm8k && !(g.value.is_scalar() && GiNaC::is_a<GiNaC::numeric>(g.value.ex))) {
    r.verdict = Verdict::skip;
    r.reason = "gsm8k gold is not a number";
    return r;
  }
  r.gold_parsed = to_string(g.value);
  r.verdict = Verdict::incorrect;
  Side p;
  try {
    p = parse_side(candidates(pred, peo, opts, false), syms, dl, opts, gsm8k);
    if (!p.found) {
      r.reason = "no answer found in the prediction";
      return r;
    }
    if (!p.ok) {
      r.reason = "prediction did not parse: " + p.error;
      return r;
    }
    r.pred_parsed = to_string(p.value);
    if (math_equivalent(g.value, g.text, p.value, p.text, syms, dl, equiv_options(opts))) {
      r.verdict = Verdict::correct;
    } else {
      r.reason = "not equivalent";
    }
  } catch (const BudgetExceeded&) {
    r.verdict = Verdict::incorrect;
    r.reason = "time budget exceeded";
  } catch (const std::exception& e) {  // a CAS error on the prediction's side
    r.verdict = Verdict::incorrect;
    r.reason = std::string("CAS error: ") + e.what();
  }
  return r;
}

}  // namespace

VerifyResult verify(std::string_view gold, std::string_view pred, const VerifyOptions& opts) {
  try {
    if (opts.mode == VerifyMode::countdown) return verify_countdown(gold, pred);
    // GiNaC's reference counts and shared constants are not thread-safe: one math verification
    // at a time per process, every GiNaC object created and destroyed under the lock. The budget
    // starts once the lock is held. (`r1kit verify --jobs` runs worker processes instead.)
    static std::mutex cas_mutex;
    std::lock_guard<std::mutex> lock(cas_mutex);
    Deadline dl(opts.time_budget_s);
    return verify_math(gold, pred, opts, dl);
  } catch (const std::exception& e) {
    VerifyResult r;
    r.verdict = Verdict::skip;
    r.reason = std::string("internal error: ") + e.what();
    return r;
  } catch (...) {
    VerifyResult r;
    r.verdict = Verdict::skip;
    r.reason = "internal error";
    return r;
  }
}

}  // namespace r1kit::rewards

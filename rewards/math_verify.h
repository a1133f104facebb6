// The math verifier: extract -> normalise -> parse (LaTeX or plain text) into a GiNaC-backed
// value -> decide equivalence, within a hard per-call time budget (a deadline checked
// cooperatively by the parser and between CAS steps; no signals, no threads).
// GiNaC is not thread-safe (shared reference counts), so verify() holds a process-wide lock for
// the math modes: threads may call it, one verification runs at a time; for parallel throughput
// use worker processes (`r1kit verify --jobs N` does).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "rewards/math_extract.h"

namespace r1kit::rewards {

enum class VerifyMode { math, gsm8k, countdown };
std::optional<VerifyMode> verify_mode_from_name(std::string_view name);

enum class Verdict { correct, incorrect, skip };
const char* verdict_name(Verdict v);

// Extraction defaults: a gold answer is also taken whole ("3/4") or from its last math segment;
// a prediction from its answer tag, boxes, phrases and last math segment (no last-number guess).
ExtractOptions default_gold_extract();
ExtractOptions default_pred_extract();

struct VerifyOptions {
  VerifyMode mode = VerifyMode::math;
  ExtractOptions gold_extract = default_gold_extract();
  ExtractOptions pred_extract = default_pred_extract();
  NormalizeOptions normalize;
  double rel_tol = 1e-6;       // numeric comparison, only when a side is a decimal
  double time_budget_s = 1.0;  // whole call, both sides
  // A short prediction (one line, at most 128 bytes, no \boxed) is first tried whole ("1,000.99$").
  bool pred_whole_text = true;
  // Consecutive \boxed{} joined by short text ("\boxed{1} and \boxed{2}") form one list answer.
  bool join_boxes = true;
  int float_rounding = -1;          // >= 0: decimals also match when equal after rounding there
  bool allow_set_relation = false;  // gold x \in [a,b] accepts a pred a \le x \le b
  bool strict = true;               // false: one free symbol per side may be renamed
  bool ordered_lists = false;       // bare lists "1, 2, 3" compare in order (Hendrycks MATH)
};

struct VerifyResult {
  Verdict verdict = Verdict::skip;
  std::string gold_parsed;  // canonical text of the parsed gold (empty when it did not parse)
  std::string pred_parsed;
  std::string reason;  // why skip/incorrect ("gold did not parse: …", "time budget exceeded")
};

// gold: a reference answer or solution text; pred: a model completion. Never throws.
// An unusable gold gives skip; a prediction with no answer or an unparsable one gives incorrect.
VerifyResult verify(std::string_view gold, std::string_view pred, const VerifyOptions& opts = {});

}  // namespace r1kit::rewards

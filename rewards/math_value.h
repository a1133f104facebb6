// The math verifier's parser: LaTeX or plain-text answers into a structured value whose scalars
// are GiNaC expressions. Our own recursive descent over the text (model output is never evaluated
// as code); everything is bounded: input length, recursion depth, node count, the size of every
// number GiNaC is asked to compute, and the caller's Deadline (checked on every primary).
#pragma once

#include <ginac/ex.h>
#include <ginac/symbol.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rewards/budget.h"

namespace r1kit::rewards {

enum class RelOp : uint8_t { eq, ne, lt, le, gt, ge };
const char* rel_op_text(RelOp op);

struct MathLimits {
  size_t max_input_bytes = 8192;  // one extracted answer (completions are cut down by extraction)
  int max_depth = 200;            // nesting of groups, fractions, functions...
  size_t max_nodes = 20000;       // primaries and operators in one answer
  size_t max_digits = 20000;      // any literal or computed number (2006! has 5,800 digits)
  long max_factorial = 5000;      // n! and binomial(n, k) with numeric arguments
  size_t max_items = 2000;        // elements of one set / tuple / matrix
};

struct ParseOptions {
  // Plain text (no LaTeX around it): "1,5" is a decimal comma and "1 000" a thousands space.
  bool plain_text = false;
  MathLimits limits;
};

// Names -> GiNaC symbols. GiNaC symbols compare by identity, so both sides of one comparison
// must be parsed with the same table. Reserved names: "\infty" (∞) and "\pm" (the ± marker).
class SymbolTable {
 public:
  GiNaC::symbol get(const std::string& name);
  GiNaC::ex infinity() { return get("\\infty"); }
  GiNaC::ex pm() { return get("\\pm"); }
  bool is_infinity(const GiNaC::ex& e);

 private:
  std::map<std::string, GiNaC::symbol, std::less<>> map_;
};

struct MathValue {
  enum class Kind : uint8_t {
    scalar,     // ex (numbers, expressions, matrices as GiNaC::matrix)
    text,       // text (\text{Evelyn}, "12:00"): compared as normalised strings
    tuple,      // items, ordered: (1, 2), [1, 2, 3], (0;0;0)
    set,        // items, unordered: {1, 2}, "1, 2", 1 \pm \sqrt{2}
    interval,   // items = {lo, hi}; lo_closed / hi_closed
    relation,   // items[0] ops[0] items[1] ops[1] ...: x = 2, a < b <= c
    set_union,  // items: the united parts (intervals, sets)
    empty_set,
  };
  Kind kind = Kind::scalar;
  GiNaC::ex ex;
  std::string text;
  std::vector<MathValue> items;
  std::vector<RelOp> ops;
  bool lo_closed = false, hi_closed = false;
  bool paren_pair = false;  // "(a, b)": a tuple that may also be read as an open interval
  bool bare_list = false;   // a set written without braces ("1, 2"): order kept for ordered mode
  bool braces = false;      // a set written with braces {…}: order of writing kept in items
  bool inexact = false;     // a decimal literal occurs: numeric comparison with tolerance
  bool percent = false;     // written with %: ex holds x/100, x itself is accepted too
  bool membership = false;  // came from "x \in S"

  bool is_scalar() const { return kind == Kind::scalar; }
};

struct ParseResult {
  bool ok = false;
  MathValue value;
  std::string error;  // why it did not parse (empty when ok)
};

// Parses one answer (already normalised by normalize_answer, or raw LaTeX). Never throws except
// BudgetExceeded from the deadline; GiNaC errors (1/0...) come back as !ok.
ParseResult parse_math(std::string_view text, SymbolTable& symbols, Deadline& deadline,
                       const ParseOptions& opts = {});

// Canonical text of a value ("{1, 2}", "[0, 1)", "x = 2", "sqrt(2)+1").
std::string to_string(const MathValue& v);

// Largest number of decimal digits of a numeric (numerator or denominator) inside e.
size_t max_numeric_digits(const GiNaC::ex& e);

}  // namespace r1kit::rewards

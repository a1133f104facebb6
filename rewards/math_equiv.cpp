// Equivalence of parsed answers; the rules are listed in math_equiv.h and docs/MATH_VERIFY.md.
#include "rewards/math_equiv.h"

#include <ginac/ginac.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace r1kit::rewards {

using GiNaC::ex;
using GiNaC::ex_to;
using GiNaC::is_a;
using GiNaC::numeric;
using Kind = MathValue::Kind;

std::string text_key(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\') {  // drop command names (\text, \mathrm, \quad ...)
      size_t j = i + 1;
      while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
      i = j > i + 1 ? j - 1 : i + 1;
      continue;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || u >= 0x80) {
      out += static_cast<char>(std::tolower(u));
    } else if (c == ':' || c == '.' || c == '+' || c == '-' || c == '/' || c == '=' || c == '^' ||
               c == '<' || c == '>' || c == ',') {
      out += c;
    }
  }
  while (!out.empty() && (out.back() == '.' || out.back() == ',')) out.pop_back();
  return out;
}

namespace {

// Upper bound on the number of terms expand() would produce (capped), to refuse blow-ups such
// as (x+1)^{1000} before GiNaC sees them.
double expansion_terms(const ex& e, int depth = 0) {
  if (depth > 200) return 1e18;
  if (is_a<GiNaC::add>(e)) {
    double t = 0;
    for (size_t i = 0; i < e.nops(); ++i) t += expansion_terms(e.op(i), depth + 1);
    return std::min(t, 1e18);
  }
  if (is_a<GiNaC::mul>(e)) {
    double t = 1;
    for (size_t i = 0; i < e.nops(); ++i) t *= expansion_terms(e.op(i), depth + 1);
    return std::min(t, 1e18);
  }
  if (is_a<GiNaC::power>(e)) {
    double b = expansion_terms(e.op(0), depth + 1);
    const ex& x = e.op(1);
    if (is_a<numeric>(x) && ex_to<numeric>(x).is_integer()) {
      double n = std::abs(ex_to<numeric>(x).to_double());
      if (b <= 1) return 1;
      if (n > 200) return 1e18;
      return std::min(std::pow(b, n), 1e18);
    }
    return b;
  }
  double t = 1;
  for (size_t i = 0; i < e.nops(); ++i) t = std::max(t, expansion_terms(e.op(i), depth + 1));
  return t;
}

constexpr double kMaxTerms = 2000;

bool is_abs(const ex& e) {
  return GiNaC::is_the_function<GiNaC::abs_SERIAL>(e);
}

bool has_symbols(const ex& e) {
  for (GiNaC::const_preorder_iterator it = e.preorder_begin(); it != e.preorder_end(); ++it) {
    if (is_a<GiNaC::symbol>(*it)) return true;
  }
  return false;
}

void collect_symbols(const ex& e, GiNaC::exset* out) {
  for (GiNaC::const_preorder_iterator it = e.preorder_begin(); it != e.preorder_end(); ++it) {
    if (is_a<GiNaC::symbol>(*it)) out->insert(*it);
  }
}

class Equiv {
 public:
  Equiv(SymbolTable& syms, Deadline& dl, const EquivOptions& o) : syms_(syms), dl_(dl), o_(o) {}

  bool top(const MathValue& g, std::string_view gt, const MathValue& p, std::string_view pt) {
    if (g.kind == Kind::text || p.kind == Kind::text) {
      std::string a = g.kind == Kind::text ? text_key(g.text) : text_key(gt);
      std::string b = p.kind == Kind::text ? text_key(p.text) : text_key(pt);
      return !a.empty() && a == b;
    }
    if (value(g, p)) return true;
    if (!o_.strict && g.is_scalar() && p.is_scalar()) {
      GiNaC::exset gs, ps;
      collect_symbols(g.ex, &gs);
      collect_symbols(p.ex, &ps);
      if (gs.size() == 1 && ps.size() == 1 && !syms_.is_infinity(*gs.begin())) {
        MathValue q = p;
        q.ex = p.ex.subs(*ps.begin() == *gs.begin());
        return value(g, q);
      }
    }
    return false;
  }

 private:
  SymbolTable& syms_;
  Deadline& dl_;
  const EquivOptions& o_;

  // --- scalars -------------------------------------------------------------------------------

  bool close(const numeric& a, const numeric& b, double tol) {
    numeric d = GiNaC::abs(a - b);
    numeric scale = std::max(GiNaC::abs(a), GiNaC::abs(b));
    if (d <= numeric(tol) * scale) return true;
    return d <= numeric(1e-12) && scale < numeric(1e-6);
  }

  std::optional<numeric> evaluate(const ex& e) {
    try {
      dl_.check();
      ex v = e.evalf();
      dl_.check();
      if (is_a<numeric>(v)) return ex_to<numeric>(v);
    } catch (const BudgetExceeded&) {
      throw;
    } catch (const std::exception&) {
    }
    return std::nullopt;
  }

  bool rounded_equal(const numeric& a, const numeric& b) {
    if (o_.float_rounding < 0 || !a.is_real() || !b.is_real()) return false;
    double scale = std::pow(10.0, o_.float_rounding);
    double x = a.to_double() * scale, y = b.to_double() * scale;
    if (!std::isfinite(x) || !std::isfinite(y)) return false;
    return std::llround(x) == std::llround(y);
  }

  bool numbers_close(const ex& a, const ex& b, double tol) {
    auto x = evaluate(a);
    auto y = evaluate(b);
    if (!x || !y) return false;
    return close(*x, *y, tol) || rounded_equal(*x, *y);
  }

  // Same value at a few fixed pseudo-random positive points (all symbols shared).
  bool random_points_equal(const ex& a, const ex& b, double tol) {
    GiNaC::exset syms;
    collect_symbols(a, &syms);
    collect_symbols(b, &syms);
    if (syms.size() > 12) return false;
    for (const ex& s : syms) {
      if (syms_.is_infinity(s)) return false;
    }
    int ok = 0;
    for (int trial = 0; trial < 6 && ok < 3; ++trial) {
      GiNaC::exmap m;
      int k = 0;
      for (const ex& s : syms) {
        long r = (trial * 7919L + k * 104729L + 31337L) % 997L;
        m[s] = numeric(r + 113, 631);  // in (0.18, 1.76)
        ++k;
      }
      std::optional<numeric> x, y;
      try {
        x = evaluate(a.subs(m));
        y = evaluate(b.subs(m));
      } catch (const BudgetExceeded&) {
        throw;
      } catch (const std::exception&) {
        continue;
      }
      if (!x || !y) return false;
      if (!close(*x, *y, tol)) return false;
      ++ok;
    }
    return ok >= 2;
  }

  bool scalar_core(const ex& a, const ex& b, bool inexact) {
    dl_.tick();
    if (a.is_equal(b)) return true;
    bool ma = is_a<GiNaC::matrix>(a), mb = is_a<GiNaC::matrix>(b);
    if (ma || mb) {
      if (!ma || !mb) return false;
      const auto& x = ex_to<GiNaC::matrix>(a);
      const auto& y = ex_to<GiNaC::matrix>(b);
      if (x.rows() != y.rows() || x.cols() != y.cols()) return false;
      for (unsigned i = 0; i < x.rows(); ++i) {
        for (unsigned j = 0; j < x.cols(); ++j) {
          if (!scalar_core(x(i, j), y(i, j), inexact)) return false;
        }
      }
      return true;
    }
    bool na = is_a<numeric>(a), nb = is_a<numeric>(b);
    if (na && nb && !inexact) return false;  // two exact numbers that differ
    if (syms_.is_infinity(a) || syms_.is_infinity(b)) {
      if (!syms_.is_infinity(a) || !syms_.is_infinity(b)) return false;
      return (a - b).is_zero();
    }
    ex d = a - b;
    if (d.is_zero()) return true;
    bool constant = !has_symbols(d);
    if (!inexact || !constant) {
      if (expansion_terms(d) <= kMaxTerms) {
        try {
          dl_.check();
          ex n = d.normal();
          dl_.check();
          if (n.is_zero()) return true;
          if (!constant) {
            ex e = d.expand();
            dl_.check();
            if (e.is_zero()) return true;
          }
        } catch (const BudgetExceeded&) {
          throw;
        } catch (const std::exception&) {
        }
      }
    }
    if (constant) return numbers_close(a, b, inexact ? o_.rel_tol : 1e-12);
    return random_points_equal(a, b, inexact ? o_.rel_tol : 1e-9);
  }

  bool scalar(const MathValue& g, const MathValue& p) {
    bool inexact = g.inexact || p.inexact;
    if (scalar_core(g.ex, p.ex, inexact)) return true;
    // 28\% accepts 28 (and 0.28); a pred "20\%" matches a gold 20
    if (g.percent && scalar_core(g.ex * 100, p.ex, inexact)) return true;
    if (p.percent && scalar_core(g.ex, p.ex * 100, inexact)) return true;
    return false;
  }

  // --- names and equations ----------------------------------------------------------------

  bool name_like(const ex& e) {
    if (is_a<GiNaC::symbol>(e)) return !syms_.is_infinity(e) && !e.is_equal(syms_.pm());
    if (is_a<GiNaC::mul>(e)) {
      for (size_t i = 0; i < e.nops(); ++i) {
        if (!name_like(e.op(i))) return false;
      }
      return true;
    }
    if (is_a<GiNaC::power>(e)) return e.op(1).is_equal(-1) && name_like(e.op(0));
    if (is_abs(e)) return name_like(e.op(0));
    return false;
  }

  bool name_like(const MathValue& v) {
    if (v.is_scalar()) return name_like(v.ex);
    if (v.kind == Kind::tuple) {
      return std::all_of(v.items.begin(), v.items.end(),
                         [&](const MathValue& it) { return name_like(it); });
    }
    return false;
  }

  static bool constant_value(const MathValue& v) { return v.is_scalar() && !has_symbols(v.ex); }

  bool is_equation(const MathValue& v) {
    return v.kind == Kind::relation && v.items.size() == 2 && v.ops[0] == RelOp::eq;
  }

  // The solution of a linear equation in one symbol.
  std::optional<MathValue> linear_solution(const MathValue& eq) {
    if (!eq.items[0].is_scalar() || !eq.items[1].is_scalar()) return std::nullopt;
    ex d = eq.items[0].ex - eq.items[1].ex;
    GiNaC::exset s;
    collect_symbols(d, &s);
    if (s.size() != 1) return std::nullopt;
    ex x = *s.begin();
    if (syms_.is_infinity(x) || expansion_terms(d) > kMaxTerms) return std::nullopt;
    try {
      dl_.check();
      ex e = d.expand();
      if (!e.is_polynomial(x) || e.degree(x) != 1) return std::nullopt;
      ex sol = GiNaC::lsolve(e == 0, x);
      dl_.check();
      if (sol.nops() == 0 && !is_a<numeric>(sol) && has_symbols(sol)) return std::nullopt;
      MathValue v;
      v.kind = Kind::scalar;
      v.ex = sol;
      v.inexact = eq.inexact;
      return v;
    } catch (const BudgetExceeded&) {
      throw;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  // lhs - rhs with > / >= turned around; kind: 0 eq, 1 ne, 2 lt, 3 le.
  struct NormRel {
    ex d;
    int kind;
  };
  static NormRel norm_rel(const ex& l, RelOp op, const ex& r) {
    switch (op) {
      case RelOp::eq:
        return {l - r, 0};
      case RelOp::ne:
        return {l - r, 1};
      case RelOp::lt:
        return {l - r, 2};
      case RelOp::le:
        return {l - r, 3};
      case RelOp::gt:
        return {r - l, 2};
      case RelOp::ge:
        return {r - l, 3};
    }
    return {l - r, 0};
  }

  // d1 = c * d2 for a constant c (positive for inequalities).
  bool proportional(const NormRel& a, const NormRel& b) {
    if (a.kind != b.kind) return false;
    if (a.d.is_zero() || b.d.is_zero()) return a.d.is_zero() && b.d.is_zero();
    if (expansion_terms(a.d) > kMaxTerms || expansion_terms(b.d) > kMaxTerms) return false;
    try {
      dl_.check();
      ex ratio = (a.d / b.d).normal();
      dl_.check();
      if (!is_a<numeric>(ratio)) {
        ex e = ratio.expand();
        if (!is_a<numeric>(e)) return false;
        ratio = e;
      }
      const numeric& c = ex_to<numeric>(ratio);
      if (c.is_zero() || !c.is_real()) return false;
      return a.kind <= 1 || c.is_positive();
    } catch (const BudgetExceeded&) {
      throw;
    } catch (const std::exception&) {
      return false;
    }
  }

  // An inequality (chain) about one name as a set: x > 5 -> (5, oo); -2 <= x <= 7 -> [-2, 7];
  // 1 <= |z| <= 3/2 -> [-3/2, -1] U [1, 3/2].
  std::optional<MathValue> relation_as_set(const MathValue& r) {
    if (r.kind != Kind::relation) return std::nullopt;
    for (const auto& it : r.items) {
      if (!it.is_scalar()) return std::nullopt;
    }
    auto interval = [&](ex lo, bool lc, ex hi, bool hc) {
      MathValue v;
      v.kind = Kind::interval;
      MathValue a, b;
      a.ex = lo;
      b.ex = hi;
      v.items = {a, b};
      v.lo_closed = lc;
      v.hi_closed = hc;
      v.inexact = r.inexact;
      return v;
    };
    ex inf = syms_.infinity();
    auto is_lt = [](RelOp op) { return op == RelOp::lt || op == RelOp::le; };
    auto is_gt = [](RelOp op) { return op == RelOp::gt || op == RelOp::ge; };
    auto closed = [](RelOp op) { return op == RelOp::le || op == RelOp::ge; };
    if (r.items.size() == 2) {
      const ex& l = r.items[0].ex;
      const ex& rr = r.items[1].ex;
      RelOp op = r.ops[0];
      if (op == RelOp::eq || op == RelOp::ne) return std::nullopt;
      if (name_like(l) && !has_symbols(rr)) {
        if (is_lt(op)) return interval(-inf, false, rr, closed(op));
        return interval(rr, closed(op), inf, false);
      }
      if (name_like(rr) && !has_symbols(l)) {
        if (is_lt(op)) return interval(l, closed(op), inf, false);
        return interval(-inf, false, l, closed(op));
      }
      return std::nullopt;
    }
    if (r.items.size() == 3) {
      ex lo = r.items[0].ex, mid = r.items[1].ex, hi = r.items[2].ex;
      RelOp o1 = r.ops[0], o2 = r.ops[1];
      bool c1 = closed(o1), c2 = closed(o2);
      if (is_gt(o1) && is_gt(o2)) {
        std::swap(lo, hi);
        std::swap(c1, c2);
      } else if (!(is_lt(o1) && is_lt(o2))) {
        return std::nullopt;
      }
      if (has_symbols(lo) || has_symbols(hi)) return std::nullopt;
      if (is_abs(mid) && name_like(mid.op(0)) && is_a<numeric>(lo) &&
          !ex_to<numeric>(lo).is_negative()) {
        MathValue u;
        u.kind = Kind::set_union;
        u.items = {interval(-hi, c2, -lo, c1), interval(lo, c1, hi, c2)};
        return u;
      }
      if (!name_like(mid)) return std::nullopt;
      return interval(lo, c1, hi, c2);
    }
    return std::nullopt;
  }

  bool relations(const MathValue& g, const MathValue& p) {
    if (g.items.size() == 2 && p.items.size() == 2) {
      if (is_equation(g) && is_equation(p)) {
        // x = 2 vs x = 2, (p, q) = (3, 2) vs (p, q) = (3, 2)
        if (name_like(g.items[0]) && name_like(p.items[0])) {
          return value(g.items[0], p.items[0]) && value(g.items[1], p.items[1]);
        }
      }
      if (!g.items[0].is_scalar() || !g.items[1].is_scalar() || !p.items[0].is_scalar() ||
          !p.items[1].is_scalar()) {
        return false;
      }
      NormRel a = norm_rel(g.items[0].ex, g.ops[0], g.items[1].ex);
      NormRel b = norm_rel(p.items[0].ex, p.ops[0], p.items[1].ex);
      if (proportional(a, b)) return true;
    }
    if (g.items.size() == p.items.size() && g.ops == p.ops) {
      bool all = true;
      for (size_t i = 0; i < g.items.size() && all; ++i) all = value(g.items[i], p.items[i]);
      if (all) return true;
    }
    auto gs = relation_as_set(g);
    auto ps = relation_as_set(p);
    if (gs && ps) return value(*gs, *ps);
    return false;
  }

  // --- collections -----------------------------------------------------------------------------

  bool in_order(const std::vector<MathValue>& a, const std::vector<MathValue>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!value(a[i], b[i])) return false;
    }
    return true;
  }

  // Items written twice count once ({1, 1, 2} = {1, 2}); same canonical text = same item.
  static std::vector<const MathValue*> distinct(const std::vector<MathValue>& v) {
    std::vector<const MathValue*> out;
    std::vector<std::string> seen;
    for (const auto& it : v) {
      std::string t = to_string(it);
      if (std::find(seen.begin(), seen.end(), t) != seen.end()) continue;
      seen.push_back(std::move(t));
      out.push_back(&it);
    }
    return out;
  }

  // Unordered: a perfect matching found greedily (each gold item takes the first free match).
  bool unordered(const std::vector<MathValue>& a0, const std::vector<MathValue>& b0) {
    if (a0.size() == b0.size() && in_order(a0, b0)) return true;
    std::vector<const MathValue*> a = distinct(a0), b = distinct(b0);
    if (a.size() != b.size()) return false;
    std::vector<char> used(b.size(), 0);
    for (const MathValue* x : a) {
      bool found = false;
      for (size_t j = 0; j < b.size() && !found; ++j) {
        if (!used[j] && value(*x, *b[j])) used[j] = 1, found = true;
      }
      if (!found) return false;
    }
    return true;
  }

  static MathValue as_open_interval(const MathValue& t) {
    MathValue v = t;
    v.kind = Kind::interval;
    v.lo_closed = v.hi_closed = false;
    v.paren_pair = false;
    return v;
  }

  bool intervals(const MathValue& g, const MathValue& p) {
    return g.lo_closed == p.lo_closed && g.hi_closed == p.hi_closed &&
           value(g.items[0], p.items[0]) && value(g.items[1], p.items[1]);
  }

  static bool set_like(const MathValue& v) {
    return v.kind == Kind::interval || v.kind == Kind::set_union ||
           (v.kind == Kind::tuple && v.paren_pair);
  }

 public:
  bool value(const MathValue& g, const MathValue& p) {
    dl_.tick();
    // equations and relations first: they unwrap to values
    if (g.kind == Kind::relation || p.kind == Kind::relation) return relation_cases(g, p);
    if (g.kind == Kind::text || p.kind == Kind::text) {
      return g.kind == p.kind && text_key(g.text) == text_key(p.text);
    }
    if (g.is_scalar() && p.is_scalar()) return scalar(g, p);
    // a one-element set is its element ({x, x} too: "\boxed{2.5}, or \boxed{\frac52}")
    if (g.kind == Kind::set && p.kind != Kind::set && !g.items.empty()) {
      auto d = distinct(g.items);
      if (d.size() == 1) return value(*d[0], p);
    }
    if (p.kind == Kind::set && g.kind != Kind::set && !p.items.empty()) {
      auto d = distinct(p.items);
      if (d.size() == 1) return value(g, *d[0]);
    }
    switch (g.kind) {
      case Kind::set:
        if (p.kind == Kind::set) {
          if (o_.ordered_lists && (g.bare_list || p.bare_list)) return in_order(g.items, p.items);
          return unordered(g.items, p.items);
        }
        if (p.kind == Kind::tuple && g.braces) return in_order(g.items, p.items);
        return false;
      case Kind::tuple:
        if (p.kind == Kind::tuple) return in_order(g.items, p.items);
        if (p.kind == Kind::set && p.braces) return in_order(g.items, p.items);
        if (p.kind == Kind::interval && g.paren_pair) return intervals(as_open_interval(g), p);
        if (p.kind == Kind::set_union && g.paren_pair) {
          return p.items.size() == 1 && value(as_open_interval(g), p.items[0]);
        }
        return false;
      case Kind::interval:
        if (p.kind == Kind::interval) return intervals(g, p);
        if (p.kind == Kind::tuple && p.paren_pair) return intervals(g, as_open_interval(p));
        if (p.kind == Kind::set_union) return p.items.size() == 1 && value(g, p.items[0]);
        return false;
      case Kind::set_union: {
        if (p.kind == Kind::set_union) return unordered(g.items, p.items);
        if (g.items.size() == 1) return value(g.items[0], p);
        return false;
      }
      case Kind::empty_set:
        return p.kind == Kind::empty_set || (p.kind == Kind::set && p.items.empty());
      default:
        return false;
    }
  }

 private:
  bool relation_cases(const MathValue& g, const MathValue& p) {
    bool gr = g.kind == Kind::relation, pr = p.kind == Kind::relation;
    if (gr && pr) return relations(g, p);
    if (gr) {
      // gold "k = 1" accepts "1"; gold "a + 3z = 0" does not accept "0"
      if (is_equation(g)) {
        if (name_like(g.items[0])) return value(g.items[1], p);
        if (auto s = linear_solution(g)) return value(*s, p);
        return false;
      }
      // gold inequality vs pred interval: x >= 5 vs [5, oo)
      if (set_like(p)) {
        auto gs = relation_as_set(g);
        return gs && value(*gs, p);
      }
      return false;
    }
    // pred relation, gold value
    if (is_equation(p)) {
      if (name_like(p.items[0]) || constant_value(p.items[0])) {
        if (value(g, p.items[1])) return true;
      }
      if (auto s = linear_solution(p)) return value(g, *s);
      return false;
    }
    if (o_.allow_set_relation && set_like(g)) {
      auto ps = relation_as_set(p);
      return ps && value(g, *ps);
    }
    return false;
  }
};

}  // namespace

bool math_equivalent(const MathValue& gold, std::string_view gold_text, const MathValue& pred,
                     std::string_view pred_text, SymbolTable& symbols, Deadline& deadline,
                     const EquivOptions& opts) {
  Equiv e(symbols, deadline, opts);
  return e.top(gold, gold_text, pred, pred_text);
}

}  // namespace r1kit::rewards

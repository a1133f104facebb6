#include "recipes/synthetic.h"

#include <filesystem>
#include <random>
#include <set>

#include "core/error.h"

namespace r1kit::recipes {

namespace fs = std::filesystem;

SyntheticConfig SyntheticConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(
      j,
      {"task", "digits", "terms", "train_size", "test_size", "sft_size", "direct_fraction", "seed"},
      where);
  SyntheticConfig c;
  c.task = get_optional<std::string>(j, "task", where, c.task);
  R1_CHECK(c.task == "addition" || c.task == "sum", "{}: unknown task '{}' (known: addition, sum)",
           json_where(where, "task"), c.task);
  c.digits = get_optional<int64_t>(j, "digits", where, c.digits);
  c.terms = get_optional<int64_t>(j, "terms", where, c.terms);
  R1_CHECK(c.terms >= 2 && c.terms <= 8, "{}: 'terms' must be in [2, 8], got {}",
           json_where(where, "terms"), c.terms);
  R1_CHECK(c.task == "sum" || !j.contains("terms"),
           "{}: 'terms' applies to the sum task only (addition has two operands)",
           json_where(where, "terms"));
  c.train_size = get_optional<int64_t>(j, "train_size", where, c.train_size);
  c.test_size = get_optional<int64_t>(j, "test_size", where, c.test_size);
  c.sft_size = get_optional<int64_t>(j, "sft_size", where, c.sft_size);
  R1_CHECK(c.sft_size >= 0 && c.sft_size <= c.train_size,
           "{}: 'sft_size' must be in [0, train_size = {}] (0: every training problem), got {}",
           json_where(where, "sft_size"), c.train_size, c.sft_size);
  c.direct_fraction = get_optional<double>(j, "direct_fraction", where, c.direct_fraction);
  R1_CHECK(c.direct_fraction >= 0 && c.direct_fraction <= 1,
           "{}: 'direct_fraction' must be in [0, 1], got {}", json_where(where, "direct_fraction"),
           c.direct_fraction);
  c.seed = get_optional<uint64_t>(j, "seed", where, c.seed);
  R1_CHECK(c.digits >= 1 && c.digits <= 9, "{}: 'digits' must be in [1, 9], got {}", where,
           c.digits);
  R1_CHECK(c.train_size >= 1 && c.test_size >= 0,
           "{}: 'train_size' must be >= 1 and 'test_size' >= 0", where);
  return c;
}

Json SyntheticConfig::to_json() const {
  Json j{{"task", task},
         {"digits", digits},
         {"train_size", train_size},
         {"test_size", test_size},
         {"seed", seed}};
  if (task == "sum") j["terms"] = terms;
  if (sft_size > 0) j["sft_size"] = sft_size;
  if (direct_fraction > 0) j["direct_fraction"] = direct_fraction;
  return j;
}

std::string addition_trace(int64_t a, int64_t b) {
  std::string steps;
  int64_t carry = 0;
  do {
    const int64_t da = a % 10, db = b % 10, s = da + db + carry;
    std::string terms = fmt::format("{} + {}", da, db);
    if (carry) terms += fmt::format(" + {}", carry);
    steps += fmt::format("{} = {}, write {}", terms, s, s % 10);
    carry = s / 10;
    if (carry) steps += fmt::format(" carry {}", carry);
    steps += "\n";
    a /= 10;
    b /= 10;
  } while (a > 0 || b > 0);
  if (carry) steps += fmt::format("carry {}\n", carry);
  return steps;
}

std::string sum_trace(const std::vector<int64_t>& terms) {
  std::string steps;
  int64_t acc = terms.at(0);
  for (size_t i = 1; i < terms.size(); ++i) {
    steps += fmt::format("{} + {} = {}\n", acc, terms[i], acc + terms[i]);
    acc += terms[i];
  }
  return steps;
}

std::string pretrain_text(const Problem& p) {
  return p.question + "\n" + p.trace;
}

std::string glance_trace(const std::string& answer) {
  return "<think>\nAt a glance: " + answer + ".\n</think>\n<answer>" + answer + "</answer>";
}

namespace {

int64_t draw_operand(std::mt19937_64& rng, int64_t max_digits) {
  const int64_t d = std::uniform_int_distribution<int64_t>(1, max_digits)(rng);
  int64_t lo = 1;
  for (int64_t i = 1; i < d; ++i) lo *= 10;
  const int64_t hi = lo * 10 - 1;
  return std::uniform_int_distribution<int64_t>(d == 1 ? 0 : lo, hi)(rng);
}

}  // namespace

std::vector<Problem> generate_problems(const SyntheticConfig& c) {
  // The number of distinct problems: every ordered tuple of operands.
  double operands = 1;
  for (int64_t i = 0; i < c.digits; ++i) operands *= 10;
  double distinct = operands * operands;
  if (c.task == "sum") {
    distinct = 0;
    double tuples = operands;
    for (int64_t n = 2; n <= c.terms; ++n) distinct += (tuples *= operands);
  }
  const double want = static_cast<double>(c.train_size + c.test_size);
  R1_CHECK(want <= distinct / 2,
           "synthetic {}: {} train + {} test problems need more than half of the {} distinct "
           "problems with {} digits: ask for fewer or more digits",
           c.task, c.train_size, c.test_size, distinct, c.digits);
  std::mt19937_64 rng(c.seed ^ 0x5eed'add1'710fULL);
  std::set<std::string> seen;
  std::vector<Problem> out;
  while (static_cast<double>(out.size()) < want) {
    Problem p;
    std::string steps;
    int64_t total = 0;
    if (c.task == "sum") {
      const int64_t n = std::uniform_int_distribution<int64_t>(2, c.terms)(rng);
      std::vector<int64_t> terms;
      for (int64_t i = 0; i < n; ++i) terms.push_back(draw_operand(rng, c.digits));
      std::string expr;
      for (const int64_t t : terms) {
        if (!expr.empty()) expr += " + ";
        expr += std::to_string(t);
        total += t;
      }
      p.question = "What is " + expr + "?";
      if (seen.count(p.question)) continue;
      steps = sum_trace(terms);
    } else {
      const int64_t a = draw_operand(rng, c.digits), b = draw_operand(rng, c.digits);
      p.question = fmt::format("What is {} + {}?", a, b);
      if (seen.count(p.question)) continue;
      total = a + b;
      steps = addition_trace(a, b);
    }
    seen.insert(p.question);
    p.answer = std::to_string(total);
    p.trace = "<think>\n" + steps + "</think>\n<answer>" + p.answer + "</answer>";
    out.push_back(std::move(p));
  }
  return out;
}

Json write_synthetic_dataset(const SyntheticConfig& c, const std::string& dir) {
  const std::vector<Problem> all = generate_problems(c);
  const int64_t sft_size = c.sft_size > 0 ? c.sft_size : c.train_size;
  std::vector<Json> train, test, sft, pretrain;
  // Which rows answer at a glance: a stream of its own, so the problems do not depend on it.
  std::mt19937_64 pick(c.seed ^ 0xd1ec'7a45'0f2aULL);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (size_t i = 0; i < all.size(); ++i) {
    const Problem& p = all[i];
    const auto n = static_cast<int64_t>(i);
    if (n < c.train_size) {
      train.push_back(Json{{"question", p.question}, {"answer", p.answer}});
      pretrain.push_back(Json{{"text", pretrain_text(p)}});
      if (n < sft_size) {
        const bool direct = u(pick) < c.direct_fraction;
        sft.push_back(
            Json{{"question", p.question}, {"answer", direct ? glance_trace(p.answer) : p.trace}});
      }
    } else {
      test.push_back(Json{{"question", p.question}, {"answer", p.answer}});
    }
  }
  fs::create_directories(dir);
  write_jsonl_file_atomic((fs::path(dir) / "train.jsonl").string(), train);
  write_jsonl_file_atomic((fs::path(dir) / "test.jsonl").string(), test);
  write_jsonl_file_atomic((fs::path(dir) / "sft.jsonl").string(), sft);
  write_jsonl_file_atomic((fs::path(dir) / "pretrain.jsonl").string(), pretrain);
  return Json{{"train", train.size()},
              {"test", test.size()},
              {"sft", sft.size()},
              {"pretrain", pretrain.size()}};
}

}  // namespace r1kit::recipes

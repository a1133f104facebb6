// Fuzz target for the math verifier's LaTeX parser and its front end: any bytes, as an answer to
// parse, a (gold, prediction) pair to verify, or a completion to extract answers from, give a
// result that keeps the promised invariants, never a crash, an escaping exception or a hang. A
// libFuzzer binary with R1KIT_FUZZ=ON; always also a replay test (R1KIT_FUZZ_REPLAY_MAIN: seed
// answers plus deterministic mutations). CLN and GiNaC leak a little by design (tests/lsan.supp):
//   LSAN_OPTIONS=suppressions=tests/lsan.supp ./latex_fuzz corpus -max_total_time=60
//
// The first input byte picks the mode (low 2 bits) and options; the rest is the payload:
//   0  parse_math (bit 2: plain text) within a deadline: ok with a printable value, or an error
//      text; only BudgetExceeded may escape, and only once the deadline has passed.
//   1  verify(gold, pred) with the payload split at the first NUL (bits 2-3: math, gsm8k,
//      countdown): a valid verdict; skip always has a reason; the call never throws.
//   2  extract_answers with every source on: non-empty, distinct candidates, at most
//      max_candidates, each no longer than the input.
//   3  normalize_answer: no exception; the output of normalising twice is stable in size
//      (normalising cannot grow without bound).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "rewards/budget.h"
#include "rewards/math_extract.h"
#include "rewards/math_value.h"
#include "rewards/math_verify.h"

namespace {

using namespace r1kit::rewards;

#define FUZZ_ASSERT(cond)                                                                    \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "latex_fuzz: invariant failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

constexpr double kBudget = 0.25;  // seconds: a fuzzer wants many executions per second

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void fuzz_parse(const std::string& text, bool plain) {
  SymbolTable symbols;
  Deadline deadline(kBudget);
  ParseOptions o;
  o.plain_text = plain;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    const ParseResult r = parse_math(text, symbols, deadline, o);
    if (r.ok) {
      FUZZ_ASSERT(r.error.empty());
      (void)to_string(r.value);
    } else {
      FUZZ_ASSERT(!r.error.empty());
    }
  } catch (const BudgetExceeded&) {
    FUZZ_ASSERT(since(t0) >= kBudget * 0.5);  // the clock is read every few ticks, never early
  }
}

void fuzz_verify(const std::string& payload, int mode_bits) {
  const size_t nul = payload.find('\0');
  const std::string gold = payload.substr(0, nul);
  const std::string pred = nul == std::string::npos ? payload : payload.substr(nul + 1);
  VerifyOptions o;
  o.mode = mode_bits == 1   ? VerifyMode::gsm8k
           : mode_bits == 2 ? VerifyMode::countdown
                            : VerifyMode::math;
  o.time_budget_s = kBudget;
  const auto t0 = std::chrono::steady_clock::now();
  VerifyResult r;
  try {
    r = verify(gold, pred, o);
  } catch (...) {
    FUZZ_ASSERT(!"verify threw");
  }
  const int v = static_cast<int>(r.verdict);
  FUZZ_ASSERT(v >= 0 && v <= 2);
  if (r.verdict == Verdict::skip) FUZZ_ASSERT(!r.reason.empty());
  FUZZ_ASSERT(since(t0) < kBudget + 2.0);  // the budget holds (with room for sanitizers)
}

void fuzz_extract(const std::string& text) {
  ExtractOptions o;
  o.last_math = o.last_number = o.whole_text = true;
  o.choices = "ABCDE";
  o.max_candidates = 9;
  const auto c = extract_answers(text, o);
  FUZZ_ASSERT(c.size() <= o.max_candidates);
  for (size_t i = 0; i < c.size(); ++i) {
    FUZZ_ASSERT(!c[i].text.empty());
    FUZZ_ASSERT(c[i].text.size() <= text.size());
    FUZZ_ASSERT(std::strlen(answer_source_name(c[i].source)) > 0);
    for (size_t j = 0; j < i; ++j) FUZZ_ASSERT(c[i].text != c[j].text);
  }
}

void fuzz_normalize(const std::string& text) {
  std::string once, twice;
  try {
    once = normalize_answer(text);
    twice = normalize_answer(once);
  } catch (...) {
    FUZZ_ASSERT(!"normalize_answer threw");
  }
  FUZZ_ASSERT(once.size() <= 4 * text.size() + 64);
  FUZZ_ASSERT(twice.size() <= 4 * once.size() + 64);
}

}  // namespace

// Returns 0 for every input; crashes (abort, sanitizer report, escaping exception) are findings.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode & 3) {
    case 0:
      fuzz_parse(payload, (mode & 4) != 0);
      break;
    case 1:
      fuzz_verify(payload, (mode >> 2) & 3);
      break;
    case 2:
      fuzz_extract(payload);
      break;
    default:
      fuzz_normalize(payload);
  }
  return 0;
}

#if defined(R1KIT_FUZZ_REPLAY_MAIN)
// --- Replay driver: seeds + deterministic mutations, for ctest ---------------------------------

#include <filesystem>

#include "core/fs.h"

namespace {

using Bytes = std::vector<uint8_t>;

Bytes seed(uint8_t mode, const std::string& payload) {
  Bytes b(payload.size() + 1);
  b[0] = mode;
  if (!payload.empty()) std::memcpy(b.data() + 1, payload.data(), payload.size());
  return b;
}

std::vector<Bytes> generated_seeds() {
  const char* answers[] = {
      "\\frac{14}{3}",
      "\\left( 3, \\frac{\\pi}{2} \\right)",
      "x^2 + 2x + 1 = 0",
      "\\sqrt[3]{2} + \\dfrac{1}{\\sqrt{2}}",
      "[-3, 2) \\cup (4, \\infty)",
      "\\{1, 2, 3\\}",
      "\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}",
      "2\\sin^2 x + \\cos(2x)",
      "10^{10^{10}} + 9!!",
      "\\text{(C)}",
      "50\\%",
      "\\$1,234.50",
      "e^{i\\pi} + 1",
      "a \\le b < c",
      "x \\in [0, 1]",
      "3.14159",
      "\\binom{10}{3} \\cdot \\log_2 8",
      "1 \\pm \\sqrt{5}",
  };
  std::vector<Bytes> seeds;
  for (const char* a : answers) {
    seeds.push_back(seed(0, a));
    seeds.push_back(seed(4, a));
    seeds.push_back(seed(3, a));
  }
  seeds.push_back(seed(1, std::string("\\frac{1}{2}") + '\0' + "The answer is $0.5$."));
  seeds.push_back(seed(1, std::string("(1,2)") + '\0' + "<answer>\\boxed{(1, 2)}</answer>"));
  seeds.push_back(seed(5, std::string("1,234") + '\0' + "so she pays $1234.\n#### 1,234"));
  seeds.push_back(
      seed(9, std::string("30,100,93=23") + '\0' + "<answer>100 - 93 + 30 - 14</answer>"));
  seeds.push_back(seed(2,
                       "<think>\\boxed{1}</think><answer>The final answer is $\\frac{1}{2}$. "
                       "Answer: (B)</answer> #### 3"));
  seeds.push_back(seed(2, "\\boxed{\\boxed{\\{1\\}}} $x$ \\(y\\) 1,000.5 \\boxed 7"));
  return seeds;
}

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

void run_one(const Bytes& b, uint64_t* count) {
  LLVMFuzzerTestOneInput(b.data(), b.size());
  ++*count;
}

// Every truncation, bit flips, LaTeX-ish bytes written over each position, and random edits
// (including long repeats of a slice: deep nesting and long chains).
void mutate_and_run(const Bytes& s, uint64_t rng_seed, uint64_t* count) {
  run_one(s, count);
  for (size_t len = 1; len < s.size(); ++len) run_one(Bytes(s.begin(), s.begin() + len), count);
  const uint8_t specials[] = {0x00, '{', '}', '\\', '^', '_', '(',  ')',  '[',
                              ']',  '$', '!', '/',  ',', '&', 0xC3, 0xFF, '9'};
  for (size_t i = 1; i < s.size(); ++i) {
    Bytes b = s;
    b[i] ^= static_cast<uint8_t>(1u << (i % 8));
    run_one(b, count);
    b = s;
    b[i] = specials[i % std::size(specials)];
    run_one(b, count);
  }
  Rng rng{rng_seed * 0x9E3779B97F4A7C15ull + 1};
  for (int iter = 0; iter < 300; ++iter) {
    Bytes b = s;
    for (int e = 0, edits = 1 + static_cast<int>(rng.next() % 6); e < edits && b.size() > 1; ++e) {
      const size_t pos = 1 + rng.next() % (b.size() - 1);
      switch (rng.next() % 4) {
        case 0:
          b[pos] = static_cast<uint8_t>(rng.next());
          break;
        case 1:
          b.insert(b.begin() + static_cast<ptrdiff_t>(pos),
                   specials[rng.next() % std::size(specials)]);
          break;
        case 2:
          b.erase(b.begin() + static_cast<ptrdiff_t>(pos));
          break;
        default: {
          const size_t len = 1 + rng.next() % std::min<size_t>(12, b.size() - pos);
          Bytes slice(b.begin() + static_cast<ptrdiff_t>(pos),
                      b.begin() + static_cast<ptrdiff_t>(pos + len));
          for (int k = 0, reps = 1 + static_cast<int>(rng.next() % 200); k < reps; ++k)
            b.insert(b.begin() + static_cast<ptrdiff_t>(pos), slice.begin(), slice.end());
        }
      }
    }
    run_one(b, count);
  }
}

Bytes bytes_of(const std::string& path) {
  const std::string s = r1kit::read_file(path);
  return Bytes(s.begin(), s.end());
}

}  // namespace

// Usage: latex_fuzz_replay [--write-seeds DIR] [FILE_OR_DIR ...]
//   no arguments: run the built-in seeds with mutations;
//   files or directories: replay them as they are (e.g. a libFuzzer corpus or crash input);
//   --write-seeds DIR: write the seeds into DIR (a starting corpus for libFuzzer).
int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const std::vector<Bytes> seeds = generated_seeds();
  uint64_t count = 0;
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    fs::create_directories(argv[2]);
    for (size_t i = 0; i < seeds.size(); ++i)
      r1kit::write_file_atomic((fs::path(argv[2]) / ("seed" + std::to_string(i))).string(),
                               std::string(seeds[i].begin(), seeds[i].end()));
    std::printf("wrote %zu seeds to %s\n", seeds.size(), argv[2]);
    return 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (argc > 1) {
    for (int a = 1; a < argc; ++a) {
      if (fs::is_directory(argv[a])) {
        for (const auto& e : fs::directory_iterator(argv[a]))
          if (e.is_regular_file()) run_one(bytes_of(e.path().string()), &count);
      } else {
        run_one(bytes_of(argv[a]), &count);
      }
    }
  } else {
    for (size_t i = 0; i < seeds.size(); ++i) mutate_and_run(seeds[i], i + 1, &count);
  }
  std::printf("latex_fuzz_replay: %llu inputs in %.1f s, no crash\n",
              static_cast<unsigned long long>(count), since(t0));
  return count > 0 ? 0 : 1;
}
#endif  // R1KIT_FUZZ_REPLAY_MAIN

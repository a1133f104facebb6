// Math verifier throughput on one core: verifications per second for the MATH-500 pairs (each
// answer against its own full solution, whose last \boxed{} the verifier extracts) and the GSM8K
// test pairs (each gold against one reformatting of itself, the forms cycling over the rows);
// also MATH-500 answers against the next row's solution (the incorrect path, where no early
// agreement ends the comparison).
// One JSON line per figure: {"figure","value","unit","floor","ratio",...}; floor is the goal
// (2,000/s/core) and ratio value/floor. With --oracle FILE (the output of
// bench/math_verify_oracle.py on the pairs of --write-pairs), each line also carries Math-Verify's
// figure and our speed-up over it.
// Usage: rewards_bench [--seconds S] [--data DIR] [--write-pairs FILE] [--oracle FILE]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "rewards/math_verify.h"

namespace {

using r1kit::Json;
namespace rw = r1kit::rewards;

struct Pair {
  std::string gold, pred;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string with_commas(long long v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

// Eight of the reformattings of tests/rewards/math_datasets_test.cpp.
std::string reformat(long long v, size_t form) {
  const std::string plain = std::to_string(v), commas = with_commas(v);
  switch (form % 8) {
    case 0:
      return commas;
    case 1:
      return "$" + commas;
    case 2:
      return plain + ".";
    case 3:
      return "\\boxed{" + commas + "}";
    case 4:
      return "\\boxed{" + plain + " \\text{ dollars}}";
    case 5:
      return "The answer is $" + commas + ".";
    case 6:
      return "So she has " + plain + " apples.\n#### " + commas;
    default:
      return "<think>\n2 + 2 = 4\n</think>\n<answer>" + plain + "</answer>";
  }
}

std::vector<Pair> math500_pairs(const std::string& dir) {
  std::vector<Pair> pairs;
  for (const Json& j : r1kit::read_jsonl_file(dir + "/math500/test.jsonl"))
    pairs.push_back({j.at("answer").get<std::string>(), j.at("solution").get<std::string>()});
  return pairs;
}

std::vector<Pair> gsm8k_pairs(const std::string& dir) {
  std::vector<Pair> pairs;
  for (const Json& j : r1kit::read_jsonl_file(dir + "/gsm8k/test.jsonl")) {
    const std::string answer = j.at("answer").get<std::string>();
    const std::string gold = trim(answer.substr(answer.rfind("####") + 4));
    std::string digits;
    for (char c : gold)
      if (c != ',') digits += c;
    pairs.push_back({gold, reformat(std::stoll(digits), pairs.size())});
  }
  return pairs;
}

struct Figure {
  double per_s = 0;
  size_t correct = 0, skip = 0, rounds = 0;
};

// Whole passes over the pairs until `seconds` have passed (at least one).
Figure measure(const std::vector<Pair>& pairs, rw::VerifyMode mode, double seconds) {
  rw::VerifyOptions o;
  o.mode = mode;
  Figure f;
  size_t calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    size_t correct = 0, skip = 0;
    for (const Pair& p : pairs) {
      const rw::VerifyResult r = rw::verify(p.gold, p.pred, o);
      correct += r.verdict == rw::Verdict::correct;
      skip += r.verdict == rw::Verdict::skip;
    }
    f.correct = correct;
    f.skip = skip;
    calls += pairs.size();
    ++f.rounds;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  f.per_s = static_cast<double>(calls) / elapsed;
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::string data = R1KIT_SOURCE_DIR "/tests/shared/data/math", write_pairs, oracle;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "rewards_bench: %s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--seconds")
      seconds = std::atof(argv[++i]);
    else if (a == "--data")
      data = argv[++i];
    else if (a == "--write-pairs")
      write_pairs = argv[++i];
    else if (a == "--oracle")
      oracle = argv[++i];
    else {
      std::fprintf(stderr, "rewards_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  try {
    const std::vector<Pair> math500 = math500_pairs(data);
    std::vector<Pair> neighbours;  // answer i vs solution i + 1: the (mostly) incorrect path
    for (size_t i = 0; i < math500.size(); ++i)
      neighbours.push_back({math500[i].gold, math500[(i + 1) % math500.size()].pred});
    const std::vector<std::pair<std::string, std::vector<Pair>>> sets = {
        {"math500", math500}, {"gsm8k", gsm8k_pairs(data)}, {"math500_neighbour", neighbours}};
    if (!write_pairs.empty()) {
      std::vector<Json> rows;
      for (const auto& [name, pairs] : sets)
        for (const Pair& p : pairs)
          rows.push_back({{"set", name}, {"gold", p.gold}, {"pred", p.pred}});
      r1kit::write_jsonl_file_atomic(write_pairs, rows);
      std::fprintf(stderr, "rewards_bench: wrote %zu pairs to %s\n", rows.size(),
                   write_pairs.c_str());
    }
    std::map<std::string, double> theirs;  // figure -> Math-Verify's verifications/s
    if (!oracle.empty())
      for (const Json& j : r1kit::read_jsonl_file(oracle)) theirs[j.at("figure")] = j.at("value");
    for (const auto& [name, pairs] : sets) {
      const rw::VerifyMode mode = name == "gsm8k" ? rw::VerifyMode::gsm8k : rw::VerifyMode::math;
      const Figure f = measure(pairs, mode, seconds);
      const std::string figure = "verify_" + name;
      nlohmann::ordered_json line = {{"figure", figure},
                                     {"value", f.per_s},
                                     {"unit", "verifications/s/core"},
                                     {"floor", 2000},
                                     {"ratio", f.per_s / 2000.0},
                                     {"pairs", pairs.size()},
                                     {"correct", f.correct},
                                     {"skip", f.skip},
                                     {"rounds", f.rounds}};
      if (auto it = theirs.find(figure); it != theirs.end() && it->second > 0) {
        line["math_verify"] = it->second;
        line["vs_math_verify"] = f.per_s / it->second;
      }
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rewards_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

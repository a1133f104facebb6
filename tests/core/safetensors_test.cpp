// safetensors: round trips of every dtype, byte-exact output against a hand-built file and against
// files written by the reference implementation (tests/core/data), every class of corrupt header,
// truncation at every length, random byte flips, and sharded checkpoints.
#include "core/safetensors.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "core/fs.h"
#include "tests/common/test_util.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;
using testing::cpu_ctx;
using testing::expect_error_contains;

constexpr DType kEveryDType[] = {DType::f64,     DType::f32,     DType::f16,     DType::bf16,
                                 DType::f8_e4m3, DType::f8_e5m2, DType::f8_e8m0, DType::i64,
                                 DType::i32,     DType::i16,     DType::i8,      DType::u64,
                                 DType::u32,     DType::u16,     DType::u8,      DType::boolean};

// A fresh directory per test, removed afterwards.
using TempDir = testing::ScratchDir;

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::string s = read_file(path);
  return {s.begin(), s.end()};
}

void put_u64_le(std::vector<uint8_t>* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A file made of a header text (padded with spaces to a multiple of 8) and `data_bytes` bytes.
std::vector<uint8_t> raw_file(std::string header, size_t data_bytes) {
  while (header.size() % 8) header += ' ';
  std::vector<uint8_t> out;
  put_u64_le(&out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<uint8_t>(i * 7 + 1));
  return out;
}

// Random bytes in a tensor of any dtype (bool gets 0/1).
Tensor random_bytes_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng,
                           std::string name) {
  Tensor t = cpu_ctx().empty(shape, dtype, std::move(name));
  auto* p = static_cast<uint8_t*>(t.data());
  for (size_t i = 0; i < t.nbytes(); ++i)
    p[i] = dtype == DType::boolean ? static_cast<uint8_t>(rng() & 1) : static_cast<uint8_t>(rng());
  return t;
}

bool same_bytes(std::span<const uint8_t> a, const void* b, size_t n) {
  return a.size() == n && (n == 0 || std::memcmp(a.data(), b, n) == 0);
}

// Touches every tensor the way a loader would; returns a checksum so nothing is optimised away.
uint64_t touch_all(const SafetensorsFile& f) {
  uint64_t sum = 0;
  for (const auto& name : f.names()) {
    for (uint8_t b : f.bytes(name)) sum += b;
    try {
      TensorView v = f.view(name);
      const size_t esize = dtype_size(v.dtype);
      for (int64_t i = 0; i < v.numel(); ++i) {
        const auto* p = static_cast<const uint8_t*>(v.element(i));
        sum += p[0] + p[esize - 1];  // first and last byte of every element
      }
    } catch (const Error&) {
      // >4 dims or unaligned: reported, not a crash.
    }
  }
  return sum;
}

// Expects parse_safetensors_header on a file with this header to fail naming the file and needles.
void expect_header_error(const std::string& header, size_t data_bytes,
                         std::vector<std::string> needles) {
  needles.push_back("bad.safetensors");
  expect_error_contains(
      [&] { SafetensorsFile::from_bytes(raw_file(header, data_bytes), "bad.safetensors"); },
      needles);
}

std::string fixture(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/core/data/" + name;
}

TEST(Safetensors, RoundTripEveryDType) {
  TempDir dir;
  std::mt19937_64 rng(1);
  const std::vector<Shape> shapes = {{3}, {2, 3}, {}, {1, 2, 3, 1}, {0}, {5, 1}, {2, 2, 2, 2}};
  std::vector<Tensor> owned;
  std::vector<TensorView> views;
  for (size_t i = 0; i < std::size(kEveryDType); ++i) {
    DType t = kEveryDType[i];
    owned.push_back(random_bytes_tensor(shapes[i % shapes.size()], t, rng,
                                        fmt::format("layers.{}.{}", i, dtype_name(t))));
    views.push_back(owned.back().view());
  }
  const std::string path = dir.file("every.safetensors");
  write_safetensors(path, views);
  EXPECT_FALSE(fs::exists(atomic_temp_path(path)));

  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f.size(), views.size());
  auto names = f.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const auto& v : views) {
    SCOPED_TRACE(v.name);
    ASSERT_TRUE(f.has(v.name));
    const auto& info = f.info(v.name);
    EXPECT_EQ(info.dtype, v.dtype);
    EXPECT_EQ(info.shape, v.dims());
    EXPECT_EQ(info.nbytes(), v.nbytes());
    EXPECT_TRUE(same_bytes(f.bytes(v.name), v.data, v.nbytes()));
    // Views point into the mapping, are aligned (the writer orders data by alignment) and named.
    TensorView got = f.view(v.name);
    EXPECT_EQ(got.data, f.bytes(v.name).data());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data) % dtype_size(v.dtype), 0u);
    EXPECT_EQ(got.name, v.name);
    EXPECT_EQ(got.dims(), v.dims());
    EXPECT_EQ(got.dtype, v.dtype);
    EXPECT_TRUE(got.device.is_cpu());
    Tensor copy = cpu_ctx().empty(v.dims(), v.dtype);
    f.copy_to(v.name, copy);
    EXPECT_TRUE(same_bytes(f.bytes(v.name), copy.data(), copy.nbytes()));
  }
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));

  // The in-memory form is the same bytes, and from_bytes reads it the same way.
  auto bytes = safetensors_to_bytes(views);
  EXPECT_EQ(bytes, file_bytes(path));
  auto g = SafetensorsFile::from_bytes(bytes, "mem");
  EXPECT_EQ(g.names(), names);
}

TEST(Safetensors, HeaderIsPaddedToEightAndSaysFormatPt) {
  std::mt19937_64 rng(2);
  for (int len = 1; len <= 9; ++len) {  // names of every length modulo 8
    Tensor t = random_bytes_tensor({3}, DType::bf16, rng, std::string(len, 'w'));
    SafetensorsWriter w;
    w.add(t.view());
    std::string h = w.header();
    EXPECT_EQ(h.size() % 8, 0u);
    EXPECT_NE(h.find("\"__metadata__\":{\"format\":\"pt\"}"), std::string::npos) << h;
    // Padding is spaces after the closing brace.
    auto close = h.find_last_of('}');
    EXPECT_EQ(h.find_first_not_of(' ', close + 1), std::string::npos);
    auto bytes = w.to_bytes();
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
    EXPECT_EQ(n, h.size());
    EXPECT_EQ(std::string(bytes.begin() + 8, bytes.begin() + 8 + n), h);
  }
  // A caller's own format wins; other metadata is kept, sorted by key.
  Tensor t = random_bytes_tensor({2}, DType::f32, rng, "x");
  auto bytes = safetensors_to_bytes({t.view()}, {{"format", "mlx"}, {"a", "b \"q\" é"}});
  auto f = SafetensorsFile::from_bytes(bytes, "mem");
  EXPECT_EQ(f.metadata(),
            (std::map<std::string, std::string>{{"format", "mlx"}, {"a", "b \"q\" é"}}));
  std::string text(bytes.begin(), bytes.end());
  EXPECT_NE(text.find("{\"__metadata__\":{\"a\":\"b \\\"q\\\" é\",\"format\":\"mlx\"}"),
            std::string::npos);
}

TEST(Safetensors, ByteExactAgainstHandBuiltFile) {
  auto& ctx = cpu_ctx();
  Tensor b = testing::tensor_from(ctx, {2}, DType::f32, {1.0, -2.0}, "b");
  Tensor a = testing::tensor_from(ctx, {3}, DType::i16, {1, -2, 3}, "a");
  Tensor c = testing::tensor_from(ctx, {}, DType::u8, {7}, "cc");
  // Data order: F32 before I16 before U8 (alignment), whatever the names say.
  const std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"a\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":[8,14]},"
      "\"cc\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[14,15]}}"
      "       ";  // 193 bytes of JSON + 7 spaces = 200
  ASSERT_EQ(header.size(), 200u);
  std::vector<uint8_t> want = {200, 0, 0, 0, 0, 0, 0, 0};
  want.insert(want.end(), header.begin(), header.end());
  const std::vector<uint8_t> data = {0x00, 0x00, 0x80, 0x3f,              // 1.0f
                                     0x00, 0x00, 0x00, 0xc0,              // -2.0f
                                     0x01, 0x00, 0xfe, 0xff, 0x03, 0x00,  // 1, -2, 3 (i16)
                                     0x07};
  want.insert(want.end(), data.begin(), data.end());

  std::vector<TensorView> views = {c.view(), a.view(), b.view()};  // input order is irrelevant
  EXPECT_EQ(safetensors_to_bytes(views), want);
  TempDir dir;
  write_safetensors(dir.file("hand.safetensors"), views);
  EXPECT_EQ(file_bytes(dir.file("hand.safetensors")), want);

  // And the empty file.
  const std::string empty_header = "{\"__metadata__\":{\"format\":\"pt\"}}";  // 32 bytes
  std::vector<uint8_t> want_empty = {32, 0, 0, 0, 0, 0, 0, 0};
  want_empty.insert(want_empty.end(), empty_header.begin(), empty_header.end());
  EXPECT_EQ(safetensors_to_bytes({}), want_empty);
  EXPECT_EQ(SafetensorsFile::from_bytes(want_empty, "empty").size(), 0u);
}

TEST(Safetensors, ReadsReferenceFixtureExactly) {
  auto f = SafetensorsFile::open(fixture("tiny.safetensors"));
  EXPECT_EQ(f.names(), (std::vector<std::string>{"empty", "model.embed_tokens.weight",
                                                 "model.norm.weight", "position_ids", "scalar"}));
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));

  TensorView embed = f.view("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::bf16);
  EXPECT_EQ(embed.dims(), (Shape{3, 4}));
  for (int64_t i = 0; i < 12; ++i)
    EXPECT_EQ(load_as_double(embed.data, DType::bf16, i), (static_cast<double>(i) - 6) * 0.25);

  TensorView norm = f.view("model.norm.weight");
  EXPECT_EQ(norm.dtype, DType::f32);
  const float want_norm[] = {1.0f, 1.5f, -2.0f, 0.125f, 3.0e-3f};
  ASSERT_EQ(norm.numel(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(norm.ptr<float>()[i], want_norm[i]);

  TensorView pos = f.view("position_ids");
  EXPECT_EQ(pos.dtype, DType::i64);
  EXPECT_EQ(pos.dims(), (Shape{2, 3}));
  const int64_t want_pos[] = {0, 1, 2, 10, 11, int64_t{1} << 40};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(pos.ptr<int64_t>()[i], want_pos[i]);

  TensorView scalar = f.view("scalar");
  EXPECT_EQ(scalar.ndim, 0);
  EXPECT_EQ(scalar.ptr<float>()[0], 42.5f);
  EXPECT_EQ(f.view("empty").dims(), (Shape{0, 3}));

  // Our writer lays these tensors out exactly as the reference writer did.
  std::vector<TensorView> views;
  for (const auto& n : f.names()) views.push_back(f.view(n));
  EXPECT_EQ(safetensors_to_bytes(views), file_bytes(fixture("tiny.safetensors")));
}

TEST(Safetensors, ReadsEveryDTypeFromReferenceAndRewritesItByteExact) {
  const std::string path = fixture("all_dtypes.safetensors");
  auto f = SafetensorsFile::open(path);
  const std::pair<const char*, DType> expected[] = {{"bool", DType::boolean},
                                                    {"uint8", DType::u8},
                                                    {"int8", DType::i8},
                                                    {"float8_e5m2", DType::f8_e5m2},
                                                    {"float8_e4m3fn", DType::f8_e4m3},
                                                    {"float8_e8m0fnu", DType::f8_e8m0},
                                                    {"int16", DType::i16},
                                                    {"uint16", DType::u16},
                                                    {"float16", DType::f16},
                                                    {"bfloat16", DType::bf16},
                                                    {"int32", DType::i32},
                                                    {"uint32", DType::u32},
                                                    {"float32", DType::f32},
                                                    {"float64", DType::f64},
                                                    {"int64", DType::i64},
                                                    {"uint64", DType::u64}};
  const std::vector<Shape> shapes = {{3}, {2, 3}, {}, {1, 2, 3, 1}, {0}, {1, 1, 1, 2, 1}};
  ASSERT_EQ(f.size(), std::size(expected) + 2);
  for (size_t i = 0; i < std::size(expected); ++i) {
    std::string name = fmt::format("t{:02d}.{}", i, expected[i].first);
    SCOPED_TRACE(name);
    const auto& info = f.info(name);
    EXPECT_EQ(info.dtype, expected[i].second);
    EXPECT_EQ(info.shape, shapes[i % shapes.size()]);
    auto bytes = f.bytes(name);
    for (size_t k = 0; k < bytes.size(); ++k) {
      uint8_t want = expected[i].second == DType::boolean ? k % 2 : (17 * i + 29 * k + 3) % 256;
      ASSERT_EQ(bytes[k], want) << "byte " << k;
    }
    if (info.shape.size() > 4) {
      expect_error_contains([&] { f.view(name); }, {path, name, "at most 4"});
    } else {
      EXPECT_EQ(f.view(name).data, bytes.data());
    }
  }
  // Rewrite (5-dim tensors through the fill-function path): same bytes as the reference writer.
  SafetensorsWriter w;
  for (const auto& t : f.tensors()) {
    auto src = f.bytes(t.name);
    w.add(t.name, t.dtype, t.shape, [src](void* dst) {
      if (!src.empty()) std::memcpy(dst, src.data(), src.size());
    });
  }
  EXPECT_EQ(w.to_bytes(), file_bytes(path));
}

TEST(Safetensors, EveryHeaderErrorNamesFileAndTensor) {
  const std::string ok = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  // Sanity: the baseline is valid.
  EXPECT_EQ(SafetensorsFile::from_bytes(raw_file("{" + ok + "}", 8), "ok").size(), 1u);

  // File-level problems.
  expect_error_contains(
      [] {
        SafetensorsFile::from_bytes({1, 2, 3}, "bad.safetensors");
      },
      {"bad.safetensors", "3 bytes", "shorter than the 8-byte"});
  {
    auto bytes = raw_file("{" + ok + "}", 8);
    bytes[0] = 0xff;  // header length 511: past the end
    bytes[1] = 0x01;
    expect_error_contains([&] { SafetensorsFile::from_bytes(bytes, "bad.safetensors"); },
                          {"bad.safetensors", "runs past the end of the file"});
    std::vector<uint8_t> huge;
    put_u64_le(&huge, kSafetensorsMaxHeaderBytes + 1);
    huge.resize(64, ' ');
    expect_error_contains([&] { SafetensorsFile::from_bytes(huge, "bad.safetensors"); },
                          {"bad.safetensors", "exceeds the 100000000-byte limit"});
    std::vector<uint8_t> max_u64(16, 0xff);
    expect_error_contains([&] { SafetensorsFile::from_bytes(max_u64, "bad.safetensors"); },
                          {"bad.safetensors", "limit"});
    std::vector<uint8_t> zero(8, 0);
    expect_error_contains([&] { SafetensorsFile::from_bytes(zero, "bad.safetensors"); },
                          {"bad.safetensors", "empty header"});
  }
  expect_header_error("{\"w\xff\":1}", 0, {"not valid JSON", "invalid UTF-8"});
  expect_header_error("{\"w\":{\"dtype\":\"F32\",}", 0, {"not valid JSON", "line 1, column"});
  expect_header_error("[1, 2]", 0, {"must be a JSON object", "array"});
  expect_header_error("{" + ok + "," + ok + "}", 8, {"duplicate key \"w\""});

  // __metadata__.
  expect_header_error("{\"__metadata__\":[1]," + ok + "}", 8, {"__metadata__", "object"});
  expect_header_error("{\"__metadata__\":{\"k\":1}," + ok + "}", 8,
                      {"__metadata__ entry 'k'", "string", "integer"});

  // Tensor entries: every missing or ill-typed field.
  expect_header_error(R"({"w":[1]})", 0, {"tensor 'w'", "must be an object"});
  expect_header_error(R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8,
                      {"tensor ''", "empty name"});
  expect_header_error(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "missing field 'dtype'"});
  expect_header_error(R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "'dtype' must be a string"});
  expect_header_error(R"({"w":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "unknown dtype 'F17'", "BF16"});
  expect_header_error(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1,
                      {"tensor 'w'", "dtype 'F4' is not supported"});
  expect_header_error(R"({"w":{"dtype":"F6_E3M2","shape":[4],"data_offsets":[0,3]}})", 3,
                      {"tensor 'w'", "not supported"});
  expect_header_error(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "missing field 'shape'"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "'shape' must be an array"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "shape[0]", "negative"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "shape[0]", "not an integer"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "not an integer"});
  expect_header_error(
      R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
      {"tensor 'w'", "too large"});
  expect_header_error(
      R"({"w":{"dtype":"U8","shape":[0,18446744073709551615],"data_offsets":[0,0]}})", 0,
      {"tensor 'w'", "too large"});
  expect_header_error(R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}})",
                      8, {"tensor 'w'", "needs more than 2^64"});  // numel * 8 overflows u64
  expect_header_error(R"({"w":{"dtype":"F32","shape":[2]}})", 8,
                      {"tensor 'w'", "missing field 'data_offsets'"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8,
                      {"tensor 'w'", "[begin, end]", "1 elements"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", 8,
                      {"tensor 'w'", "data_offsets end", "negative"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8,
                      {"tensor 'w'", "end 0 is before begin 8"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 7,
                      {"tensor 'w'", "past the end of the data buffer (7 bytes)"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
                      {"tensor 'w'", "hold 8 bytes", "(3) of F32 needs 12 (3 elements x 4 bytes)"});

  // Layout of the data buffer: overlaps, holes, trailing bytes.
  expect_header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      12, {"tensor 'b' bytes [4, 12) overlap tensor 'a' bytes [0, 8)"});
  expect_header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                      8, {"overlap"});
  expect_header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                      20, {"bytes [8, 12)", "before tensor 'b'", "hole"});
  expect_header_error(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12,
                      {"bytes [0, 4)", "tensor 'b'", "hole"});
  expect_header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 9,
                      {"bytes [8, 9) at the end", "'a'"});
  expect_header_error("{}", 3, {"bytes [0, 3) at the end"});

  // open() names the real path.
  TempDir dir;
  const std::string path = dir.file("corrupt.safetensors");
  auto bytes = raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
  expect_error_contains([&] { SafetensorsFile::open(path); }, {path, "tensor 'w'"});
  expect_error_contains([&] { SafetensorsFile::open(dir.file("missing.safetensors")); },
                        {dir.file("missing.safetensors"), "No such file"});
  expect_error_contains([&] { SafetensorsFile::open(dir.path().string()); }, {"directory"});
}

TEST(Safetensors, ZeroSizedTensorsMayShareOffsets) {
  auto f = SafetensorsFile::from_bytes(
      raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("e":{"dtype":"F32","shape":[-0,5],"data_offsets":[8,8]},)"  // -0 is 0
               R"("z":{"dtype":"I64","shape":[0],"data_offsets":[0,0]}})",
               8),
      "zeros");
  EXPECT_EQ(f.size(), 3u);
  EXPECT_EQ(f.view("e").numel(), 0);
  // A zero-sized tensor inside another one's bytes is rejected (as by the reference reader).
  expect_header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                      8, {"overlap"});
}

// Every strict prefix of a valid file fails with an r1kit::Error; only the whole file parses.
TEST(Safetensors, TruncatedAtEveryLengthThrowsCleanly) {
  std::mt19937_64 rng(3);
  Tensor a = random_bytes_tensor({3, 5}, DType::bf16, rng, "a");
  Tensor b = random_bytes_tensor({7}, DType::f32, rng, "b");
  Tensor c = random_bytes_tensor({2, 2}, DType::i64, rng, "c");
  Tensor z = random_bytes_tensor({0}, DType::u8, rng, "z");  // a zero-sized tensor at the end
  auto full = safetensors_to_bytes({a.view(), b.view(), c.view(), z.view()});
  TempDir dir;
  for (size_t len = 0; len < full.size(); ++len) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + len);
    EXPECT_THROW(SafetensorsFile::from_bytes(prefix, "trunc"), Error) << "length " << len;
    if (len % 13 == 0) {  // the mapped path too (a file per length would be slow)
      const std::string path = dir.file("t.safetensors");
      write_file_atomic(path, std::string(prefix.begin(), prefix.end()));
      EXPECT_THROW(SafetensorsFile::open(path), Error) << "length " << len;
    }
  }
  EXPECT_EQ(SafetensorsFile::from_bytes(full, "full").size(), 4u);
}

// Random bit flips anywhere: either a clean Error or a file whose every tensor can be read.
TEST(Safetensors, RandomByteFlipsNeverCrash) {
  std::mt19937_64 rng(4);
  Tensor a = random_bytes_tensor({3, 5}, DType::bf16, rng, "model.layers.0.w");
  Tensor b = random_bytes_tensor({7}, DType::f32, rng, "model.norm");
  Tensor c = random_bytes_tensor({2, 1, 2}, DType::u8, rng, "ids");
  const auto full = safetensors_to_bytes({a.view(), b.view(), c.view()}, {{"k", "v"}});
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto bytes = full;
    int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      // Mostly in the header, where the structure is.
      size_t limit = (rng() % 4 == 0) ? bytes.size() : std::min<size_t>(bytes.size(), 8 + 200);
      bytes[rng() % limit] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    try {
      auto f = SafetensorsFile::from_bytes(bytes, "flip");
      touch_all(f);
      ++parsed;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("flip"), std::string::npos) << e.what();
      ++rejected;
    }
  }
  // Both outcomes happen (data-byte flips parse; structural flips do not).
  EXPECT_GT(parsed, 0);
  EXPECT_GT(rejected, 0);
}

TEST(Safetensors, ViewsAndLookupErrors) {
  // A U8 tensor of odd size before an F32 one: the F32 data is misaligned (another writer's file).
  auto bytes = raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})",
                        5);
  auto f = SafetensorsFile::from_bytes(bytes, "odd.safetensors");
  expect_error_contains([&] { f.view("b"); }, {"odd.safetensors", "'b'", "not aligned", "copy_to"});
  Tensor dst = cpu_ctx().empty({1}, DType::f32);
  f.copy_to("b", dst);
  EXPECT_EQ(std::memcmp(dst.data(), f.bytes("b").data(), 4), 0);
  EXPECT_EQ(f.view("a").ptr<uint8_t>()[0], f.bytes("a")[0]);

  expect_error_contains([&] { f.info("bb"); },
                        {"odd.safetensors", "no tensor named 'bb'", "did you mean 'b'"});
  expect_error_contains([&] { f.view("something.else"); }, {"no tensor named 'something.else'"});
  Tensor wrong_dtype = cpu_ctx().empty({1}, DType::f64);
  expect_error_contains([&] { f.copy_to("b", wrong_dtype); }, {"'b'", "(1) f32", "f64"});
  Tensor wrong_shape = cpu_ctx().empty({1, 1}, DType::f32);
  expect_error_contains([&] { f.copy_to("b", wrong_shape); }, {"'b'", "(1, 1)"});
}

TEST(Safetensors, WriterRejectsBadInput) {
  std::mt19937_64 rng(5);
  Tensor t = random_bytes_tensor({2, 3}, DType::f32, rng, "w");
  SafetensorsWriter w;
  w.add(t.view());
  expect_error_contains([&] { w.add(t.view()); }, {"'w' added twice"});
  expect_error_contains([&] { w.add(t.view().renamed("")); }, {"empty name"});
  expect_error_contains([&] { w.add(t.view().renamed("__metadata__")); }, {"reserved"});
  expect_error_contains([&] { w.add(t.view().renamed("bad\xff")); }, {"not valid UTF-8"});
  TensorView transposed = t.view().renamed("wt");
  std::swap(transposed.shape[0], transposed.shape[1]);
  std::swap(transposed.stride[0], transposed.stride[1]);
  expect_error_contains([&] { w.add(transposed); }, {"'wt'", "not contiguous"});
  TensorView on_gpu = t.view().renamed("g");
  on_gpu.device = Device::cuda(0);
  expect_error_contains([&] { w.add(on_gpu); }, {"'g'", "not on the CPU"});
  expect_error_contains(
      [&] {
        w.add("neg", DType::f32, {2, -1}, [](void*) {});
      },
      {"'neg'", "negative"});
  expect_error_contains([&] { w.set_metadata("k", "\xc3"); }, {"metadata 'k'", "UTF-8"});
  EXPECT_EQ(w.size(), 1u);
}

TEST(Safetensors, WriteIsAtomic) {
  TempDir dir;
  std::mt19937_64 rng(6);
  const std::string path = dir.file("m.safetensors");
  Tensor t = random_bytes_tensor({4}, DType::f32, rng, "w");
  write_safetensors(path, {t.view()});
  const auto before = file_bytes(path);

  // A source that fails half-way: the old file stays, the temporary file is gone.
  SafetensorsWriter w;
  w.add(t.view().renamed("a"));
  w.add("b", DType::f32, {4}, [](void*) { throw Error("device copy failed"); });
  expect_error_contains([&] { w.write(path); }, {"device copy failed"});
  EXPECT_EQ(file_bytes(path), before);
  EXPECT_FALSE(fs::exists(atomic_temp_path(path)));

  // A missing directory is reported with the path.
  expect_error_contains(
      [&] { write_safetensors(dir.file("no/such/dir/x.safetensors"), {t.view()}); },
      {"no/such/dir/x.safetensors", "No such file"});
}

// --- Sharded checkpoints ------------------------------------------------------------------------

TEST(Safetensors, ShardedRoundTrip) {
  TempDir dir;
  std::mt19937_64 rng(7);
  std::vector<Tensor> owned;
  owned.push_back(random_bytes_tensor({10}, DType::f32, rng, "a.weight"));  // 40 B
  owned.push_back(random_bytes_tensor({5}, DType::bf16, rng, "b.weight"));  // 10 B
  owned.push_back(random_bytes_tensor({30}, DType::f32, rng, "c.big"));     // 120 B > limit
  owned.push_back(random_bytes_tensor({3, 3}, DType::i64, rng, "d.ids"));   // 72 B
  owned.push_back(random_bytes_tensor({2}, DType::f16, rng, "e.bias"));     // 4 B
  owned.push_back(random_bytes_tensor({0}, DType::f32, rng, "f.empty"));    // 0 B
  std::vector<TensorView> views;
  uint64_t total = 0;
  for (auto& t : owned) {
    views.push_back(t.view());
    total += t.nbytes();
  }
  const uint64_t limit = 64;
  write_sharded(dir.path().string(), views, limit, {{"producer", "test"}});

  // Name order: [a b] (50 B), [c] (alone: larger than the limit), [d] (72 B), [e f].
  const std::vector<std::vector<std::string>> want_shards = {
      {"a.weight", "b.weight"}, {"c.big"}, {"d.ids"}, {"e.bias", "f.empty"}};
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors")));
  Json index = read_json_file(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  for (size_t s = 0; s < want_shards.size(); ++s) {
    std::string shard = fmt::format("model-{:05d}-of-00004.safetensors", s + 1);
    auto f = SafetensorsFile::open(dir.file(shard));
    EXPECT_EQ(f.names(), want_shards[s]) << shard;
    EXPECT_EQ(f.metadata().at("producer"), "test");
    for (const auto& n : want_shards[s]) EXPECT_EQ(index["weight_map"][n], shard);
  }
  EXPECT_EQ(index["weight_map"].size(), views.size());
  EXPECT_EQ(safetensors_shard_name(2, 4), "model-00002-of-00004.safetensors");

  auto ckpt = ShardedCheckpoint::open(dir.path().string());
  EXPECT_EQ(ckpt.num_shards(), 4u);
  EXPECT_EQ(ckpt.source(), dir.file("model.safetensors.index.json"));
  EXPECT_EQ(ckpt.index_metadata()["total_size"].get<uint64_t>(), total);
  std::vector<std::string> names;
  for (const auto& v : views) names.push_back(v.name);
  EXPECT_EQ(ckpt.names(), names);
  for (const auto& v : views) {
    SCOPED_TRACE(v.name);
    EXPECT_TRUE(ckpt.has(v.name));
    EXPECT_TRUE(same_bytes(ckpt.bytes(v.name), v.data, v.nbytes()));
    EXPECT_EQ(ckpt.view(v.name).dims(), v.dims());
    EXPECT_EQ(ckpt.info(v.name).dtype, v.dtype);
  }
  EXPECT_EQ(ckpt.shard_of("c.big").path(), dir.file("model-00002-of-00004.safetensors"));
  // The index file can be named directly.
  auto by_index = ShardedCheckpoint::open(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(by_index.num_shards(), 4u);
  EXPECT_EQ(by_index.names(), names);
  expect_error_contains([&] { ckpt.view("c.bigg"); },
                        {"model.safetensors.index.json", "'c.bigg'", "did you mean 'c.big'"});

  // Writing again with a large limit: one plain model.safetensors, and the stale index is gone.
  write_sharded(dir.path().string(), views, 1 << 20);
  EXPECT_TRUE(fs::exists(dir.file("model.safetensors")));
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors.index.json")));
  auto single = ShardedCheckpoint::open(dir.path().string());
  EXPECT_EQ(single.num_shards(), 1u);
  EXPECT_EQ(single.names(), names);
  EXPECT_EQ(single.source(), dir.file("model.safetensors"));
  // A .safetensors path opens directly too.
  EXPECT_EQ(ShardedCheckpoint::open(dir.file("model.safetensors")).size(), views.size());
}

TEST(Safetensors, ShardedErrorsNameIndexTensorAndShard) {
  TempDir dir;
  std::mt19937_64 rng(8);
  Tensor a = random_bytes_tensor({16}, DType::f32, rng, "a");
  Tensor b = random_bytes_tensor({16}, DType::f32, rng, "b");
  write_sharded(dir.path().string(), {a.view(), b.view()}, 64);
  const std::string index = dir.file("model.safetensors.index.json");
  const std::string shard2 = "model-00002-of-00002.safetensors";

  // Missing shard file.
  fs::rename(dir.file(shard2), dir.file("moved"));
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); },
                        {index, "tensor 'b'", shard2, "cannot be read", "No such file"});
  fs::rename(dir.file("moved"), dir.file(shard2));

  // A tensor listed in a shard that lacks it.
  Json j = read_json_file(index);
  j["weight_map"]["ghost"] = shard2;
  write_json_file_atomic(index, j);
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); },
                        {index, "tensor 'ghost'", shard2, "no such tensor"});

  // Shard names must stay inside the directory.
  j["weight_map"].erase("ghost");
  j["weight_map"]["b"] = "../" + shard2;
  write_json_file_atomic(index, j);
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); },
                        {index, "tensor 'b'", "not a file name inside"});

  // Ill-formed index files.
  j["weight_map"]["b"] = 3;
  write_json_file_atomic(index, j);
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); },
                        {index, "tensor 'b'", "shard file name", "integer"});
  write_json_file_atomic(index, Json{{"metadata", Json::object()}});
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); },
                        {index, "missing required field 'weight_map'"});
  write_file_atomic(index, "{\"weight_map\": {\n  \"a\": }\n");
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); }, {index + ":2:"});

  // A corrupt shard names both the index and the shard.
  write_json_file_atomic(index, Json{{"weight_map", {{"a", "model-00001-of-00002.safetensors"}}}});
  write_file_atomic(dir.file("model-00001-of-00002.safetensors"), "garbage");
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); },
                        {index, "tensor 'a'", "model-00001-of-00002.safetensors", "shorter"});

  // Not a checkpoint at all.
  fs::remove_all(dir.path());
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); },
                        {dir.path().string(), "does not exist"});
  fs::create_directories(dir.path());
  expect_error_contains([&] { ShardedCheckpoint::open(dir.path().string()); },
                        {"neither", "model.safetensors.index.json"});
}

}  // namespace
}  // namespace r1kit

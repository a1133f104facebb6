// TensorBoard event files: CRC-32C vectors, the exact bytes of a record, round trips through the
// writer and the reader (float rounding, non-finite values, several values per Event), corruption
// and truncation errors, file naming, and metrics rows flattened into tags.
#include "core/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <tuple>

#include "core/fs.h"
#include "tests/common/test_util.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_contains;
using testing::ScratchDir;

// The bytes written as lowercase hex.
std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const char ch : s) {
    const auto b = static_cast<unsigned char>(ch);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

uint64_t le64(const std::string& s, size_t off) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(s[off + i])) << (8 * i);
  return v;
}
uint32_t le32(const std::string& s, size_t off) {
  return static_cast<uint32_t>(le64(s.substr(off, 4) + std::string(4, '\0'), 0));
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The byte offsets at which records start (walking the length fields).
std::vector<size_t> record_offsets(const std::string& bytes) {
  std::vector<size_t> out;
  for (size_t off = 0; off + 12 <= bytes.size(); off += 16 + le64(bytes, off)) out.push_back(off);
  return out;
}

TEST(TensorBoard, Crc32cVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the standard check value
  EXPECT_EQ(crc32c(""), 0u);
  // RFC 3720 (iSCSI), appendix B.4.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<char>(i);
    down[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(crc32c(up), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down), 0x113FDB5Cu);
  // Continuing a CRC over a split gives the CRC of the whole.
  const std::string s = "The quick brown fox jumps over the lazy dog";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    const uint32_t head = crc32c_extend(0, s.data(), cut);
    EXPECT_EQ(crc32c_extend(head, s.data() + cut, s.size() - cut), crc32c(s)) << cut;
  }
  // The mask: rotate right by 15, add the constant.
  EXPECT_EQ(mask_crc32c(0), 0xa282ead8u);
  EXPECT_EQ(mask_crc32c(0xE3069283u), ((0xE3069283u >> 15) | (0xE3069283u << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, RecordByteLayout) {
  ScratchDir dir;
  std::string path;
  {
    TensorBoardWriter w(dir.file("run"));
    path = w.path();
    w.add_scalar("loss", 5, 0.5, 1.5);
  }
  const std::string name = fs::path(path).filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_EQ(fs::path(path).parent_path(), fs::path(dir.file("run")));

  const std::string bytes = read_file(path);
  ASSERT_EQ(bytes.size(), 40u + 42u);
  // Record 0: the file version, {1: wall_time, 3: "brain.Event:2"}: 9 + 2 + 13 = 24 bytes.
  EXPECT_EQ(le64(bytes, 0), 24u);
  EXPECT_EQ(le32(bytes, 8), mask_crc32c(crc32c(bytes.substr(0, 8))));
  EXPECT_EQ(bytes[12], '\x09');
  EXPECT_EQ(bytes.substr(21, 15), std::string("\x1a\x0d") + "brain.Event:2");
  EXPECT_EQ(le32(bytes, 36), mask_crc32c(crc32c(bytes.substr(12, 24))));
  double wall = 0;
  std::memcpy(&wall, bytes.data() + 13, 8);
  EXPECT_NEAR(wall, unix_seconds_now(), 60.0);

  // Record 1, worked out by hand (the CRCs with a bitwise CRC-32C, not this table):
  //   1a00000000000000                length 26
  //   129bd82d                        masked CRC of the length
  //   09 000000000000f83f             wall_time 1.5
  //   10 05                           step 5
  //   2a 0d                           summary, 13 bytes
  //     0a 0b                         value, 11 bytes
  //       0a 04 6c6f7373              tag "loss"
  //       15 0000003f                 simple_value 0.5f
  //   21209a65                        masked CRC of the payload
  EXPECT_EQ(hex(bytes.substr(40)),
            "1a00000000000000129bd82d"
            "09000000000000f83f10052a0d0a0b0a046c6f7373150000003f"
            "21209a65");
  EXPECT_EQ(hex(tfrecord_frame(encode_scalar_event(1.5, 5, {{"loss", 0.5}}))),
            hex(bytes.substr(40)));
}

TEST(TensorBoard, RoundTrip) {
  ScratchDir dir;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::string path;
  {
    TensorBoardWriter w(dir.str(), ".grpo");
    path = w.path();
    EXPECT_EQ(path.substr(path.size() - 5), ".grpo");
    for (int64_t step = 0; step < 4; ++step) {
      w.add_scalar("train/loss", step, 1.0 / static_cast<double>(step + 3), 100.0 + step);
      w.add_scalars(step,
                    {{"reward_mean", 0.1 * static_cast<double>(step)}, {"time_s/rollout", 2.25}},
                    100.5 + step);
    }
    w.add_scalars(7, {}, 1.0);                     // nothing written
    w.add_scalar("big", 1LL << 40, 1e300, 200.0);  // beyond float range: +inf
    w.add_scalar("nan", -3, nan, 201.0);
    w.add_scalar("ninf", 9, -inf, 202.0);
    w.add_scalar("tiny", 10, 1e-50, 203.0);  // underflows to 0
    w.add_scalar("max", 11, static_cast<double>(std::numeric_limits<float>::max()), 204.0);
    w.add_scalar("utf8 é", 12, -2.5, 205.0);
    w.flush();
  }
  const std::vector<TbScalar> got = read_tensorboard_scalars(path);
  ASSERT_EQ(got.size(), 4u * 3u + 6u);
  for (int64_t step = 0; step < 4; ++step) {
    const TbScalar* s = &got[static_cast<size_t>(step) * 3];
    EXPECT_EQ(s[0].tag, "train/loss");
    EXPECT_EQ(s[0].step, step);
    EXPECT_EQ(s[0].value,
              static_cast<double>(static_cast<float>(1.0 / static_cast<double>(step + 3))));
    EXPECT_EQ(s[0].wall_time, 100.0 + static_cast<double>(step));
    EXPECT_EQ(s[1].tag, "reward_mean");
    EXPECT_EQ(s[1].step, step);
    EXPECT_EQ(s[1].value, static_cast<double>(static_cast<float>(0.1 * static_cast<double>(step))));
    EXPECT_EQ(s[1].wall_time, 100.5 + static_cast<double>(step));
    EXPECT_EQ(s[2].tag, "time_s/rollout");
    EXPECT_EQ(s[2].step, step);
    EXPECT_EQ(s[2].value, 2.25);
    EXPECT_EQ(s[2].wall_time, 100.5 + static_cast<double>(step));
  }
  const TbScalar* t = &got[12];
  EXPECT_EQ(t[0].tag, "big");
  EXPECT_EQ(t[0].step, 1LL << 40);
  EXPECT_EQ(t[0].value, inf);
  EXPECT_EQ(t[1].tag, "nan");
  EXPECT_EQ(t[1].step, -3);  // a negative step survives the 10-byte varint
  EXPECT_TRUE(std::isnan(t[1].value));
  EXPECT_EQ(t[2].value, -inf);
  EXPECT_EQ(t[3].value, 0.0);
  EXPECT_EQ(t[4].value, static_cast<double>(std::numeric_limits<float>::max()));
  EXPECT_EQ(t[5].tag, "utf8 é");
  EXPECT_EQ(t[5].value, -2.5);
  EXPECT_EQ(t[5].wall_time, 205.0);
}

TEST(TensorBoard, FloatRangeEdges) {
  // Just above FLT_MAX rounds back to FLT_MAX; from FLT_MAX + half an ulp (2^103) on it is inf.
  const double fmax = static_cast<double>(std::numeric_limits<float>::max());
  const double half_ulp = std::ldexp(1.0, 103);
  auto stored = [](double v) {
    const std::string e = encode_scalar_event(0, 0, {{"x", v}});
    float f = 0;
    std::memcpy(&f, e.data() + e.size() - 4, 4);
    return f;
  };
  EXPECT_EQ(stored(fmax + half_ulp / 2), std::numeric_limits<float>::max());
  EXPECT_EQ(stored(-(fmax + half_ulp / 2)), -std::numeric_limits<float>::max());
  EXPECT_EQ(stored(fmax + half_ulp), std::numeric_limits<float>::infinity());
  EXPECT_EQ(stored(-1e39), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(stored(0.1), 0.1f);
}

TEST(TensorBoard, EveryAddReachesTheFile) {
  ScratchDir dir;
  TensorBoardWriter w(dir.str());
  EXPECT_EQ(read_tensorboard_scalars(w.path()).size(), 0u);  // the version record only
  EXPECT_EQ(fs::file_size(w.path()), 40u);
  for (int64_t step = 1; step <= 3; ++step) {
    w.add_scalar("x", step, static_cast<double>(step));
    // Read while the writer is alive, as TensorBoard does during a run.
    const auto got = read_tensorboard_scalars(w.path());
    ASSERT_EQ(got.size(), static_cast<size_t>(step));
    EXPECT_EQ(got.back().step, step);
    EXPECT_NEAR(got.back().wall_time, unix_seconds_now(), 60.0);
  }
}

TEST(TensorBoard, CorruptionNamesFileAndOffset) {
  ScratchDir dir;
  std::string path;
  {
    TensorBoardWriter w(dir.str());
    path = w.path();
    w.add_scalar("a", 1, 1.0, 10.0);
    w.add_scalar("b", 2, 2.0, 11.0);
    w.add_scalar("c", 3, 3.0, 12.0);
  }
  const std::string good = read_file(path);
  const std::vector<size_t> offs = record_offsets(good);
  ASSERT_EQ(offs.size(), 4u);
  ASSERT_EQ(offs[2], 40u + 39u);
  const std::string bad_path = dir.file("bad.tfevents");
  const std::string at = fmt::format("record at byte {}", offs[2]);

  // A flipped payload byte of the third record.
  std::string bytes = good;
  bytes[offs[2] + 20] = static_cast<char>(bytes[offs[2] + 20] ^ 0x40);
  write_file_atomic(bad_path, bytes);
  for (const bool allow : {false, true})
    expect_error_contains([&] { read_tensorboard_scalars(bad_path, allow); },
                          {bad_path, at, "payload CRC mismatch"});

  // A flipped byte of its length field: caught by the length CRC, even when tails are allowed.
  bytes = good;
  bytes[offs[2]] = static_cast<char>(bytes[offs[2]] ^ 0x01);
  write_file_atomic(bad_path, bytes);
  for (const bool allow : {false, true})
    expect_error_contains([&] { read_tensorboard_scalars(bad_path, allow); },
                          {bad_path, at, "length CRC mismatch"});

  // A flipped byte of a stored CRC.
  bytes = good;
  bytes[offs[3] - 1] = static_cast<char>(bytes[offs[3] - 1] ^ 0x80);
  write_file_atomic(bad_path, bytes);
  expect_error_contains([&] { read_tensorboard_scalars(bad_path); },
                        {bad_path, at, "payload CRC mismatch"});

  // Every truncation: an error inside a record, unless the tail is allowed; then the whole
  // records before the cut are returned.
  for (size_t cut = 0; cut <= good.size(); ++cut) {
    write_file_atomic(bad_path, good.substr(0, cut));
    size_t whole = 0;  // records entirely before the cut, and where the cut record starts
    while (whole + 1 < offs.size() && offs[whole + 1] <= cut) ++whole;
    const bool at_boundary = cut == good.size() || cut == offs[whole];
    const size_t scalars_before = cut == good.size() ? 3 : whole == 0 ? 0 : whole - 1;
    if (at_boundary) {
      EXPECT_EQ(read_tensorboard_scalars(bad_path).size(), scalars_before) << cut;
    } else {
      expect_error_contains([&] { read_tensorboard_scalars(bad_path); },
                            {bad_path, fmt::format("record at byte {}", offs[whole]),
                             "the file ends inside the record"});
      EXPECT_EQ(read_tensorboard_scalars(bad_path, true).size(), scalars_before) << cut;
    }
  }

  // Trailing garbage that happens to be a short header.
  write_file_atomic(bad_path, good + "xyz");
  expect_error_contains(
      [&] { read_tensorboard_scalars(bad_path); },
      {bad_path, fmt::format("record at byte {}", good.size()), "record header (3 of 12 bytes)"});
  EXPECT_EQ(read_tensorboard_scalars(bad_path, true).size(), 3u);

  expect_error_contains([&] { read_tensorboard_scalars(dir.file("missing")); },
                        {dir.file("missing")});
}

TEST(TensorBoard, MalformedPayloadsAndForeignFields) {
  ScratchDir dir;
  const std::string path = dir.file("x.tfevents");
  // Valid CRCs around a payload that is not an Event.
  write_file_atomic(path, tfrecord_frame(encode_file_version_event(1.0)) +
                              tfrecord_frame(std::string("\x2a\x02\x0a\x09", 4)));
  expect_error_contains([&] { read_tensorboard_scalars(path); },
                        {path, "record at byte 40", "not a valid Event", "Summary.value"});
  write_file_atomic(path, tfrecord_frame(std::string("\x10\xff", 2)));
  expect_error_contains([&] { read_tensorboard_scalars(path); },
                        {path, "record at byte 0", "varint runs past the end"});
  write_file_atomic(path, tfrecord_frame(std::string("\x23", 1)));  // field 4, a group
  expect_error_contains([&] { read_tensorboard_scalars(path); },
                        {path, "field 4 has wire type 3, which is not supported"});
  write_file_atomic(path, tfrecord_frame(std::string("\x11\x00", 2)));  // step with wire type 1
  expect_error_contains([&] { read_tensorboard_scalars(path); },
                        {path, "Event.step", "wire type 1, expected 0"});

  // What other writers add is skipped: unknown Event fields (source_metadata 10, a
  // varint 99), Value.metadata (9), a Value with an image (4) and no simple_value.
  std::string value;  // {tag "acc", metadata {}, simple_value 0.75f}
  value += std::string("\x0a\x03", 2) + "acc" + std::string("\x4a\x00", 2);
  value += std::string("\x15\x00\x00\x40\x3f", 5);
  std::string image_value = std::string("\x0a\x03", 2) + "img" + std::string("\x22\x02\x08\x01", 4);
  std::string summary = std::string("\x0a", 1) + static_cast<char>(image_value.size()) +
                        image_value + std::string("\x0a", 1) + static_cast<char>(value.size()) +
                        value;
  std::string event = encode_file_version_event(3.0).substr(0, 9);  // wall_time 3.0
  event += std::string("\x52\x02\x0a\x00", 4);                      // source_metadata
  event += std::string("\x98\x06\x07", 3);                          // field 99, varint 7
  event += std::string("\x10\x2a", 2);                              // step 42
  event += std::string("\x2a", 1) + static_cast<char>(summary.size()) + summary;
  write_file_atomic(path, tfrecord_frame(event));
  const auto got = read_tensorboard_scalars(path);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].tag, "acc");
  EXPECT_EQ(got[0].step, 42);
  EXPECT_EQ(got[0].value, 0.75);
  EXPECT_EQ(got[0].wall_time, 3.0);
}

TEST(TensorBoard, FileNamesAndErrors) {
  ScratchDir dir;
  const std::string logdir = dir.file("a/b/c");  // parents created
  TensorBoardWriter w1(logdir);
  TensorBoardWriter w2(logdir);  // same second: a distinct name, the first file is left alone
  TensorBoardWriter w3(logdir, ".sft");
  EXPECT_NE(w1.path(), w2.path());
  EXPECT_NE(w2.path(), w3.path());
  EXPECT_EQ(event_files(logdir).size(), 3u);
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  for (const auto* w : {&w1, &w2, &w3}) {
    const std::string name = fs::path(w->path()).filename().string();
    EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
    EXPECT_NE(name.find(std::string(".") + host), std::string::npos) << name;
  }
  EXPECT_EQ(w3.path().substr(w3.path().size() - 4), ".sft");
  w1.add_scalar("x", 1, 1.0);
  w2.add_scalar("x", 1, 2.0);
  EXPECT_EQ(read_tensorboard_scalars(w1.path()).at(0).value, 1.0);
  EXPECT_EQ(read_tensorboard_scalars(w2.path()).at(0).value, 2.0);

  expect_error_contains([&] { w1.add_scalar("", 1, 1.0); }, {w1.path(), "empty tag"});
  expect_error_contains([&] { w1.add_scalar("bad\xff", 1, 1.0); },
                        {w1.path(), "not valid UTF-8", "byte 3"});
  expect_error_contains([&] { w1.add_scalar("x", 1, 1.0, std::nan("")); },
                        {w1.path(), "wall time"});
  w1.add_scalar("y", 2, 3.0);  // a rejected add writes nothing and leaves the writer usable
  EXPECT_EQ(read_tensorboard_scalars(w1.path()).size(), 2u);

  write_file_atomic(dir.file("plain"), "x");
  expect_error_contains([&] { TensorBoardWriter w(dir.file("plain")); },
                        {dir.file("plain"), "cannot create the TensorBoard log directory"});
  expect_error_contains([&] { TensorBoardWriter w(logdir, "/x"); }, {"must not contain '/'"});
}

TEST(TensorBoard, FlattenMetricsRow) {
  const Json row = Json::parse(R"({
    "type": "train", "step": 3, "total_steps": 10, "reward_mean": 0.25, "ok": true,
    "mtp_loss": [1.0, 2.0], "kl": null, "big": 18446744073709551615, "neg": -4,
    "time_s": {"rollout": 0.1, "step": 0.5, "note": "x", "deep": {"a": 1}, "empty": {}}
  })");
  const auto flat = flatten_metrics_row(row, "row");
  const std::vector<std::pair<std::string, double>> want = {{"big", 18446744073709551615.0},
                                                            {"neg", -4.0},
                                                            {"reward_mean", 0.25},
                                                            {"time_s/deep/a", 1.0},
                                                            {"time_s/rollout", 0.1},
                                                            {"time_s/step", 0.5},
                                                            {"total_steps", 10.0}};
  EXPECT_EQ(flat, want);
  // Values built in memory can be non-finite (JSON text cannot hold them): they pass through.
  const auto nan_row = flatten_metrics_row(
      Json{{"step", 1}, {"loss", std::numeric_limits<double>::quiet_NaN()}}, "row");
  ASSERT_EQ(nan_row.size(), 1u);
  EXPECT_TRUE(std::isnan(nan_row[0].second));
  expect_error_contains([] { flatten_metrics_row(Json::array({1}), "metrics.jsonl:4"); },
                        {"metrics.jsonl:4", "expected an object"});
}

TEST(TensorBoard, WriteScalarsFromMetrics) {
  ScratchDir dir;
  const std::string logdir = dir.file("tb");
  std::vector<Json> rows;
  rows.push_back(Json::parse(
      R"({"type":"train","step":1,"loss":2.5,"time_s":{"rollout":0.125,"update":0.5},"tag":"x"})"));
  rows.push_back(Json::parse(R"({"type":"eval","step":1,"eval_loss":3.0})"));
  rows.push_back(Json::parse(R"({"type":"note","step":1,"text":"only strings"})"));  // no scalar
  rows.push_back(Json::parse(R"({"type":"train","step":2,"loss":1.5,"time_s":{"rollout":0.25}})"));
  write_scalars_from_metrics(logdir, rows, "grpo");
  const auto files = event_files(logdir);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].substr(files[0].size() - 5), ".grpo");
  const auto got = read_tensorboard_scalars(files[0]);
  std::vector<std::tuple<std::string, int64_t, double>> seen;
  for (const auto& s : got) seen.emplace_back(s.tag, s.step, s.value);
  const std::vector<std::tuple<std::string, int64_t, double>> want = {
      {"grpo/loss", 1, 2.5},          {"grpo/time_s/rollout", 1, 0.125},
      {"grpo/time_s/update", 1, 0.5}, {"grpo/eval_loss", 1, 3.0},
      {"grpo/loss", 2, 1.5},          {"grpo/time_s/rollout", 2, 0.25}};
  EXPECT_EQ(seen, want);
  // One Event per row: the records are the version record plus one per row with scalars.
  EXPECT_EQ(record_offsets(read_file(files[0])).size(), 1u + 3u);

  // No prefix: bare keys; a prefix with odd characters gives a safe file suffix.
  write_scalars_from_metrics(dir.file("bare"), {rows[1]}, "");
  EXPECT_EQ(read_tensorboard_scalars(event_files(dir.file("bare")).at(0)).at(0).tag, "eval_loss");
  write_scalars_from_metrics(dir.file("odd"), {rows[1]}, "stage 2/grpo");
  const std::string odd = event_files(dir.file("odd")).at(0);
  EXPECT_EQ(odd.substr(odd.size() - 13), ".stage_2_grpo");
  EXPECT_EQ(read_tensorboard_scalars(odd).at(0).tag, "stage 2/grpo/eval_loss");

  // A bad row is reported before any file is made; no rows with scalars make no file.
  const std::string never = dir.file("never");
  expect_error_contains(
      [&] {
        write_scalars_from_metrics(never, {rows[0], Json{{"loss", 1.0}}}, "sft");
      },
      {never, "metrics_rows[1]", "'step'"});
  expect_error_contains(
      [&] {
        write_scalars_from_metrics(never, {rows[0], Json{{"step", 1.5}}}, "sft");
      },
      {"metrics_rows[1]", "'step' must be", "integer"});
  expect_error_contains([&] { write_scalars_from_metrics(never, {Json("x")}, "sft"); },
                        {"metrics_rows[0]", "expected an object"});
  write_scalars_from_metrics(never, {rows[2]}, "sft");
  write_scalars_from_metrics(never, {}, "sft");
  EXPECT_FALSE(fs::exists(never));
}

}  // namespace
}  // namespace r1kit

// TensorBoard event files: CRC-32C, TFRecord framing, hand-encoded Event protobufs, the writer on a
// POSIX file descriptor, the checking reader, and metrics rows to scalars.
#include "core/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"

namespace r1kit {
namespace {

// --- CRC-32C ------------------------------------------------------------------------------------

constexpr uint32_t kCrc32cPoly = 0x82F63B78u;  // Castagnoli, bit-reflected

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// --- Little-endian and protobuf encoding --------------------------------------------------------

constexpr uint32_t kWireVarint = 0;
constexpr uint32_t kWireFixed64 = 1;
constexpr uint32_t kWireLen = 2;
constexpr uint32_t kWireFixed32 = 5;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, uint32_t field, uint32_t wire) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | wire);
}
void put_len_field(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kWireLen);
  put_varint(out, bytes.size());
  out.append(bytes);
}
void put_double_field(std::string& out, uint32_t field, double v) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kWireFixed64);
  put_u64(out, bits);
}
void put_float_field(std::string& out, uint32_t field, float v) {
  uint32_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kWireFixed32);
  put_u32(out, bits);
}

// Round-to-nearest double -> float without the undefined behaviour of converting a value outside
// the float range: beyond FLT_MAX + half an ulp (2^103) the result is ±inf, as IEEE rounding gives.
float to_float(double v) {
  constexpr double kMax = static_cast<double>(std::numeric_limits<float>::max());
  if (std::isfinite(v) && std::fabs(v) > kMax) {
    const float big = std::fabs(v) < kMax + std::ldexp(1.0, 103)
                          ? std::numeric_limits<float>::max()
                          : std::numeric_limits<float>::infinity();
    return v < 0 ? -big : big;
  }
  return static_cast<float>(v);
}

// --- Protobuf decoding --------------------------------------------------------------------------

// A bounded view of protobuf bytes; every read checks the bounds and throws a description (the
// caller adds the file and record offset).
struct Cursor {
  const uint8_t* p;
  const uint8_t* end;

  bool done() const { return p == end; }
  size_t left() const { return static_cast<size_t>(end - p); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p == end) R1_THROW("a varint runs past the end of its message");
      const uint8_t b = *p++;
      if (shift == 63 && b > 1) R1_THROW("a varint does not fit in 64 bits");
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    R1_THROW("a varint is longer than 10 bytes");
  }
  const uint8_t* take(size_t n, const char* what) {
    if (n > left()) R1_THROW("{} needs {} bytes but only {} are left", what, n, left());
    const uint8_t* q = p;
    p += n;
    return q;
  }
  Cursor sub(const char* what) {
    const uint64_t n = varint();
    if (n > left()) R1_THROW("{} of {} bytes runs past the end of its message", what, n);
    const uint8_t* q = take(static_cast<size_t>(n), what);
    return Cursor{q, q + n};
  }
  void skip(uint32_t field, uint32_t wire) {
    switch (wire) {
      case kWireVarint:
        varint();
        return;
      case kWireFixed64:
        take(8, "a 64-bit field");
        return;
      case kWireLen:
        sub("a length-delimited field");
        return;
      case kWireFixed32:
        take(4, "a 32-bit field");
        return;
      default:
        R1_THROW("field {} has wire type {}, which is not supported", field, wire);
    }
  }
};

// Reads a field key; throws for field number 0.
std::pair<uint32_t, uint32_t> read_key(Cursor& c) {
  const uint64_t key = c.varint();
  const uint64_t field = key >> 3;
  if (field == 0 || field > (1u << 29) - 1) R1_THROW("invalid field number {}", field);
  return {static_cast<uint32_t>(field), static_cast<uint32_t>(key & 7)};
}

void expect_wire(uint32_t field, uint32_t wire, uint32_t expected, const char* name) {
  if (wire != expected)
    R1_THROW("field {} ({}) has wire type {}, expected {}", field, name, wire, expected);
}

// Summary.Value: the tag and the simple_value when there is one.
void parse_value(Cursor c, std::vector<TbScalar>* out) {
  TbScalar s;
  bool has_simple = false;
  while (!c.done()) {
    const auto [field, wire] = read_key(c);
    if (field == 1) {
      expect_wire(field, wire, kWireLen, "Value.tag");
      Cursor t = c.sub("Value.tag");
      s.tag.assign(reinterpret_cast<const char*>(t.p), t.left());
    } else if (field == 2) {
      expect_wire(field, wire, kWireFixed32, "Value.simple_value");
      const uint32_t bits = get_u32(c.take(4, "Value.simple_value"));
      float f = 0;
      std::memcpy(&f, &bits, sizeof f);
      s.value = f;
      has_simple = true;
    } else {
      c.skip(field, wire);
    }
  }
  if (has_simple) out->push_back(std::move(s));
}

// One Event: its simple values (step and wall_time filled in once the whole message is read, as a
// later occurrence of a field wins in protobuf).
void parse_event(Cursor c, std::vector<TbScalar>* out) {
  const size_t first = out->size();
  double wall_time = 0;
  int64_t step = 0;
  while (!c.done()) {
    const auto [field, wire] = read_key(c);
    if (field == 1) {
      expect_wire(field, wire, kWireFixed64, "Event.wall_time");
      const uint64_t bits = get_u64(c.take(8, "Event.wall_time"));
      std::memcpy(&wall_time, &bits, sizeof wall_time);
    } else if (field == 2) {
      expect_wire(field, wire, kWireVarint, "Event.step");
      step = static_cast<int64_t>(c.varint());
    } else if (field == 5) {
      expect_wire(field, wire, kWireLen, "Event.summary");
      Cursor summary = c.sub("Event.summary");
      while (!summary.done()) {
        const auto [f, w] = read_key(summary);
        if (f == 1) {
          expect_wire(f, w, kWireLen, "Summary.value");
          parse_value(summary.sub("Summary.value"), out);
        } else {
          summary.skip(f, w);
        }
      }
    } else {
      c.skip(field, wire);
    }
  }
  for (size_t i = first; i < out->size(); ++i) {
    (*out)[i].step = step;
    (*out)[i].wall_time = wall_time;
  }
}

// --- Writer helpers -----------------------------------------------------------------------------

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string h(buf);
  for (char& ch : h)
    if (ch == '/') ch = '_';
  return h;
}

// Characters safe in a file name suffix.
std::string file_name_part(std::string_view s) {
  std::string out(s);
  for (char& ch : out) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
    if (!ok) ch = '_';
  }
  return out;
}

void flatten_into(const Json& j, const std::string& prefix,
                  std::vector<std::pair<std::string, double>>* out) {
  for (const auto& [key, v] : j.items()) {
    const std::string name = prefix.empty() ? key : prefix + "/" + key;
    if (v.is_object()) {
      flatten_into(v, name, out);
    } else if (v.is_number()) {
      out->emplace_back(name, v.get<double>());
    }
  }
}

}  // namespace

// --- Format pieces ------------------------------------------------------------------------------

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  for (size_t i = 0; i < size; ++i) c = kCrc32cTable[(c ^ p[i]) & 0xffu] ^ (c >> 8);
  return ~c;
}

uint32_t mask_crc32c(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 16);
  put_u64(out, payload.size());
  put_u32(out, mask_crc32c(crc32c(out)));
  out.append(payload);
  put_u32(out, mask_crc32c(crc32c(payload)));
  return out;
}

std::string encode_scalar_event(double wall_time, int64_t step,
                                const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string v;
    put_len_field(v, 1, tag);
    put_float_field(v, 2, to_float(value));
    put_len_field(summary, 1, v);
  }
  std::string event;
  put_double_field(event, 1, wall_time);
  put_key(event, 2, kWireVarint);
  put_varint(event, static_cast<uint64_t>(step));  // negative steps: 10-byte two's complement
  put_len_field(event, 5, summary);
  return event;
}

std::string encode_file_version_event(double wall_time) {
  std::string event;
  put_double_field(event, 1, wall_time);
  put_len_field(event, 3, "brain.Event:2");
  return event;
}

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// --- TensorBoardWriter --------------------------------------------------------------------------

TensorBoardWriter::TensorBoardWriter(const std::string& logdir, std::string file_suffix) {
  R1_CHECK(!logdir.empty(), "TensorBoard writer: empty log directory");
  R1_CHECK(file_suffix.find('/') == std::string::npos,
           "TensorBoard writer for '{}': the file suffix '{}' must not contain '/'", logdir,
           file_suffix);
  std::error_code ec;
  std::filesystem::create_directories(logdir, ec);
  if (ec || !std::filesystem::is_directory(logdir)) {
    R1_THROW("cannot create the TensorBoard log directory '{}': {}", logdir,
             ec ? ec.message() : std::string("a file of that name exists"));
  }
  const double now = unix_seconds_now();
  const std::string base =
      fmt::format("events.out.tfevents.{}.{}", static_cast<int64_t>(now), host_name());
  for (int n = 0; fd_ < 0; ++n) {
    const std::string name = base + (n == 0 ? std::string() : fmt::format(".{}", n)) + file_suffix;
    path_ = (std::filesystem::path(logdir) / name).string();
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0 && (errno != EEXIST || n >= 1000)) {
      R1_THROW("cannot create the TensorBoard event file '{}': {}", path_, errno_message(errno));
    }
  }
  try {
    std::lock_guard<std::mutex> lock(mu_);
    append_record(encode_file_version_event(now));
  } catch (...) {
    ::close(fd_);
    ::unlink(path_.c_str());
    throw;
  }
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (const std::exception& e) {
    logger()->warn("TensorBoard event file '{}': {}", path_, e.what());
  }
  if (fd_ >= 0) ::close(fd_);
}

void TensorBoardWriter::add_scalar(const std::string& tag, int64_t step, double value,
                                   double wall_time) {
  add_scalars(step, {{tag, value}}, wall_time);
}

void TensorBoardWriter::add_scalars(int64_t step,
                                    const std::vector<std::pair<std::string, double>>& values,
                                    double wall_time) {
  if (values.empty()) return;
  R1_CHECK(std::isfinite(wall_time),
           "TensorBoard event file '{}': step {}: wall time {} is not finite", path_, step,
           wall_time);
  for (const auto& [tag, value] : values) {
    R1_CHECK(!tag.empty(), "TensorBoard event file '{}': step {}: empty tag", path_, step);
    const size_t bad = utf8_invalid_offset(tag);
    R1_CHECK(bad == std::string_view::npos,
             "TensorBoard event file '{}': step {}: tag is not valid UTF-8 (byte {} of \"{}\")",
             path_, step, bad, tag);
  }
  const std::string payload = encode_scalar_event(wall_time, step, values);
  std::lock_guard<std::mutex> lock(mu_);
  append_record(payload);
}

void TensorBoardWriter::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  flush_locked();
}

void TensorBoardWriter::append_record(std::string_view payload) {
  R1_CHECK(!failed_, "cannot write to the TensorBoard event file '{}': an earlier write failed",
           path_);
  buffer_ += tfrecord_frame(payload);
  flush_locked();
}

void TensorBoardWriter::flush_locked() {
  if (fd_ < 0 || buffer_.empty()) return;
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      failed_ = true;
      buffer_.erase(0, done);
      R1_THROW("cannot write to the TensorBoard event file '{}': {}", path_, errno_message(err));
    }
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
}

// --- Reader -------------------------------------------------------------------------------------

std::vector<TbScalar> read_tensorboard_scalars(const std::string& path, bool allow_truncated_tail) {
  const std::string bytes = read_file(path);
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t size = bytes.size();
  std::vector<TbScalar> out;
  size_t off = 0;
  while (off < size) {
    const size_t left = size - off;
    if (left < 12) {
      if (allow_truncated_tail) break;
      R1_THROW("'{}': record at byte {}: the file ends inside the record header ({} of 12 bytes)",
               path, off, left);
    }
    const uint8_t* rec = data + off;
    const uint64_t len = get_u64(rec);
    const uint32_t len_crc = mask_crc32c(crc32c_extend(0, rec, 8));
    if (get_u32(rec + 8) != len_crc) {
      R1_THROW("'{}': record at byte {}: length CRC mismatch (stored {:#010x}, computed {:#010x})",
               path, off, get_u32(rec + 8), len_crc);
    }
    if (left < 16 || len > left - 16) {
      if (allow_truncated_tail) break;
      R1_THROW("'{}': record at byte {}: the file ends inside the record ({} bytes of {} present)",
               path, off, left, len + 16);
    }
    const uint8_t* payload = rec + 12;
    const auto n = static_cast<size_t>(len);
    const uint32_t crc = mask_crc32c(crc32c_extend(0, payload, n));
    if (get_u32(payload + n) != crc) {
      R1_THROW("'{}': record at byte {}: payload CRC mismatch (stored {:#010x}, computed {:#010x})",
               path, off, get_u32(payload + n), crc);
    }
    try {
      parse_event(Cursor{payload, payload + n}, &out);
    } catch (const Error& e) {
      R1_THROW("'{}': record at byte {}: the payload is not a valid Event: {}", path, off,
               e.message());
    }
    off += 16 + n;
  }
  return out;
}

// --- metrics.jsonl bridge -----------------------------------------------------------------------

std::vector<std::pair<std::string, double>> flatten_metrics_row(const Json& row,
                                                                std::string_view where) {
  require_object(row, where);
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [key, v] : row.items()) {
    if (key == "step") continue;
    if (v.is_object()) {
      flatten_into(v, key, &out);
    } else if (v.is_number()) {
      out.emplace_back(key, v.get<double>());
    }
  }
  return out;
}

MetricsTensorBoard::MetricsTensorBoard(std::string logdir, std::string tag_prefix)
    : logdir_(std::move(logdir)), prefix_(std::move(tag_prefix)) {}

void MetricsTensorBoard::add_row(const Json& row, std::string_view where, double wall_time) {
  const auto step = get_required<int64_t>(row, "step", where);
  auto values = flatten_metrics_row(row, where);
  if (values.empty()) return;
  if (!prefix_.empty())
    for (auto& kv : values) kv.first = prefix_ + "/" + kv.first;
  if (!writer_)
    writer_ = std::make_unique<TensorBoardWriter>(
        logdir_, prefix_.empty() ? "" : "." + file_name_part(prefix_));
  writer_->add_scalars(step, values, wall_time);
}

void write_scalars_from_metrics(const std::string& logdir, const std::vector<Json>& metrics_rows,
                                const std::string& tag_prefix) {
  const std::string where =
      fmt::format("TensorBoard scalars '{}' for '{}': metrics_rows", tag_prefix, logdir);
  // Every row is checked before anything is written.
  for (size_t i = 0; i < metrics_rows.size(); ++i) {
    const std::string w = json_where(where, i);
    (void)get_required<int64_t>(metrics_rows[i], "step", w);
    (void)flatten_metrics_row(metrics_rows[i], w);
  }
  MetricsTensorBoard tb(logdir, tag_prefix);
  const double now = unix_seconds_now();
  for (size_t i = 0; i < metrics_rows.size(); ++i)
    tb.add_row(metrics_rows[i], json_where(where, i), now);
}

}  // namespace r1kit

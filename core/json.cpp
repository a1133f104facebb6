// JSON/JSONL reading and writing with positioned errors, typed config accessors (explicitly
// instantiated for the JsonField types) and the unknown-key check with typo suggestions.
#include "core/json.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/fs.h"

namespace r1kit {
namespace {

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1,
// column 2: "; we print our own position, so keep only what follows.
std::string parse_error_detail(const std::string& what) {
  auto p = what.find("parse error");
  if (p != std::string::npos) {
    auto colon = what.find(": ", p);
    if (colon != std::string::npos) return what.substr(colon + 2);
  }
  return what;
}

// nlohmann reports the position of the last character it read, i.e. the end of the offending
// token; editors want its start. Backs up over a string or a number/literal token.
size_t token_start(std::string_view text, size_t offset) {
  if (offset == 0 || offset >= text.size()) return offset;
  auto is_word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  };
  if (text[offset] == '"') {
    // The closing quote of a complete string: find the opening quote (not escaped).
    for (size_t i = offset; i-- > 0;) {
      if (text[i] != '"') continue;
      size_t backslashes = 0;
      while (backslashes < i && text[i - 1 - backslashes] == '\\') ++backslashes;
      if (backslashes % 2 == 0) return i;
    }
    return offset;
  }
  if (!is_word(text[offset])) return offset;
  while (offset > 0 && is_word(text[offset - 1])) --offset;
  return offset;
}

// Parses `text`; on failure returns false with the byte offset and a description of the error.
bool parse_json_at(std::string_view text, Json* out, size_t* err_offset, std::string* err) {
  if (size_t bad = utf8_invalid_offset(text); bad != std::string_view::npos) {
    *err_offset = bad;
    *err = fmt::format("invalid UTF-8 (byte 0x{:02x})", static_cast<uint8_t>(text[bad]));
    return false;
  }
  // One set of keys per open object, to catch duplicate keys.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get_ref<const std::string&>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get_ref<const std::string&>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    *out = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::parse_error& e) {
    *err_offset = token_start(text, e.byte > 0 ? std::min<size_t>(e.byte - 1, text.size()) : 0);
    *err = parse_error_detail(e.what());
    return false;
  } catch (const Json::exception& e) {
    *err_offset = 0;
    *err = e.what();
    return false;
  }
  if (!duplicate.empty()) {
    // The callback has no position; point at the second occurrence of the quoted key.
    std::string quoted = Json(duplicate).dump();
    size_t first = text.find(quoted);
    size_t second = first == std::string_view::npos ? first : text.find(quoted, first + 1);
    *err_offset = second == std::string_view::npos ? 0 : second;
    *err = fmt::format(
        "duplicate key {} in one object (only the last value would be used; remove one)", quoted);
    return false;
  }
  return true;
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

}  // namespace

// --- Text positions and UTF-8 -------------------------------------------------------------------

size_t utf8_invalid_offset(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // no overlong forms
      if (c == 0xed) hi = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // no overlong forms
      if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xc0) != 0x80) return i;
    i += len;
  }
  return std::string_view::npos;
}

TextPosition text_position(std::string_view text, size_t offset) {
  TextPosition pos;
  offset = std::min(offset, text.size());
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++pos.line;
      pos.column = 1;
    } else {
      ++pos.column;
    }
  }
  return pos;
}

// --- Whole documents ----------------------------------------------------------------------------

std::optional<JsonParseFailure> try_parse_json(std::string_view text, Json* out) {
  JsonParseFailure f;
  if (parse_json_at(text, out, &f.offset, &f.message)) return std::nullopt;
  f.position = text_position(text, f.offset);
  return f;
}

Json parse_json(std::string_view text, const std::string& label) {
  Json j;
  if (auto f = try_parse_json(text, &j))
    R1_THROW("{}:{}:{}: {}", label, f->position.line, f->position.column, f->message);
  return j;
}

Json read_json_file(const std::string& path) {
  return parse_json(read_file(path), path);
}

std::string dump_json(const Json& j, int indent, const std::string& label) {
  try {
    return j.dump(indent);
  } catch (const Json::exception& e) {
    R1_THROW("cannot write JSON to '{}': {}", label, e.what());
  }
}

void write_json_file_atomic(const std::string& path, const Json& j, int indent) {
  write_file_atomic(path, dump_json(j, indent, path) + "\n");
}

// --- JSONL --------------------------------------------------------------------------------------

JsonlReader::JsonlReader(std::string path, JsonlReadOptions opts)
    : path_(std::move(path)), opts_(opts) {
  std::error_code ec;
  if (std::filesystem::is_directory(path_, ec))
    R1_THROW("cannot read '{}': it is a directory", path_);
  in_.open(path_, std::ios::binary);
  if (!in_) {
    // Let read-side helpers produce the reason (missing file, permission, directory).
    read_file(path_);
    R1_THROW("cannot open '{}' for reading", path_);
  }
}

bool JsonlReader::next(Json* out) {
  while (std::getline(in_, line_)) {
    ++line_no_;
    const bool last_without_newline = in_.eof();
    std::string_view text = line_;
    if (line_no_ == 1 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (is_blank(text)) continue;
    size_t offset = 0;
    std::string err;
    if (!parse_json_at(text, out, &offset, &err)) {
      if (last_without_newline && opts_.allow_truncated_last_line) {
        truncated_tail_ = true;
        return false;
      }
      // Columns count bytes of the line as stored (a skipped BOM still counts).
      size_t col = offset + 1 + static_cast<size_t>(text.data() - line_.data());
      R1_THROW("{}:{}:{}: {}{}", path_, line_no_, col, err,
               last_without_newline ? " (the last line has no newline: truncated file?)" : "");
    }
    record_line_ = line_no_;
    return true;
  }
  if (in_.bad()) R1_THROW("{}: read error after line {}", path_, line_no_);
  return false;
}

std::vector<Json> read_jsonl_file(const std::string& path, JsonlReadOptions opts) {
  JsonlReader reader(path, opts);
  std::vector<Json> out;
  Json j;
  while (reader.next(&j)) out.push_back(std::move(j));
  return out;
}

JsonlWriter::JsonlWriter(std::string path, Mode mode) : path_(std::move(path)) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (mode == Mode::append ? O_APPEND : O_TRUNC);
  fd_ = ::open(path_.c_str(), flags, 0644);
  if (fd_ < 0) R1_THROW("cannot open '{}' for writing: {}", path_, errno_message(errno));
}

JsonlWriter::~JsonlWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonlWriter::write(const Json& record) {
  R1_CHECK(fd_ >= 0, "cannot write to '{}': the writer is closed", path_);
  std::string line = dump_json(record, -1, path_) + "\n";
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      R1_THROW("cannot write to '{}': {}", path_, errno_message(errno));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void JsonlWriter::sync() {
  R1_CHECK(fd_ >= 0, "cannot sync '{}': the writer is closed", path_);
  if (::fsync(fd_) != 0) R1_THROW("cannot fsync '{}': {}", path_, errno_message(errno));
}

void JsonlWriter::close() {
  if (fd_ < 0) return;
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) R1_THROW("cannot close '{}': {}", path_, errno_message(errno));
}

void write_jsonl_file_atomic(const std::string& path, const std::vector<Json>& records) {
  std::string text;
  for (const auto& r : records) {
    text += dump_json(r, -1, path);
    text += '\n';
  }
  write_file_atomic(path, text);
}

// --- Typed accessors ----------------------------------------------------------------------------

std::string json_type_name(const Json& j) {
  switch (j.type()) {
    case Json::value_t::object:
      return "object";
    case Json::value_t::array:
      return "array";
    case Json::value_t::string:
      return "string";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    case Json::value_t::number_float:
      return "number";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::null:
      return "null";
    default:
      return "binary";
  }
}

namespace {

template <class T>
std::string expected_name() {
  if constexpr (std::is_same_v<T, bool>) {
    return "a boolean";
  } else if constexpr (std::is_integral_v<T>) {
    return std::is_signed_v<T> ? fmt::format("an integer ({}-bit)", sizeof(T) * 8)
                               : fmt::format("a non-negative integer ({}-bit)", sizeof(T) * 8);
  } else if constexpr (std::is_floating_point_v<T>) {
    return "a number";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "a string";
  } else if constexpr (std::is_same_v<T, Json>) {
    return "any JSON value";
  } else {
    std::string inner = expected_name<typename T::value_type>();
    return "an array of " + inner.substr(inner.find(' ') + 1) + "s";
  }
}

// The value in an error message, shortened.
std::string value_snippet(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

[[noreturn]] void throw_type_error(const Json& v, std::string_view field, std::string_view where,
                                   const std::string& expected, const std::string& extra = "") {
  R1_THROW("{}: field '{}' must be {}, got {} {}{}", where, field, expected, json_type_name(v),
           value_snippet(v), extra);
}

template <class T>
bool integral_from_json(const Json& v, T* out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    *out = static_cast<T>(u);
    return true;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      if (i < 0 || static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        return false;
    } else {
      if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) return false;
    }
    *out = static_cast<T>(i);
    return true;
  }
  // 1e4 or 4.0: accepted when exactly integral and in range. 2^63 and 2^64 are exclusive bounds
  // that are exact in double, so the comparisons below cannot be fooled by rounding.
  double d = v.get<double>();
  if (!std::isfinite(d) || d != std::floor(d)) return false;
  constexpr double kTwo63 = 9223372036854775808.0;
  if constexpr (std::is_unsigned_v<T>) {
    if (d < 0 || d >= 2 * kTwo63) return false;
    uint64_t u = static_cast<uint64_t>(d);
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    *out = static_cast<T>(u);
  } else {
    if (d < -kTwo63 || d >= kTwo63) return false;
    int64_t i = static_cast<int64_t>(d);
    if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) return false;
    *out = static_cast<T>(i);
  }
  return true;
}

}  // namespace

template <JsonField T>
T json_value_as(const Json& v, std::string_view field, std::string_view where) {
  if constexpr (std::is_same_v<T, Json>) {
    return v;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) throw_type_error(v, field, where, expected_name<T>());
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    T out{};
    if (!v.is_number()) throw_type_error(v, field, where, expected_name<T>());
    if (!integral_from_json(v, &out))
      throw_type_error(v, field, where, expected_name<T>(), " (not an integer in range)");
    return out;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) throw_type_error(v, field, where, expected_name<T>());
    double d = v.get<double>();
    if (std::is_same_v<T, float> && std::isfinite(d) &&
        std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
      throw_type_error(v, field, where, expected_name<T>(), " (out of range for a 32-bit float)");
    return static_cast<T>(d);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) throw_type_error(v, field, where, expected_name<T>());
    return v.get<std::string>();
  } else {
    if (!v.is_array()) throw_type_error(v, field, where, expected_name<T>());
    T out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      std::string item = fmt::format("{}[{}]", field, i);
      out.push_back(json_value_as<typename T::value_type>(v[i], item, where));
    }
    return out;
  }
}

void require_object(const Json& j, std::string_view where) {
  if (!j.is_object())
    R1_THROW("{}: expected an object, got {} {}", where, json_type_name(j), value_snippet(j));
}

template <JsonField T>
T get_required(const Json& j, std::string_view field, std::string_view where) {
  require_object(j, where);
  auto it = j.find(field);
  if (it == j.end())
    R1_THROW("{}: missing required field '{}' ({})", where, field, expected_name<T>());
  return json_value_as<T>(*it, field, where);
}

template <JsonField T>
std::optional<T> get_optional(const Json& j, std::string_view field, std::string_view where) {
  require_object(j, where);
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return json_value_as<T>(*it, field, where);
}

#define R1_INSTANTIATE_JSON_FIELD(T)                                            \
  template T json_value_as<T>(const Json&, std::string_view, std::string_view); \
  template T get_required<T>(const Json&, std::string_view, std::string_view);  \
  template std::optional<T> get_optional<T>(const Json&, std::string_view, std::string_view);
R1_INSTANTIATE_JSON_FIELD(bool)
R1_INSTANTIATE_JSON_FIELD(int32_t)
R1_INSTANTIATE_JSON_FIELD(int64_t)
R1_INSTANTIATE_JSON_FIELD(uint32_t)
R1_INSTANTIATE_JSON_FIELD(uint64_t)
R1_INSTANTIATE_JSON_FIELD(float)
R1_INSTANTIATE_JSON_FIELD(double)
R1_INSTANTIATE_JSON_FIELD(std::string)
R1_INSTANTIATE_JSON_FIELD(std::vector<int64_t>)
R1_INSTANTIATE_JSON_FIELD(std::vector<int32_t>)
R1_INSTANTIATE_JSON_FIELD(std::vector<double>)
R1_INSTANTIATE_JSON_FIELD(std::vector<float>)
R1_INSTANTIATE_JSON_FIELD(std::vector<std::string>)
R1_INSTANTIATE_JSON_FIELD(Json)
#undef R1_INSTANTIATE_JSON_FIELD

// --- Unknown keys -------------------------------------------------------------------------------

size_t edit_distance(std::string_view a, std::string_view b) {
  // d[i][j]: distance between a[0, i) and b[0, j); three rolling rows for the transposition.
  const size_t n = a.size(), m = b.size();
  std::vector<size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

std::optional<std::string> closest_match(std::string_view name,
                                         const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(1, name.size() / 3);
  std::optional<std::string> best;
  size_t best_d = limit + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(name, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

void reject_unknown_keys(const Json& j, const std::vector<std::string>& allowed,
                         std::string_view where) {
  require_object(j, where);
  std::vector<std::string> unknown;
  for (const auto& [key, value] : j.items())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) unknown.push_back(key);
  if (unknown.empty()) return;
  std::string msg = fmt::format("unknown key '{}' in {}", unknown[0], where);
  if (auto m = closest_match(unknown[0], allowed)) {
    msg += fmt::format("; did you mean '{}'?", *m);
  } else {
    std::vector<std::string> sorted = allowed;
    std::sort(sorted.begin(), sorted.end());
    msg += fmt::format("; allowed keys: {}", fmt::join(sorted, ", "));
  }
  if (unknown.size() > 1) {
    std::vector<std::string> rest;
    for (size_t i = 1; i < unknown.size(); ++i) rest.push_back("'" + unknown[i] + "'");
    msg += fmt::format(" (also unknown: {})", fmt::join(rest, ", "));
  }
  throw Error(msg);
}

std::string json_where(std::string_view where, std::string_view key) {
  if (where.find(": ") == std::string_view::npos) return fmt::format("{}: {}", where, key);
  return fmt::format("{}.{}", where, key);
}

std::string json_where(std::string_view where, size_t index) {
  return fmt::format("{}[{}]", where, index);
}

}  // namespace r1kit

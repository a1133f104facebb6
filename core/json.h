// JSON and JSONL on top of nlohmann::json with errors a user can act on: parse errors give
// "file:line:col", typed config accessors name the field, the expected type and the file, and
// unknown config keys get a "did you mean" suggestion. Writers are atomic or append-and-flush.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace r1kit {

using Json = nlohmann::json;

// --- Text positions and UTF-8 -------------------------------------------------------------------

// The offset of the first byte of `s` that is not part of well-formed UTF-8 (overlong forms,
// surrogates and code points above U+10FFFF are ill-formed), or std::string_view::npos.
size_t utf8_invalid_offset(std::string_view s);

// 1-based line and byte column of `offset` in `text` (lines end at '\n'). Parse errors point at
// the start of the offending token (or at the end of the text when it ended too early).
struct TextPosition {
  size_t line = 1;
  size_t column = 1;
};
TextPosition text_position(std::string_view text, size_t offset);

// --- Whole documents ----------------------------------------------------------------------------

// Why a document did not parse: the byte offset, its line:column, and a description.
struct JsonParseFailure {
  size_t offset = 0;
  TextPosition position;
  std::string message;
};
// Parses one JSON document with the same checks as parse_json (UTF-8, syntax, duplicate keys);
// returns the failure instead of throwing, for callers that word the error themselves.
std::optional<JsonParseFailure> try_parse_json(std::string_view text, Json* out);

// Parses one JSON document. Errors read "<label>:<line>:<col>: <what>" and cover invalid UTF-8,
// syntax errors and duplicate keys in one object (JSON parsers silently keep the last one, which
// hides typos in configs).
Json parse_json(std::string_view text, const std::string& label);
Json read_json_file(const std::string& path);
// Serialises with `indent` spaces (-1: one line); throws naming `label` when a string is not UTF-8.
std::string dump_json(const Json& j, int indent, const std::string& label);
// Writes the document plus a final newline atomically (see write_file_atomic).
void write_json_file_atomic(const std::string& path, const Json& j, int indent = 2);

// --- JSONL --------------------------------------------------------------------------------------

struct JsonlReadOptions {
  // A final line with no '\n' that does not parse is what a killed writer leaves behind; when
  // true it is skipped (truncated_tail() says so) instead of being an error.
  bool allow_truncated_last_line = false;
};

// Streams a JSONL file one record per line: blank (whitespace-only) lines are skipped, "\r\n"
// line ends and a UTF-8 byte-order mark at the start are accepted. Errors name the file, the line
// and the column: "<path>:<line>:<col>: <what>".
class JsonlReader {
 public:
  explicit JsonlReader(std::string path, JsonlReadOptions opts = {});
  // Reads the next record into *out; false at the end of the file.
  bool next(Json* out);
  // Line number (1-based) of the record next() returned last.
  size_t line_number() const { return record_line_; }
  // Lines consumed so far (after next() threw on a malformed line: that line's number).
  size_t lines_read() const { return line_no_; }
  bool truncated_tail() const { return truncated_tail_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  JsonlReadOptions opts_;
  std::ifstream in_;
  std::string line_;
  size_t line_no_ = 0;
  size_t record_line_ = 0;
  bool truncated_tail_ = false;
};

// All records of a JSONL file.
std::vector<Json> read_jsonl_file(const std::string& path, JsonlReadOptions opts = {});

// Appends one line per record and hands each line to the kernel with a single write(), so a
// reader (or a crash) sees whole lines; usable for metrics. sync() additionally fsyncs.
class JsonlWriter {
 public:
  enum class Mode { append, truncate };
  explicit JsonlWriter(std::string path, Mode mode = Mode::append);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  void write(const Json& record);
  void sync();
  void close();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Writes a whole JSONL file atomically (one compact record per line).
void write_jsonl_file_atomic(const std::string& path, const std::vector<Json>& records);

// --- Typed accessors for configs ----------------------------------------------------------------
// `where` says where the object is, e.g. "recipe.json: stages[0]"; errors read
//   "recipe.json: stages[0]: field 'lr' must be a number, got string \"1e-5\"".
// Integers accept integral numbers only (4 and 4.0, not 4.5) and are range-checked for T; floats
// accept any number; bool accepts only true/false. A null value counts as absent for
// get_optional and as the wrong type for get_required.

template <class T>
concept JsonField = std::is_same_v<T, bool> || std::is_same_v<T, int32_t> ||
    std::is_same_v<T, int64_t> || std::is_same_v<T, uint32_t> || std::is_same_v<T, uint64_t> ||
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::string> ||
    std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<int32_t>> ||
    std::is_same_v<T, std::vector<double>> || std::is_same_v<T, std::vector<float>> ||
    std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, Json>;

// Converts a JSON value to T, or throws "<where>: field '<field>' must be <type>, got ...".
template <JsonField T>
T json_value_as(const Json& value, std::string_view field, std::string_view where);

template <JsonField T>
T get_required(const Json& j, std::string_view field, std::string_view where);
template <JsonField T>
std::optional<T> get_optional(const Json& j, std::string_view field, std::string_view where);
template <JsonField T>
T get_optional(const Json& j, std::string_view field, std::string_view where, T default_value) {
  auto v = get_optional<T>(j, field, where);
  return v ? std::move(*v) : std::move(default_value);
}

// Throws unless `j` is an object; names `where` and the actual type.
void require_object(const Json& j, std::string_view where);

// Throws for the first key of `j` (in sorted order) that is not in `allowed`:
//   "unknown key 'lerning_rate' in recipe.json: stages[0]; did you mean 'learning_rate'?"
// or, with no close match, "...; allowed keys: a, b, c". Further unknown keys are listed too.
void reject_unknown_keys(const Json& j, const std::vector<std::string>& allowed,
                         std::string_view where);

// Builds `where` strings: json_where("recipe.json", "stages") == "recipe.json: stages",
// json_where("recipe.json: stages", 0) == "recipe.json: stages[0]",
// json_where("recipe.json: stages[0]", "optim") == "recipe.json: stages[0].optim".
std::string json_where(std::string_view where, std::string_view key);
std::string json_where(std::string_view where, size_t index);

// "object", "array", "string", "integer", "number", "boolean", "null".
std::string json_type_name(const Json& j);

// Optimal-string-alignment edit distance (insertions, deletions, substitutions and adjacent
// transpositions each cost 1).
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `name` when it is close enough to be a plausible typo (distance at most
// max(1, |name| / 3)); ties go to the earlier candidate.
std::optional<std::string> closest_match(std::string_view name,
                                         const std::vector<std::string>& candidates);

// An enum from a string field: `names` maps each accepted keyword to its value; absent → fallback.
// Anything else is an error listing the keywords (and the closest one):
//   "recipe.json: stages[0]: 'loss_on' must be one of assistant, last_turn, all, got \"asistant\";
//   did you mean \"assistant\"?"
template <class E>
E get_enum(const Json& j, std::string_view key, std::string_view where,
           const std::vector<std::pair<std::string, E>>& names, E fallback) {
  const auto v = get_optional<std::string>(j, key, where);
  if (!v) return fallback;
  std::vector<std::string> all;
  for (const auto& [n, e] : names) {
    if (n == *v) return e;
    all.push_back(n);
  }
  std::string list;
  for (const auto& n : all) list += (list.empty() ? "" : ", ") + n;
  const auto near = closest_match(*v, all);
  R1_THROW("{}: '{}' must be one of {}, got \"{}\"{}", where, key, list, *v,
           near ? fmt::format("; did you mean \"{}\"?", *near) : std::string());
}

}  // namespace r1kit

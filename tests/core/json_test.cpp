// JSON/JSONL helpers: positioned parse errors, UTF-8 checks, duplicate keys, JSONL streaming
// (blank lines, CRLF, BOM, truncated tails), writers, typed accessors and unknown-key suggestions.
#include "core/json.h"

#include <unistd.h>

#include <filesystem>

#include "core/fs.h"
#include "tests/common/test_util.h"

namespace r1kit {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_contains;

using TempDir = testing::ScratchDir;

TEST(Json, Utf8Validation) {
  const auto npos = std::string_view::npos;
  EXPECT_EQ(utf8_invalid_offset(""), npos);
  EXPECT_EQ(utf8_invalid_offset("plain ascii"), npos);
  EXPECT_EQ(utf8_invalid_offset("é € 𝄞 中文"), npos);
  EXPECT_EQ(utf8_invalid_offset("\xf4\x8f\xbf\xbf"), npos);  // U+10FFFF, the largest
  EXPECT_EQ(utf8_invalid_offset("ab\xff"), 2u);              // never valid
  EXPECT_EQ(utf8_invalid_offset("a\x80"), 1u);               // lone continuation byte
  EXPECT_EQ(utf8_invalid_offset("\xc0\xaf"), 0u);            // overlong '/'
  EXPECT_EQ(utf8_invalid_offset("\xe0\x80\xaf"), 0u);        // overlong, 3 bytes
  EXPECT_EQ(utf8_invalid_offset("\xf0\x80\x80\xaf"), 0u);    // overlong, 4 bytes
  EXPECT_EQ(utf8_invalid_offset("x\xed\xa0\x80"), 1u);       // surrogate U+D800
  EXPECT_EQ(utf8_invalid_offset("\xf4\x90\x80\x80"), 0u);    // above U+10FFFF
  EXPECT_EQ(utf8_invalid_offset("ok\xe2\x82"), 2u);          // truncated sequence
  EXPECT_EQ(utf8_invalid_offset("\xe2\x28\xa1"), 0u);        // bad continuation
}

TEST(Json, TextPosition) {
  const std::string_view text = "ab\ncde\n\nf";
  auto at = [&](size_t off) {
    auto p = text_position(text, off);
    return std::make_pair(p.line, p.column);
  };
  EXPECT_EQ(at(0), std::make_pair(size_t{1}, size_t{1}));
  EXPECT_EQ(at(1), std::make_pair(size_t{1}, size_t{2}));
  EXPECT_EQ(at(3), std::make_pair(size_t{2}, size_t{1}));
  EXPECT_EQ(at(5), std::make_pair(size_t{2}, size_t{3}));
  EXPECT_EQ(at(8), std::make_pair(size_t{4}, size_t{1}));
  EXPECT_EQ(at(100), std::make_pair(size_t{4}, size_t{2}));  // clamped to the end
}

TEST(Json, ParseErrorsGiveLineAndColumn) {
  // 'x' is on line 3, column 8.
  expect_error_contains([] { parse_json("{\n  \"a\": 1,\n  \"b\": x\n}", "cfg.json"); },
                        {"cfg.json:3:8:", "invalid literal"});
  expect_error_contains([] { parse_json("{\"a\": [1, 2}", "cfg.json"); }, {"cfg.json:1:12:"});
  expect_error_contains([] { parse_json("{\"a\": 1", "cfg.json"); },
                        {"cfg.json:1:8:", "unexpected end of input"});
  expect_error_contains([] { parse_json("", "empty.json"); }, {"empty.json:1:1:"});
  // A complete token the parser did not expect: the column of its first character.
  expect_error_contains([] { parse_json("{\"a\": 1 \"b\": 2}", "t.json"); },
                        {"t.json:1:9:", "unexpected string literal"});
  expect_error_contains([] { parse_json("{\"a\": 1 \"x\\\"y\": 2}", "t.json"); }, {"t.json:1:9:"});
  expect_error_contains([] { parse_json("[1 2.5e3]", "t.json"); }, {"t.json:1:4:"});
  expect_error_contains([] { parse_json("{\"a\": \"\xff\"}", "u.json"); },
                        {"u.json:1:8:", "invalid UTF-8 (byte 0xff)"});
  expect_error_contains([] { parse_json("{\n\"lr\": 1,\n\"lr\": 2}", "dup.json"); },
                        {"dup.json:3:1:", "duplicate key \"lr\""});
  // Duplicates are per object: the same key in sibling or nested objects is fine.
  Json ok = parse_json(
      R"({"a": {"k": 1}, "b": {"k": 2, "c": {"k": 3}}, "k": [{"k": 4}, {"k": 5}]})", "ok.json");
  EXPECT_EQ(ok["b"]["c"]["k"], 3);
  expect_error_contains([] { parse_json(R"([{"k": 1, "j": {"k": 2}, "k": 3}])", "n.json"); },
                        {"n.json", "duplicate key \"k\""});
  Json j;
  auto f = try_parse_json("[1,\n 2,,]", &j);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->position.line, 2u);
  EXPECT_EQ(f->position.column, 4u);
  EXPECT_FALSE(try_parse_json("[1, 2]", &j).has_value());
  EXPECT_EQ(j, Json::array({1, 2}));
}

TEST(Json, FilesRoundTripAtomically) {
  TempDir dir;
  const std::string path = dir.file("cfg.json");
  Json j = {{"name", "r1 ✓"}, {"lr", 1e-5}, {"layers", {1, 2, 3}}, {"nested", {{"ok", true}}}};
  write_json_file_atomic(path, j);
  EXPECT_EQ(read_json_file(path), j);
  std::string text = read_file(path);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("\n  \"layers\""), std::string::npos);  // indented by 2
  EXPECT_FALSE(fs::exists(atomic_temp_path(path)));
  expect_error_contains([&] { read_json_file(dir.file("none.json")); },
                        {dir.file("none.json"), "No such file"});
  write_file_atomic(path, "{\n  \"a\": 1\n  \"b\": 2\n}\n");
  expect_error_contains([&] { read_json_file(path); }, {path + ":3:3:"});
  expect_error_contains([&] { write_json_file_atomic(path, Json("bad \xff")); }, {path, "UTF-8"});
}

TEST(Json, JsonlReaderSkipsBlanksHandlesCrlfAndBom) {
  TempDir dir;
  const std::string path = dir.file("data.jsonl");
  write_file_atomic(path,
                    "\xEF\xBB\xBF{\"i\": 1}\r\n"
                    "\r\n"
                    "   \n"
                    "{\"i\": 2, \"s\": \"é\"}\n"
                    "[3]\r\n"
                    "\t\n"
                    "{\"i\": 4}");  // no final newline: still a complete record
  JsonlReader r(path);
  Json j;
  std::vector<size_t> lines;
  std::vector<Json> records;
  while (r.next(&j)) {
    records.push_back(j);
    lines.push_back(r.line_number());
  }
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0]["i"], 1);
  EXPECT_EQ(records[1]["s"], "é");
  EXPECT_EQ(records[2], Json::array({3}));
  EXPECT_EQ(records[3]["i"], 4);
  EXPECT_EQ(lines, (std::vector<size_t>{1, 4, 5, 7}));
  EXPECT_FALSE(r.truncated_tail());
  EXPECT_FALSE(r.next(&j));  // stays at the end
  EXPECT_EQ(read_jsonl_file(path), records);
}

TEST(Json, JsonlErrorsNameFileLineAndColumn) {
  TempDir dir;
  const std::string path = dir.file("bad.jsonl");
  write_file_atomic(path, "{\"a\": 1}\n\n{\"a\": 2,}\n{\"a\": 3}\n");
  JsonlReader r(path);
  Json j;
  ASSERT_TRUE(r.next(&j));
  expect_error_contains([&] { r.next(&j); }, {path + ":3:9:"});

  write_file_atomic(path, "{\"a\": 1}\n{\"a\": \"ok\"}\n{\"a\": \"b\xc3\x28\"}\n");
  expect_error_contains([&] { read_jsonl_file(path); }, {path + ":3:9:", "invalid UTF-8"});

  write_file_atomic(path, "{\"a\": 1}\n{\"a\": 1, \"a\": 2}\n");
  expect_error_contains([&] { read_jsonl_file(path); }, {path + ":2:", "duplicate key"});

  expect_error_contains([&] { JsonlReader missing(dir.file("nope.jsonl")); },
                        {dir.file("nope.jsonl"), "No such file"});
  fs::create_directories(dir.file("adir"));
  expect_error_contains([&] { JsonlReader d(dir.file("adir")); }, {"adir", "directory"});
}

TEST(Json, JsonlTruncatedTail) {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  write_file_atomic(path, "{\"step\": 1}\n{\"step\": 2}\n{\"step\": 3, \"lo");
  // By default a truncated last line is an error that says what probably happened.
  expect_error_contains([&] { read_jsonl_file(path); }, {path + ":3:", "no newline", "truncated"});
  // Opt-in: skipped and reported.
  JsonlReader r(path, {.allow_truncated_last_line = true});
  Json j;
  int n = 0;
  while (r.next(&j)) ++n;
  EXPECT_EQ(n, 2);
  EXPECT_TRUE(r.truncated_tail());
  // A bad line that does end in a newline is still an error.
  write_file_atomic(path, "{\"step\": 1}\n{\"step\": \n");
  expect_error_contains([&] { read_jsonl_file(path, {.allow_truncated_last_line = true}); },
                        {path + ":2:"});
}

TEST(Json, JsonlWriterAppendsAndTruncates) {
  TempDir dir;
  const std::string path = dir.file("m.jsonl");
  {
    JsonlWriter w(path);
    w.write({{"step", 1}, {"loss", 2.5}});
    // Each record is on disk as soon as write() returns (no buffering in the writer).
    EXPECT_EQ(read_file(path), "{\"loss\":2.5,\"step\":1}\n");
    w.write({{"step", 2}, {"loss", nullptr}});
    w.sync();
  }
  {
    JsonlWriter w(path);  // append mode: keeps what is there
    w.write({{"step", 3}});
    w.close();
    expect_error_contains([&] { w.write({{"step", 4}}); }, {path, "closed"});
  }
  auto recs = read_jsonl_file(path);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[2]["step"], 3);
  EXPECT_TRUE(recs[1]["loss"].is_null());
  {
    JsonlWriter w(path, JsonlWriter::Mode::truncate);
    w.write(Json::array({1}));
    expect_error_contains([&] { w.write(Json("bad \xff")); }, {path, "UTF-8"});
  }
  EXPECT_EQ(read_file(path), "[1]\n");
  expect_error_contains([&] { JsonlWriter w(dir.file("no/dir/m.jsonl")); },
                        {"no/dir/m.jsonl", "No such file"});

  std::vector<Json> all = {{{"a", 1}}, Json::array({2}), Json("three")};
  write_jsonl_file_atomic(path, all);
  EXPECT_EQ(read_file(path), "{\"a\":1}\n[2]\n\"three\"\n");
  EXPECT_EQ(read_jsonl_file(path), all);
}

TEST(Json, TypedAccessors) {
  const Json j = parse_json(R"({
    "lr": 1e-5, "steps": 1000, "steps_f": 4.0, "big": 1e4, "half": 4.5, "neg": -3,
    "huge": 10000000000, "name": "grpo", "flag": true, "one": 1, "nil": null,
    "dims": [1, 2, 3], "names": ["a", "b"], "mixed": [1, "x"], "obj": {"k": 1}
  })",
                            "recipe.json");
  const std::string where = "recipe.json: stages[0]";
  EXPECT_EQ(get_required<double>(j, "lr", where), 1e-5);
  EXPECT_EQ(get_required<float>(j, "lr", where), 1e-5f);
  EXPECT_EQ(get_required<double>(j, "steps", where), 1000.0);  // integers are numbers
  EXPECT_EQ(get_required<int32_t>(j, "steps", where), 1000);
  EXPECT_EQ(get_required<int64_t>(j, "steps_f", where), 4);  // integral float accepted
  EXPECT_EQ(get_required<uint64_t>(j, "big", where), 10000u);
  EXPECT_EQ(get_required<int64_t>(j, "neg", where), -3);
  EXPECT_EQ(get_required<int64_t>(j, "huge", where), 10000000000);
  EXPECT_EQ(get_required<std::string>(j, "name", where), "grpo");
  EXPECT_TRUE(get_required<bool>(j, "flag", where));
  EXPECT_EQ(get_required<std::vector<int64_t>>(j, "dims", where), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(get_required<std::vector<std::string>>(j, "names", where),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(get_required<Json>(j, "obj", where)["k"], 1);

  expect_error_contains([&] { get_required<double>(j, "learning_rate", where); },
                        {"recipe.json: stages[0]: missing required field 'learning_rate' "
                         "(a number)"});
  expect_error_contains([&] { get_required<double>(j, "name", where); },
                        {"recipe.json: stages[0]: field 'name' must be a number, got string "
                         "\"grpo\""});
  expect_error_contains(
      [&] { get_required<int32_t>(j, "half", where); },
      {"field 'half' must be an integer (32-bit)", "4.5", "not an integer in range"});
  expect_error_contains([&] { get_required<int32_t>(j, "huge", where); },
                        {"field 'huge'", "10000000000", "not an integer in range"});
  expect_error_contains([&] { get_required<uint32_t>(j, "neg", where); },
                        {"field 'neg' must be a non-negative integer (32-bit)", "-3"});
  expect_error_contains([&] { get_required<bool>(j, "one", where); },
                        {"field 'one' must be a boolean, got integer 1"});
  expect_error_contains([&] { get_required<std::string>(j, "nil", where); },
                        {"field 'nil' must be a string, got null"});
  expect_error_contains([&] { get_required<std::vector<int64_t>>(j, "mixed", where); },
                        {"field 'mixed[1]' must be an integer (64-bit), got string \"x\""});
  expect_error_contains([&] { get_required<std::vector<std::string>>(j, "name", where); },
                        {"field 'name' must be an array of strings, got string"});
  expect_error_contains([&] { get_required<float>(parse_json("{\"x\": 1e300}", "f"), "x", "f"); },
                        {"field 'x'", "out of range for a 32-bit float"});
  expect_error_contains([&] { get_required<int>(Json::array(), "x", where); },
                        {where, "expected an object, got array"});

  // Optional fields: absent and null give nothing; present ones are type-checked.
  EXPECT_FALSE(get_optional<double>(j, "absent", where).has_value());
  EXPECT_FALSE(get_optional<double>(j, "nil", where).has_value());
  EXPECT_EQ(get_optional<double>(j, "lr", where), 1e-5);
  EXPECT_EQ(get_optional<int64_t>(j, "absent", where, 42), 42);
  EXPECT_EQ(get_optional<int64_t>(j, "steps", where, 42), 1000);
  EXPECT_EQ(get_optional<std::string>(j, "nil", where, "dflt"), "dflt");
  expect_error_contains([&] { get_optional<int64_t>(j, "name", where, 1); },
                        {"field 'name' must be an integer"});
}

TEST(Json, UnknownKeysGetSuggestions) {
  const std::vector<std::string> allowed = {"learning_rate", "max_steps", "batch_size", "seed"};
  Json j = {{"lerning_rate", 1e-5}, {"max_steps", 10}};
  expect_error_contains([&] { reject_unknown_keys(j, allowed, "recipe.json: stages[0]"); },
                        {"unknown key 'lerning_rate' in recipe.json: stages[0]; did you mean "
                         "'learning_rate'?"});
  // No plausible match: list what is allowed.
  Json k = {{"optimizer", "adam"}};
  expect_error_contains([&] { reject_unknown_keys(k, allowed, "recipe.json"); },
                        {"unknown key 'optimizer' in recipe.json; allowed keys: batch_size, "
                         "learning_rate, max_steps, seed"});
  // Several unknown keys: the first (sorted) is explained, the rest listed.
  Json m = {{"zz", 1}, {"sed", 2}, {"batch_size", 3}, {"aa", 4}};
  expect_error_contains([&] { reject_unknown_keys(m, allowed, "r.json"); },
                        {"unknown key 'aa'", "also unknown: 'sed', 'zz'"});
  EXPECT_NO_THROW(reject_unknown_keys(Json{{"seed", 1}, {"max_steps", 2}}, allowed, "r.json"));
  EXPECT_NO_THROW(reject_unknown_keys(Json::object(), allowed, "r.json"));
  expect_error_contains([&] { reject_unknown_keys(Json(3), allowed, "r.json"); },
                        {"r.json: expected an object, got integer 3"});
}

TEST(Json, EditDistanceAndClosestMatch) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("lerning_rate", "learning_rate"), 1u);
  EXPECT_EQ(edit_distance("ab", "ba"), 1u);  // adjacent transposition
  EXPECT_EQ(edit_distance("max_setps", "max_steps"), 1u);
  EXPECT_EQ(edit_distance("ca", "abc"), 3u);  // optimal string alignment, not full Damerau
  const std::vector<std::string> c = {"seed", "steps", "learning_rate"};
  EXPECT_EQ(closest_match("sed", c), "seed");
  EXPECT_EQ(closest_match("stpes", c), "steps");
  EXPECT_EQ(closest_match("learningrate", c), "learning_rate");
  EXPECT_FALSE(closest_match("optimizer", c).has_value());
  EXPECT_FALSE(closest_match("x", {}).has_value());
  // Ties go to the earlier candidate.
  EXPECT_EQ(closest_match("ab", {"ax", "xb"}), "ax");
}

TEST(Json, WhereStrings) {
  EXPECT_EQ(json_where("recipe.json", "stages"), "recipe.json: stages");
  EXPECT_EQ(json_where(json_where("recipe.json", "stages"), 0), "recipe.json: stages[0]");
  EXPECT_EQ(json_where("recipe.json: stages[0]", "optim"), "recipe.json: stages[0].optim");
  EXPECT_EQ(json_type_name(Json(1)), "integer");
  EXPECT_EQ(json_type_name(Json(1.5)), "number");
  EXPECT_EQ(json_type_name(Json(nullptr)), "null");
  EXPECT_EQ(json_type_name(Json::object()), "object");
}

}  // namespace
}  // namespace r1kit

// Dataset evaluation (see eval.h).
#include "sandbox/eval.h"

#include <zlib.h>

#include <chrono>

#include "core/error.h"
#include "core/fs.h"
#include "sandbox/pool.h"

namespace r1kit::sandbox {

std::optional<EvalFormat> eval_format_from_name(std::string_view name) {
  if (name == "humaneval") return EvalFormat::humaneval;
  if (name == "mbpp") return EvalFormat::mbpp;
  if (name == "stdio") return EvalFormat::stdio;
  return std::nullopt;
}

std::string default_solution_field(EvalFormat f) {
  switch (f) {
    case EvalFormat::humaneval:
      return "completion";
    case EvalFormat::mbpp:
      return "code";
    case EvalFormat::stdio:
      return "solution";
  }
  return "solution";
}

std::string read_maybe_gzip(const std::string& path) {
  std::string raw = read_file(path);
  if (raw.size() < 2 || uint8_t(raw[0]) != 0x1f || uint8_t(raw[1]) != 0x8b) return raw;
  z_stream zs{};
  R1_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "{}: cannot start gzip decoding", path);
  std::string out;
  std::vector<char> buf(1 << 16);
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = uInt(raw.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = uInt(buf.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      R1_THROW("{}: corrupt gzip data ({})", path, zs.msg ? zs.msg : "inflate failed");
    }
    out.append(buf.data(), buf.size() - zs.avail_out);
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      R1_THROW("{}: truncated gzip data", path);
    }
  }
  inflateEnd(&zs);
  return out;
}

std::vector<Json> read_dataset(const std::string& path) {
  std::string text = read_maybe_gzip(path);
  size_t first = text.find_first_not_of(" \t\r\n\xEF\xBB\xBF");
  std::vector<Json> rows;
  if (first != std::string::npos && text[first] == '[') {
    Json j = parse_json(text, path);
    for (auto& r : j) rows.push_back(std::move(r));
    return rows;
  }
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    rows.push_back(parse_json(line, path + ":" + std::to_string(line_no)));
  }
  return rows;
}

namespace {

std::string field_list(const Json& row) {
  std::string s;
  for (auto it = row.begin(); it != row.end(); ++it) s += (s.empty() ? "" : ", ") + it.key();
  return s;
}

std::string get_string(const Json& row, const std::string& field, const std::string& where) {
  R1_CHECK(row.is_object(), "{}: a row must be a JSON object, got {}", where, json_type_name(row));
  R1_CHECK(row.contains(field), "{}: no field '{}' (fields: {}; pick one with --solution-field)",
           where, field, field_list(row));
  return get_required<std::string>(row, field, where);
}

std::string join_lines(const Json& arr, const std::string& field, const std::string& where) {
  std::string out;
  for (const auto& line : arr) {
    R1_CHECK(line.is_string(), "{}: field '{}' must hold strings", where, field);
    out += line.get<std::string>() + "\n";
  }
  return out;
}

Json row_id(const Json& row) {
  for (const char* k : {"task_id", "id", "problem_id", "name"})
    if (row.is_object() && row.contains(k)) return row[k];
  return nullptr;
}

}  // namespace

FunctionTest humaneval_function_test(const Json& row, const std::string& solution,
                                     const std::string& where) {
  FunctionTest t;
  std::string prompt = get_string(row, "prompt", where);
  t.entry_point = get_string(row, "entry_point", where);
  t.test_code = get_string(row, "test", where);
  t.setup_code = prompt;
  bool full = solution.find("def " + t.entry_point + "(") != std::string::npos;
  t.program = full ? solution : prompt + solution;
  t.check_call = "check(candidate)";
  return t;
}

FunctionTest mbpp_function_test(const Json& row, const std::string& solution,
                                const std::string& where) {
  FunctionTest t;
  R1_CHECK(row.is_object() && row.contains("test_list") && row["test_list"].is_array(),
           "{}: field 'test_list' must be an array of assert statements", where);
  t.test_code = join_lines(row["test_list"], "test_list", where);
  if (row.contains("test_imports") && row["test_imports"].is_array())
    t.setup_code += join_lines(row["test_imports"], "test_imports", where);
  if (row.contains("test_setup_code") && row["test_setup_code"].is_string())
    t.setup_code += row["test_setup_code"].get<std::string>() + "\n";
  t.program = solution;
  // The entry point: the first function of the reference code that the tests call. It is
  // proxied even when it shadows a builtin (MBPP 126 defines sum); other solution functions
  // never shadow builtins the tests use.
  if (row.contains("code") && row["code"].is_string()) {
    std::string code = row["code"].get<std::string>();
    size_t pos = 0;
    while ((pos = code.find("def ", pos)) != std::string::npos) {
      bool line_start = pos == 0 || code[pos - 1] == '\n';
      size_t b = pos + 4, e = b;
      while (e < code.size() && (isalnum(uint8_t(code[e])) || code[e] == '_')) ++e;
      std::string name = code.substr(b, e - b);
      pos = e;
      if (!line_start || name.empty()) continue;
      if (t.test_code.find(name + "(") != std::string::npos) {
        t.entry_point = name;
        break;
      }
    }
  }
  return t;
}

std::vector<StdioCase> stdio_cases(const Json& row, const std::string& where) {
  std::vector<StdioCase> cases;
  R1_CHECK(row.is_object(), "{}: a row must be a JSON object", where);
  auto text_of = [&](const Json& v, const char* key) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains(key) && v[key].is_string()) return v[key].get<std::string>();
    R1_THROW("{}: a test's {} must be a string or {{\"{}\": string}}", where,
             std::string(key) == "stdin" ? "input" : "output", key);
  };
  if (row.contains("tests") || row.contains("test")) {
    Json tests = row.contains("tests") ? row["tests"] : row["test"];
    if (tests.is_string()) tests = parse_json(tests.get<std::string>(), where + ": test");
    R1_CHECK(tests.is_array(), "{}: tests must be an array of {{input, output}}", where);
    for (const auto& c : tests) {
      R1_CHECK(c.is_object() && c.contains("input") && c.contains("output"),
               "{}: each test needs 'input' and 'output'", where);
      cases.push_back({text_of(c["input"], "stdin"), text_of(c["output"], "stdout")});
    }
  } else if (row.contains("input_output")) {
    Json io = row["input_output"];
    if (io.is_string()) io = parse_json(io.get<std::string>(), where + ": input_output");
    R1_CHECK(io.is_object() && io.contains("inputs") && io.contains("outputs") &&
                 io["inputs"].size() == io["outputs"].size(),
             "{}: input_output needs inputs and outputs of the same length", where);
    for (size_t i = 0; i < io["inputs"].size(); ++i) {
      const Json& in = io["inputs"][i];
      const Json& out = io["outputs"][i];
      R1_CHECK(in.is_string(), "{}: input_output.inputs[{}] must be a string", where, i);
      cases.push_back({in.get<std::string>(), out.is_string() ? out.get<std::string>()
                                                              : join_lines(out, "outputs", where)});
    }
  } else {
    R1_THROW("{}: no tests (expected 'tests', 'test' or 'input_output'; fields: {})", where,
             field_list(row));
  }
  return cases;
}

Json evaluate_row(const Sandbox& sb, const Json& row, size_t index, const EvalOptions& opts) {
  Json out;
  out["index"] = index;
  Json id = row_id(row);
  if (!id.is_null()) out["task_id"] = id;
  std::string where = "row " + std::to_string(index);
  std::string field =
      opts.solution_field.empty() ? default_solution_field(opts.format) : opts.solution_field;
  auto t0 = std::chrono::steady_clock::now();
  try {
    std::string solution = get_string(row, field, where);
    if (opts.format == EvalFormat::stdio) {
      Language lang = Language::python;
      if (row.contains("language") && row["language"].is_string()) {
        auto l = language_from_name(row["language"].get<std::string>());
        R1_CHECK(l.has_value(), "{}: unknown language '{}' (python, cpp, bash)", where,
                 row["language"].get<std::string>());
        lang = *l;
      }
      StdioOptions so;
      so.compare = opts.compare;
      if (row.contains("compare") && row["compare"].is_string()) {
        auto c = compare_from_name(row["compare"].get<std::string>());
        R1_CHECK(c.has_value(), "{}: unknown compare mode (exact, whitespace, float)", where);
        so.compare = *c;
      }
      so.limits = opts.limits;
      so.language = opts.language;
      auto cases = stdio_cases(row, where);
      if (opts.max_cases && cases.size() > opts.max_cases) cases.resize(opts.max_cases);
      StdioReport rep = run_stdio_tests(sb, lang, solution, cases, so);
      out["passed"] = rep.passed;
      out["status"] = std::string(status_name(rep.status));
      out["reason"] = rep.reason;
      out["cases"] = cases.size();
      out["cases_passed"] = rep.n_passed;
      Json statuses = Json::array();
      for (const auto& c : rep.cases)
        statuses.push_back(c.passed                     ? "passed"
                           : c.run.status == Status::ok ? "wrong_answer"
                                                        : std::string(status_name(c.run.status)));
      out["case_verdicts"] = statuses;
      if (rep.status == Status::compile_error) out["compile_stderr"] = rep.compile.stderr_data;
    } else {
      FunctionTest t = opts.format == EvalFormat::humaneval
                           ? humaneval_function_test(row, solution, where)
                           : mbpp_function_test(row, solution, where);
      FunctionReport rep = run_function_tests(sb, t, opts.limits, opts.language);
      out["passed"] = rep.passed;
      out["status"] = std::string(status_name(rep.status));
      out["reason"] = rep.reason;
      out["cpu_ms"] = rep.run.cpu_ms;
    }
  } catch (const std::exception& e) {
    out["passed"] = false;
    out["status"] = "internal_error";
    out["reason"] = e.what();
  }
  out["wall_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  return out;
}

std::vector<Json> evaluate_rows(const Sandbox& sb, const std::vector<Json>& rows,
                                const EvalOptions& opts,
                                const std::function<void(const Json&)>& on_row) {
  SandboxPool pool(sb, opts.jobs);
  std::vector<std::future<Json>> futs;
  std::vector<Json> results;
  size_t next = 0;
  auto flush = [&](bool all) {
    while (next < futs.size() &&
           (all || futs[next].wait_for(std::chrono::seconds(0)) == std::future_status::ready)) {
      results.push_back(futs[next++].get());
      if (on_row) on_row(results.back());
    }
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const Json* row = &rows[i];
    futs.push_back(
        pool.submit_task([&sb, row, i, &opts] { return evaluate_row(sb, *row, i, opts); }));
    flush(false);
  }
  flush(true);
  return results;
}

Json summarize(const std::vector<Json>& results) {
  Json by = Json::object();
  for (Status s : all_statuses()) by[std::string(status_name(s))] = 0;
  size_t passed = 0;
  for (const auto& r : results) {
    if (r.value("passed", false)) ++passed;
    std::string s = r.value("status", std::string("internal_error"));
    by[s] = by.value(s, 0) + 1;
  }
  Json j;
  j["rows"] = results.size();
  j["passed"] = passed;
  j["failed"] = results.size() - passed;
  j["pass_rate"] = results.empty() ? 0.0 : double(passed) / double(results.size());
  j["by_status"] = by;
  return j;
}

}  // namespace r1kit::sandbox

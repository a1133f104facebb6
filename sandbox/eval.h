// Dataset evaluation for `r1kit sandbox eval`: reads rows (JSONL, a JSON array, optionally
// gzip'd), turns each into a harness call (HumanEval, MBPP, standard I/O), runs them through a
// SandboxPool and summarises.
//   humaneval: {task_id, prompt, entry_point, test, <solution>}; the solution is the completion
//              (appended to the prompt) unless it already defines the entry point.
//   mbpp:      {task_id, test_list, test_imports | test_setup_code, <solution>}.
//   stdio:     {<solution>, language?, tests: [{input, output}] | test (SandboxFusion: a JSON
//              string of [{input: {stdin}, output: {stdout}}]) | input_output (APPS), compare?}.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "sandbox/harness.h"

namespace r1kit::sandbox {

enum class EvalFormat { humaneval, mbpp, stdio };
std::optional<EvalFormat> eval_format_from_name(std::string_view name);

struct EvalOptions {
  EvalFormat format = EvalFormat::humaneval;
  std::string solution_field;  // empty: completion (humaneval), code (mbpp), solution (stdio)
  int jobs = 0;                // 0: all cores
  Limits limits;
  LanguageOptions language;
  Compare compare = Compare::whitespace;  // stdio rows without their own "compare"
  size_t max_cases = 0;                   // stdio: run at most this many cases per row (0: all)
};

std::string default_solution_field(EvalFormat f);

// Rows of a .jsonl / .json (array) file, gzip'd or not. Throws naming the file.
std::vector<Json> read_dataset(const std::string& path);
std::string read_maybe_gzip(const std::string& path);

// The harness inputs for one row; throw r1kit::Error naming `where` and the field when the row
// is malformed (that is the dataset's fault, not the program's).
FunctionTest humaneval_function_test(const Json& row, const std::string& solution,
                                     const std::string& where);
FunctionTest mbpp_function_test(const Json& row, const std::string& solution,
                                const std::string& where);
std::vector<StdioCase> stdio_cases(const Json& row, const std::string& where);

// One row: {"index", "task_id"?, "passed", "status", "reason", "wall_ms", ...}. A malformed row
// gives status internal_error with the reason, never an exception.
Json evaluate_row(const Sandbox& sb, const Json& row, size_t index, const EvalOptions& opts);

// All rows through a pool; on_row (optional) sees each result in row order as soon as it and
// every row before it are done.
std::vector<Json> evaluate_rows(const Sandbox& sb, const std::vector<Json>& rows,
                                const EvalOptions& opts,
                                const std::function<void(const Json&)>& on_row = {});

// {"rows", "passed", "failed", "pass_rate", "by_status": {status: count}}.
Json summarize(const std::vector<Json>& results);

}  // namespace r1kit::sandbox

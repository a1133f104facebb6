// Test harnesses on the sandbox.
//   Harness 1, standard I/O: (stdin, expected stdout) cases with exact, whitespace-normalised or
//   float-tolerant comparison; one verdict per case.
//   Harness 2, function tests (HumanEval/MBPP): the solution runs in its own process and only its
//   return values reach the test code, which runs in a separate harness process holding the only
//   channel a verdict can come from. See docs/SANDBOX.md (threat model).
#pragma once

#include <string>
#include <vector>

#include "sandbox/languages.h"
#include "sandbox/sandbox.h"

namespace r1kit::sandbox {

// --- Harness 1: standard I/O ------------------------------------------------------------------

// exact: byte for byte. whitespace: the same sequence of whitespace-separated tokens.
// float_tolerance: tokens match exactly, or both parse as numbers within abs_tol or rel_tol.
enum class Compare { exact, whitespace, float_tolerance };
std::optional<Compare> compare_from_name(std::string_view name);  // "exact", "whitespace", "float"

struct StdioCase {
  std::string input;
  std::string expected;
};

struct StdioOptions {
  Compare compare = Compare::whitespace;
  double abs_tol = 1e-6;
  double rel_tol = 1e-6;
  bool stop_at_first_failure = false;  // later cases are then not run (and not counted)
  Limits limits;
  LanguageOptions language;
};

bool outputs_match(const std::string& got, const std::string& expected, Compare mode,
                   double abs_tol = 1e-6, double rel_tol = 1e-6);

struct CaseVerdict {
  bool passed = false;
  std::string reason;  // "wrong answer", "timeout: ...", ...
  RunResult run;
};

struct StdioReport {
  bool passed = false;
  // ok when every case ran to completion (passed or not); else the status of the first case that
  // did not (timeout, runtime_error, ...), or compile_error.
  Status status = Status::ok;
  size_t n_passed = 0;
  size_t n_run = 0;
  std::string reason;  // the first failure
  RunResult compile;   // C++ only
  std::vector<CaseVerdict> cases;
};

StdioReport run_stdio_tests(const Sandbox& sb, Language lang, const std::string& source,
                            const std::vector<StdioCase>& cases, const StdioOptions& opts = {});

// --- Harness 2: function tests (Python) -------------------------------------------------------

struct FunctionTest {
  std::string program;      // the solution (untrusted): e.g. HumanEval prompt + completion
  std::string setup_code;   // trusted, runs in the harness process first (HumanEval: the prompt;
                            // MBPP: test_imports / test_setup_code)
  std::string test_code;    // trusted: HumanEval's `def check(candidate)`, MBPP's asserts
  std::string entry_point;  // bound to `candidate` (and its own name) in the test namespace
  std::string check_call;   // evaluated after test_code, e.g. "check(candidate)"; may be empty
};

struct FunctionReport {
  bool passed = false;
  Status status = Status::ok;  // the run's status (a failed assertion is still ok)
  std::string reason;
  RunResult run;
};

FunctionReport run_function_tests(const Sandbox& sb, const FunctionTest& t,
                                  const Limits& limits = {}, const LanguageOptions& opts = {});

// The harness script (for docs and the benchmark).
const std::string& function_harness_source();

}  // namespace r1kit::sandbox

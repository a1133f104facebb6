// Language runners on top of Sandbox: python3, C++ (g++ compile step with its own limits, inside a
// sandbox too, then run) and bash. prepare_program compiles once; make_run_spec runs it many times.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/sandbox.h"

namespace r1kit::sandbox {

enum class Language { python, cpp, bash };
std::string_view language_name(Language l);
std::optional<Language> language_from_name(std::string_view name);  // "python", "cpp", "bash"

struct LanguageOptions {
  std::string python = "/usr/bin/python3";
  std::string cxx = "/usr/bin/g++";
  std::string bash = "/bin/bash";
  std::vector<std::string> cxx_flags = {"-O2", "-std=gnu++17", "-pipe"};
  // The compile step's own limits (it runs in a sandbox like any program).
  Limits compile_limits = {30.0, 30.0, 2ull << 30, 64, 256, 256ull << 20, 64ull << 20};
};

// A program ready to run. For C++, compile holds the compile step (status compile_error when it
// failed, ok otherwise); the binary travels in `files`.
struct PreparedProgram {
  Language language = Language::python;
  bool ok = true;
  RunResult compile;
  std::vector<std::string> argv;
  std::vector<SandboxFile> files;
};

PreparedProgram prepare_program(const Sandbox& sb, Language lang, const std::string& source,
                                const LanguageOptions& opts = {});
RunSpec make_run_spec(const PreparedProgram& p, std::string stdin_data, const Limits& limits);

// Compile (when needed) and run once. A failed compile returns the compile step's result with
// status compile_error.
RunResult run_program(const Sandbox& sb, Language lang, const std::string& source,
                      std::string stdin_data = "", const Limits& limits = {},
                      const LanguageOptions& opts = {});

}  // namespace r1kit::sandbox

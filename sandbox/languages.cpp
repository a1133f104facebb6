// python3, C++ and bash on the sandbox (see languages.h).
#include "sandbox/languages.h"

namespace r1kit::sandbox {

std::string_view language_name(Language l) {
  switch (l) {
    case Language::python:
      return "python";
    case Language::cpp:
      return "cpp";
    case Language::bash:
      return "bash";
  }
  return "?";
}

std::optional<Language> language_from_name(std::string_view name) {
  if (name == "python" || name == "python3" || name == "py") return Language::python;
  if (name == "cpp" || name == "c++" || name == "cxx") return Language::cpp;
  if (name == "bash" || name == "sh") return Language::bash;
  return std::nullopt;
}

namespace {
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out.append("'\\''");
    else
      out.push_back(c);
  }
  out.push_back('\'');
  return out;
}
}  // namespace

PreparedProgram prepare_program(const Sandbox& sb, Language lang, const std::string& source,
                                const LanguageOptions& opts) {
  PreparedProgram p;
  p.language = lang;
  p.compile.status = Status::ok;
  switch (lang) {
    case Language::python:
      p.argv = {opts.python, "-B", "main.py"};
      p.files = {{"main.py", source, false}};
      return p;
    case Language::bash:
      p.argv = {opts.bash, "main.sh"};
      p.files = {{"main.sh", source, false}};
      return p;
    case Language::cpp:
      break;
  }
  // The compiler reads hostile source too, so it runs sandboxed; the binary comes back on stdout
  // (diagnostics on stderr).
  std::string cmd = shell_quote(opts.cxx);
  for (const auto& f : opts.cxx_flags) {
    cmd.push_back(' ');
    cmd.append(shell_quote(f));
  }
  cmd += " main.cpp -o prog 1>&2 && cat prog";
  RunSpec spec;
  spec.argv = {"/bin/sh", "-c", cmd};
  spec.files = {{"main.cpp", source, false}};
  spec.limits = opts.compile_limits;
  p.compile = sb.run(spec);
  if (p.compile.status != Status::ok) {
    p.ok = false;
    std::string why = p.compile.status == Status::runtime_error
                          ? "compilation failed"
                          : "the compile step ended with " +
                                std::string(status_name(p.compile.status)) +
                                (p.compile.message.empty() ? "" : ": " + p.compile.message);
    p.compile.status = Status::compile_error;
    p.compile.message = why;
    p.compile.stdout_data.clear();
    return p;
  }
  p.argv = {std::string(kWorkDir) + "/prog"};
  p.files = {{"prog", std::move(p.compile.stdout_data), true}};
  p.compile.stdout_data.clear();
  return p;
}

RunSpec make_run_spec(const PreparedProgram& p, std::string stdin_data, const Limits& limits) {
  RunSpec spec;
  spec.argv = p.argv;
  spec.files = p.files;
  spec.stdin_data = std::move(stdin_data);
  spec.limits = limits;
  return spec;
}

RunResult run_program(const Sandbox& sb, Language lang, const std::string& source,
                      std::string stdin_data, const Limits& limits, const LanguageOptions& opts) {
  PreparedProgram p = prepare_program(sb, lang, source, opts);
  if (!p.ok) return p.compile;
  return sb.run(make_run_spec(p, std::move(stdin_data), limits));
}

}  // namespace r1kit::sandbox

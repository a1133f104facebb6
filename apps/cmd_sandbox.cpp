// `r1kit sandbox run [--lang L] [--stdin FILE] [--time-limit S] [--memory-limit MB] FILE`: runs one
// program in the sandbox and prints one JSON object (status, exit_code, signal, stdout, stderr,
// truncation flags, wall_ms, cpu_ms, max_rss_kb). Exit status 0 whenever the sandbox worked.
// `r1kit sandbox eval --format humaneval|mbpp|stdio FILE [--solution-field NAME] [--jobs N]`: runs
// every row's solution against its tests; one JSON line per row (stdout, or --out FILE), then a
// summary line {"summary": {passed, failed, by_status, ...}}.
#include <iostream>

#include "apps/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "sandbox/eval.h"
#include "sandbox/languages.h"

namespace r1kit::apps {
namespace {

struct SandboxArgs {
  std::string file, lang, stdin_file, format, solution_field, out, compare;
  double time_limit = 10, cpu_limit = 0;
  uint64_t memory_mb = 1024;
  int jobs = 0;
  size_t max_cases = 0;
  bool weak = false;
};

sandbox::Language guess_language(const std::string& file, const std::string& lang) {
  if (!lang.empty()) {
    auto l = sandbox::language_from_name(lang);
    if (!l) R1_THROW("--lang {}: unknown language (python, cpp, bash)", lang);
    return *l;
  }
  auto ends = [&](const char* s) {
    std::string e(s);
    return file.size() >= e.size() && file.compare(file.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".cpp") || ends(".cc") || ends(".cxx")) return sandbox::Language::cpp;
  if (ends(".sh")) return sandbox::Language::bash;
  return sandbox::Language::python;
}

sandbox::Limits limits_of(const SandboxArgs& a) {
  sandbox::Limits l;
  l.wall_s = a.time_limit;
  l.cpu_s = a.cpu_limit > 0 ? a.cpu_limit : a.time_limit;
  l.memory_bytes = a.memory_mb << 20;
  sandbox::validate_limits(l);
  return l;
}

sandbox::SandboxOptions sandbox_options(const SandboxArgs& a) {
  sandbox::SandboxOptions o;
  o.allow_weaker_isolation = a.weak;
  return o;
}

void run_cmd(const SandboxArgs& a) {
  sandbox::Limits lim = limits_of(a);
  std::string source = read_file(a.file);
  std::string in = a.stdin_file.empty() ? "" : read_file(a.stdin_file);
  sandbox::Sandbox sb(sandbox_options(a));
  auto r = sandbox::run_program(sb, guess_language(a.file, a.lang), source, std::move(in), lim);
  std::cout << r1kit::dump_json(sandbox::result_to_json(r), -1, "result") << "\n";
}

void eval_cmd(const SandboxArgs& a) {
  auto fmt_opt = sandbox::eval_format_from_name(a.format);
  if (!fmt_opt) R1_THROW("--format {}: unknown format (humaneval, mbpp, stdio)", a.format);
  sandbox::EvalOptions opts;
  opts.format = *fmt_opt;
  opts.solution_field = a.solution_field;
  opts.jobs = a.jobs;
  opts.limits = limits_of(a);
  opts.max_cases = a.max_cases;
  if (!a.compare.empty()) {
    auto c = sandbox::compare_from_name(a.compare);
    if (!c) R1_THROW("--compare {}: unknown mode (exact, whitespace, float)", a.compare);
    opts.compare = *c;
  }
  auto rows = sandbox::read_dataset(a.file);
  sandbox::Sandbox sb(sandbox_options(a));
  std::unique_ptr<JsonlWriter> writer;
  if (!a.out.empty()) writer = std::make_unique<JsonlWriter>(a.out, JsonlWriter::Mode::truncate);
  auto results = sandbox::evaluate_rows(sb, rows, opts, [&](const Json& r) {
    if (writer)
      writer->write(r);
    else
      std::cout << r.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n" << std::flush;
  });
  Json summary = sandbox::summarize(results);
  summary["file"] = a.file;
  summary["format"] = a.format;
  std::cout << Json{{"summary", summary}}.dump() << "\n";
}

}  // namespace

void register_sandbox(CLI::App& app) {
  auto* cmd = app.add_subcommand("sandbox", "Run untrusted programs in the sandbox (JSON out)");
  cmd->require_subcommand(1);
  auto a = std::make_shared<SandboxArgs>();
  auto common = [a](CLI::App* c) {
    c->add_option("--time-limit", a->time_limit, "wall-clock limit per run, seconds (default 10)");
    c->add_option("--cpu-limit", a->cpu_limit,
                  "CPU limit per process, seconds (default: time limit)");
    c->add_option("--memory-limit", a->memory_mb, "memory limit per run, MiB (default 1024)");
    c->add_flag("--allow-weak-isolation", a->weak,
                "run even where the kernel refuses namespaces or seccomp (UNSAFE; warns)");
  };
  auto* run = cmd->add_subcommand("run", "Run one program; print its result as JSON");
  run->add_option("file", a->file, "the program (python, C++ or bash source)")->required();
  run->add_option("--lang", a->lang, "python, cpp or bash (default: from the file extension)");
  run->add_option("--stdin", a->stdin_file, "a file fed to the program's standard input");
  common(run);
  run->callback([a] { run_cmd(*a); });

  auto* ev = cmd->add_subcommand("eval", "Run each dataset row's solution against its tests");
  ev->add_option("file", a->file, "rows: .jsonl, .json array, optionally .gz")->required();
  ev->add_option("--format", a->format, "humaneval, mbpp or stdio")->required();
  ev->add_option("--solution-field", a->solution_field,
                 "the field holding the solution (default: completion, code, solution)");
  ev->add_option("--jobs", a->jobs, "sandboxes at once (default: all cores)");
  ev->add_option("--out", a->out, "write per-row results here (JSONL) instead of stdout");
  ev->add_option("--compare", a->compare, "stdio: exact, whitespace (default) or float");
  ev->add_option("--max-cases", a->max_cases, "stdio: at most this many cases per row");
  common(ev);
  ev->callback([a] { eval_cmd(*a); });
}

}  // namespace r1kit::apps

#include "recipes/run.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <limits>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/tensorboard.h"
#include "recipes/builtin.h"
#include "recipes/recipe.h"
#include "recipes/report.h"
#include "recipes/stages.h"

namespace r1kit::recipes {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string utc_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

bool is_builtin(const std::string& name) {
  for (const auto& [n, text] : builtin_recipes())
    if (n == name) return true;
  return false;
}

// The newest runs/<name>-* directory holding a state.json ("" if none).
std::string newest_run(const std::string& name) {
  std::error_code ec;
  std::string best;
  if (!fs::is_directory("runs", ec)) return best;
  for (const auto& e : fs::directory_iterator("runs", ec)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(name + "-", 0) == 0 && fs::exists(e.path() / "state.json", ec) &&
        (best.empty() || f > fs::path(best).filename().string()))
      best = e.path().string();
  }
  return best;
}

// The first difference between two JSON values as "key.path: was X, is Y" ("" when equal).
std::string first_difference(const Json& a, const Json& b, const std::string& path) {
  if (a.type() != b.type() || (!a.is_object() && !a.is_array())) {
    if (a == b) return "";
    return fmt::format("{}: was {}, is {}", path.empty() ? "(value)" : path, a.dump(), b.dump());
  }
  if (a.is_object()) {
    for (const auto& [k, v] : a.items()) {
      const std::string p = path.empty() ? k : path + "." + k;
      if (!b.contains(k)) return fmt::format("{}: was {}, now absent", p, v.dump());
      const std::string d = first_difference(v, b.at(k), p);
      if (!d.empty()) return d;
    }
    for (const auto& [k, v] : b.items())
      if (!a.contains(k))
        return fmt::format("{}: absent before, now {}", path.empty() ? k : path + "." + k,
                           v.dump());
    return "";
  }
  if (a.size() != b.size())
    return fmt::format("{}: {} entries before, {} now", path, a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string d = first_difference(a[i], b[i], fmt::format("{}[{}]", path, i));
    if (!d.empty()) return d;
  }
  return "";
}

// RUN/metrics.jsonl from the stages' own files (in stage order) and the eval results.
void rebuild_metrics(const Json& resolved, const Json& state, const std::string& run_dir) {
  std::vector<Json> rows;
  for (const Json& s : resolved.at("stages")) {
    const std::string name = s.at("name").get<std::string>();
    const std::string out = s.at("config").at("output").get<std::string>();
    const std::string type = s.at("type").get<std::string>();
    std::error_code ec;
    const std::string m = (fs::path(out) / "metrics.jsonl").string();
    if ((type == "sft" || type == "distill" || type == "grpo") && fs::exists(m, ec)) {
      JsonlReadOptions ro;
      ro.allow_truncated_last_line = true;
      for (Json& row : read_jsonl_file(m, ro)) {
        if (!row.is_object()) continue;
        row["stage"] = name;
        rows.push_back(std::move(row));
      }
    }
    const Json& st = state.at("stages").at(name);
    if (type == "eval" && st.value("status", "") == "done") {
      const Json& res = st.at("summary").at("results");
      if (res.contains("datasets"))
        for (const auto& [ds, metrics] : res.at("datasets").items()) {
          Json row = metrics;
          row["type"] = "eval";
          row["stage"] = name;
          row["dataset"] = ds;
          rows.push_back(std::move(row));
        }
    }
  }
  write_jsonl_file_atomic((fs::path(run_dir) / "metrics.jsonl").string(), rows);
}

// Starts a training stage's TensorBoard folder afresh: one event file holding the rows of the
// stage's metrics.jsonl with a step below `below_step` (every row: INT64_MAX). The writer stays
// open for the rows that follow. A resumed stage calls it at its first new row, when the trainer
// has cut metrics.jsonl back to its checkpoint.
std::unique_ptr<MetricsTensorBoard> restart_stage_tensorboard(const std::string& run_dir,
                                                              const std::string& stage,
                                                              const std::string& output,
                                                              int64_t below_step) {
  std::error_code ec;
  const fs::path dir = fs::path(run_dir) / "tensorboard" / stage;
  fs::remove_all(dir, ec);
  auto tb = std::make_unique<MetricsTensorBoard>(dir.string(), stage);
  const std::string m = (fs::path(output) / "metrics.jsonl").string();
  if (!fs::exists(m, ec)) return tb;
  JsonlReadOptions ro;
  ro.allow_truncated_last_line = true;
  const std::string where = fmt::format("stage '{}': {}", stage, m);
  for (const Json& row : read_jsonl_file(m, ro))
    if (row.contains("step") && row.at("step").get<int64_t>() < below_step) tb->add_row(row, where);
  return tb;
}

std::string summary_postfix(const Json& line) {
  std::string s;
  auto add = [&](const char* key, const char* label) {
    if (line.contains(key) && line.at(key).is_number())
      s += fmt::format("{}{}={:.3f}", s.empty() ? "" : " ", label, line.at(key).get<double>());
  };
  add("loss", "loss");
  add("reward_mean", "reward");
  add("accuracy", "acc");
  add("teacher_kl", "kl");
  if (line.contains("dataset") && line.at("dataset").is_string()) {
    if (!s.empty()) s += ' ';
    s += line.at("dataset").get<std::string>();
  }
  if (line.contains("accepted") && line.at("accepted").is_number())
    s += fmt::format("{}accepted={}", s.empty() ? "" : " ", line.at("accepted").dump());
  return s;
}

}  // namespace

std::string results_table(const Json& resolved, const Json& state) {
  struct Row {
    std::string stage, dataset, problems, pass1, passk, majk, format;
  };
  std::vector<Row> rows;
  auto num = [](const Json& m, const std::vector<std::string>& keys) -> std::string {
    for (const std::string& k : keys)
      if (m.contains(k) && m.at(k).is_number()) return fmt::format("{:.3f}", m.at(k).get<double>());
    return "-";
  };
  auto first_key = [](const Json& m, const std::string& prefix) -> std::string {
    for (const auto& [k, v] : m.items())
      if (k.rfind(prefix, 0) == 0 && k != "pass@1") return k;
    return prefix + "k";
  };
  for (const Json& s : resolved.at("stages")) {
    if (s.at("type") != "eval") continue;
    const std::string name = s.at("name").get<std::string>();
    const Json& st = state.at("stages").at(name);
    if (st.value("status", "") != "done") continue;
    const Json& res = st.at("summary").at("results");
    if (!res.contains("datasets")) continue;
    for (const auto& [ds, m] : res.at("datasets").items()) {
      Row r;
      r.stage = name;
      r.dataset = ds;
      r.problems = m.contains("problems") ? m.at("problems").dump() : "-";
      r.pass1 = num(m, {"pass@1"});
      r.passk = num(m, {first_key(m, "pass@")});
      r.majk = num(m, {first_key(m, "maj@")});
      r.format = num(m, {"format_rate"});
      rows.push_back(r);
    }
  }
  if (rows.empty()) return "";
  Row head{"stage", "dataset", "problems", "pass@1", "pass@k", "maj@k", "format"};
  std::vector<size_t> w(7, 0);
  auto cells = [](const Row& r) {
    return std::vector<std::string>{r.stage, r.dataset, r.problems, r.pass1,
                                    r.passk, r.majk,    r.format};
  };
  for (const Row& r : rows)
    for (size_t i = 0; i < 7; ++i) w[i] = std::max(w[i], cells(r)[i].size());
  for (size_t i = 0; i < 7; ++i) w[i] = std::max(w[i], cells(head)[i].size());
  std::string out;
  auto line = [&](const Row& r) {
    const auto c = cells(r);
    for (size_t i = 0; i < 7; ++i) {
      const std::string pad(w[i] - std::min(w[i], c[i].size()), ' ');
      out += (i < 2 ? c[i] + pad : pad + c[i]) + (i + 1 < 7 ? "  " : "\n");
    }
  };
  line(head);
  size_t total = 0;
  for (size_t x : w) total += x + 2;
  out += std::string(total - 2, '-') + "\n";
  for (const Row& r : rows) line(r);
  return out;
}

RunResult run_recipe(const std::string& recipe_arg, const RunOptions& opts) {
  const Json j = load_recipe_json(recipe_arg, opts.overrides);
  const bool builtin = is_builtin(recipe_arg);
  const std::string label = builtin ? "built-in recipe " + recipe_arg : recipe_arg;
  Recipe recipe = Recipe::from_json(j, label);
  recipe.base_dir = builtin ? builtin_base_dir()
                            : fs::absolute(recipe_arg).parent_path().lexically_normal().string();

  RunResult result;
  std::string run_dir = opts.run_dir;
  if (run_dir.empty()) {
    if (opts.resume) {
      run_dir = newest_run(recipe.name);
      R1_CHECK(!run_dir.empty(), "--resume: no earlier run of '{}' under runs/ (give --run-dir)",
               recipe.name);
    } else {
      run_dir = (fs::path("runs") / (recipe.name + "-" + utc_stamp())).string();
    }
  }
  run_dir = fs::absolute(run_dir).lexically_normal().string();
  result.run_dir = run_dir;
  result.resolved = resolve_and_validate(recipe, run_dir);
  if (!opts.until.empty()) {
    bool known = false;
    for (const Stage& s : recipe.stages) known = known || s.name == opts.until;
    R1_CHECK(known, "--until {}: the recipe has no stage of that name", opts.until);
  }
  if (opts.validate_only) return result;

  std::error_code ec;
  const std::string resolved_path = (fs::path(run_dir) / "resolved.json").string();
  const std::string state_path = (fs::path(run_dir) / "state.json").string();
  Json state;
  if (fs::exists(resolved_path, ec)) {
    R1_CHECK(opts.resume,
             "{} already holds a run: add --resume to continue it, or give another --run-dir",
             run_dir);
    const Json saved = read_json_file(resolved_path);
    const std::string d = first_difference(saved, result.resolved, "");
    R1_CHECK(d.empty(),
             "--resume {}: the recipe differs from the one this run started with ({}); resume "
             "with the same recipe and overrides, or start a new run",
             run_dir, d);
    state = fs::exists(state_path, ec) ? read_json_file(state_path) : Json::object();
  } else {
    R1_CHECK(!opts.resume || !fs::exists(run_dir, ec) || fs::is_empty(run_dir, ec),
             "--resume {}: the directory holds no run (no resolved.json)", run_dir);
    fs::create_directories(run_dir);
    write_json_file_atomic(resolved_path, result.resolved);
  }
  if (!state.contains("stages")) {
    state = Json{{"recipe", recipe.name}, {"stages", Json::object()}};
  }
  for (const Json& s : result.resolved.at("stages")) {
    const std::string name = s.at("name").get<std::string>();
    if (!state["stages"].contains(name)) state["stages"][name] = Json{{"status", "pending"}};
  }
  write_json_file_atomic(state_path, state);
  install_interrupt_handlers();

  const auto& stages = result.resolved.at("stages");
  for (size_t i = 0; i < stages.size(); ++i) {
    const Json& s = stages[i];
    const std::string name = s.at("name").get<std::string>();
    const std::string type = s.at("type").get<std::string>();
    Json& st = state["stages"][name];
    if (st.value("status", "") == "done") {
      logger()->info("[run] stage {}/{} '{}' ({}): done earlier, skipped", i + 1, stages.size(),
                     name, type);
      continue;
    }
    logger()->info("[run] stage {}/{} '{}' ({})", i + 1, stages.size(), name, type);
    st["status"] = "running";
    write_json_file_atomic(state_path, state);
    const auto t0 = Clock::now();
    const Json& cfg = s.at("config");
    std::unique_ptr<Progress> progress;
    // TensorBoard while the stage runs: metrics rows as the trainer reports them.
    const bool training = type == "sft" || type == "distill" || type == "grpo";
    const std::string output = cfg.at("output").get<std::string>();
    std::unique_ptr<MetricsTensorBoard> live_tb;
    const StageCallback cb = [&](const Json& line) {
      if (training && line.value("type", "") != "progress" && line.contains("step")) {
        if (!live_tb)
          live_tb =
              restart_stage_tensorboard(run_dir, name, output, line.at("step").get<int64_t>());
        live_tb->add_row(line, fmt::format("stage '{}' metrics", name));
      }
      if (opts.progress && line.contains("step") && line.contains("total_steps")) {
        if (!progress)
          progress = std::make_unique<Progress>(name, line.at("total_steps").get<int64_t>(),
                                                std::cerr, isatty(2) != 0);
        progress->set_postfix(summary_postfix(line));
        progress->tick(line.at("step").get<int64_t>() - progress->count());
      }
      if (opts.on_step) opts.on_step(name, line);
    };
    StageType t = StageType::sft;
    for (StageType x : {StageType::init, StageType::data, StageType::sft, StageType::distill,
                        StageType::grpo, StageType::sample, StageType::eval})
      if (stage_type_name(x) == type) t = x;
    Json summary;
    try {
      summary = run_stage(t, cfg, fmt::format("stage '{}' ({})", name, type), cb);
    } catch (...) {
      // Whatever stopped the stage, what it wrote so far is visible in the run's files.
      if (progress) progress->finish();
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      st["seconds"] = st.value("seconds", 0.0) + secs;
      write_json_file_atomic(state_path, state);
      const bool live = live_tb != nullptr;
      live_tb.reset();
      try {
        rebuild_metrics(result.resolved, state, run_dir);
        if (!live && training)
          restart_stage_tensorboard(run_dir, name, output, std::numeric_limits<int64_t>::max());
      } catch (const std::exception& e) {
        logger()->warn("[run] could not update the run's metrics: {}", e.what());
      }
      throw;
    }
    if (progress) progress->finish();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    st["status"] = "done";
    st["seconds"] = st.value("seconds", 0.0) + secs;
    st["summary"] = summary;
    write_json_file_atomic(state_path, state);
    rebuild_metrics(result.resolved, state, run_dir);
    // A stage that wrote no row this time (it had finished before a crash) gets its event file
    // from metrics.jsonl.
    if (!live_tb && training)
      restart_stage_tensorboard(run_dir, name, output, std::numeric_limits<int64_t>::max());
    live_tb.reset();
    if (type == "eval") {
      const std::string t1 = results_table(result.resolved, state);
      if (!t1.empty()) logger()->info("[run] after stage '{}':\n{}", name, t1);
    }
    write_report(run_dir, result.resolved, state);
    if (interrupt_requested() && i + 1 < stages.size())
      throw Interrupted(fmt::format(
          "stopped after stage '{}' (Ctrl-C); r1kit run --resume --run-dir {} continues", name,
          run_dir));
    if (name == opts.until) {
      logger()->info("[run] stopped after stage '{}' (--until); --resume continues", name);
      break;
    }
  }
  result.state = state;
  result.table = results_table(result.resolved, state);
  return result;
}

}  // namespace r1kit::recipes

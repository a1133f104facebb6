// `r1kit reward --config REWARDS.json --input FILE.jsonl [--completion-field completion]
// [--jobs N]`: scores each row's completion with the composed reward of the config
// (rewards/compose.h, docs/REWARDS.md). The whole row is the reference (each reward reads its own
// fields). One JSON row per input row, in input order, goes to stdout:
//   {"index", "line", "score", "status", "reason"?, "components"?, "details"?, "id"?}
// A malformed row (bad JSON, no completion) gives a row with status "error" and a reason naming
// FILE:LINE and the field; scoring goes on. A summary goes to stderr. Exit status 0 unless the
// config or the input file cannot be read.
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "apps/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "rewards/compose.h"

namespace r1kit::apps {
namespace {

struct RewardArgs {
  std::string config, input, completion_field = "completion", prompt_field = "prompt",
                             tokens_field = "completion_tokens";
  int jobs = 1;
  bool no_details = false;
};

struct Row {
  size_t index = 0, line = 0;
  Json record;  // the parsed row (null when it did not parse)
  std::string error;
  Json result;
};

// A completion (or prompt) given as text or as chat messages: the last assistant message (the
// last message when none is the assistant's).
std::optional<std::string> text_of(const Json& v, const std::string& field, std::string* why) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array() && !v.empty()) {
    const Json* pick = nullptr;
    for (const auto& m : v)
      if (m.is_object() && m.value("role", std::string()) == "assistant") pick = &m;
    if (!pick) pick = &v.back();
    if (pick->is_object() && pick->contains("content") && (*pick)["content"].is_string())
      return (*pick)["content"].get<std::string>();
  }
  *why = "field '" + field + "' must be a string or a list of {role, content} messages, got " +
         json_type_name(v);
  return std::nullopt;
}

Json score_row(const rewards::Reward& reward, const Row& row, const RewardArgs& a) {
  Json out = Json::object();
  out["index"] = row.index;
  out["line"] = row.line;
  const std::string where = a.input + ":" + std::to_string(row.line);
  auto fail = [&](const std::string& why) {
    out["score"] = 0.0;
    out["status"] = "error";
    out["reason"] = where + ": " + why;
    return out;
  };
  if (!row.error.empty()) return fail(row.error);
  const Json& rec = row.record;
  if (!rec.is_object()) return fail("a row must be a JSON object, got " + json_type_name(rec));
  for (const char* k : {"id", "task_id"})
    if (rec.contains(k)) out[k] = rec[k];
  if (!rec.contains(a.completion_field)) {
    std::string fields;
    for (auto it = rec.begin(); it != rec.end(); ++it)
      fields += (fields.empty() ? "" : ", ") + it.key();
    return fail("no field '" + a.completion_field + "' (fields: " + fields +
                "; pick one with --completion-field)");
  }
  std::string why;
  auto completion = text_of(rec[a.completion_field], a.completion_field, &why);
  if (!completion) return fail(why);
  std::string prompt;
  if (rec.contains(a.prompt_field)) {
    auto p = text_of(rec[a.prompt_field], a.prompt_field, &why);
    if (!p) return fail(why);
    prompt = *p;
  }
  size_t tokens = 0;
  if (rec.contains(a.tokens_field)) {
    const Json& t = rec[a.tokens_field];
    if (t.is_array()) {
      tokens = t.size();  // token ids
    } else if (t.is_number_unsigned() || (t.is_number_integer() && t.get<int64_t>() >= 0)) {
      tokens = t.get<size_t>();
    } else {
      return fail("field '" + a.tokens_field +
                  "' must be a token count (integer >= 0) or a list of token ids");
    }
  }
  rewards::RewardInput in{prompt, *completion, rec, tokens};
  rewards::RewardResult r = reward.score(in);
  out["score"] = r.score;
  out["status"] = rewards::reward_status_name(r.status);
  if (!r.reason.empty()) out["reason"] = r.reason;
  if (!r.components.empty()) out["components"] = r.components;
  if (!a.no_details && !r.details.is_null()) out["details"] = r.details;
  return out;
}

void reward_cmd(const RewardArgs& a) {
  R1_CHECK(a.jobs >= 0, "--jobs must be >= 0 (0: all cores)");
  auto reward = rewards::load_reward_config(a.config);
  std::ifstream in(a.input, std::ios::binary);
  R1_CHECK(in.good(), "{}: cannot open the input file", a.input);
  int jobs = a.jobs > 0 ? a.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
  const size_t batch = size_t(jobs) * 16;
  auto t0 = std::chrono::steady_clock::now();

  size_t n_rows = 0, line_no = 0;
  std::map<std::string, size_t> by_status = {{"ok", 0}, {"skip", 0}, {"error", 0}};
  double score_sum = 0;
  std::map<std::string, std::pair<double, size_t>> comp_sum;
  std::string line;
  bool eof = false;
  while (!eof) {
    std::vector<Row> rows;
    while (rows.size() < batch) {
      if (!std::getline(in, line)) {
        eof = true;
        break;
      }
      ++line_no;
      if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      Row r;
      r.index = n_rows++;
      r.line = line_no;
      if (auto f = try_parse_json(line, &r.record))
        r.error = fmt::format("column {}: {}", f->position.column, f->message);
      rows.push_back(std::move(r));
    }
    // Score the batch on `jobs` threads; rows are claimed one at a time (code rows vary a lot).
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next.fetch_add(1)) < rows.size();) {
        try {
          rows[i].result = score_row(*reward, rows[i], a);
        } catch (const std::exception& e) {
          rows[i].result = {{"index", rows[i].index},
                            {"line", rows[i].line},
                            {"score", 0.0},
                            {"status", "error"},
                            {"reason", e.what()}};
        }
      }
    };
    std::vector<std::thread> threads;
    for (int t = 1; t < jobs && size_t(t) < rows.size(); ++t) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
    for (const auto& r : rows) {
      std::cout << r.result.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
      std::string st = r.result.value("status", std::string("error"));
      ++by_status[st];
      if (st == "ok") {
        score_sum += r.result.value("score", 0.0);
        if (r.result.contains("components"))
          for (const auto& [k, v] : r.result["components"].items()) {
            comp_sum[k].first += v.get<double>();
            ++comp_sum[k].second;
          }
      }
    }
    std::cout << std::flush;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Json comps = Json::object();
  for (const auto& [k, v] : comp_sum) comps[k] = v.second ? v.first / double(v.second) : 0.0;
  Json summary = {{"rows", n_rows},
                  {"by_status", by_status},
                  {"mean_score", by_status["ok"] ? score_sum / double(by_status["ok"]) : 0.0},
                  {"mean_components", comps},
                  {"seconds", secs},
                  {"rows_per_s", secs > 0 ? double(n_rows) / secs : 0.0},
                  {"jobs", jobs},
                  {"config", a.config},
                  {"input", a.input}};
  std::cerr << Json{{"summary", summary}}.dump(-1, ' ', false, Json::error_handler_t::replace)
            << "\n";
}

}  // namespace

void register_reward(CLI::App& app) {
  auto a = std::make_shared<RewardArgs>();
  auto* cmd = app.add_subcommand("reward", "Score completions with a composed reward (JSON out)");
  cmd->add_option("--config", a->config, "the reward config (JSON; docs/REWARDS.md)")->required();
  cmd->add_option("--input", a->input, "rows (JSONL): a completion plus reference fields")
      ->required();
  cmd->add_option("--completion-field", a->completion_field,
                  "the field holding the completion (default: completion)");
  cmd->add_option("--prompt-field", a->prompt_field, "the prompt's field (default: prompt)");
  cmd->add_option("--tokens-field", a->tokens_field,
                  "completion token count or ids, for length rewards (default: completion_tokens)");
  cmd->add_option("--jobs", a->jobs, "rows scored at once (default 1; 0: all cores)");
  cmd->add_flag("--no-details", a->no_details, "leave per-reward details out of the rows");
  cmd->callback([a] { reward_cmd(*a); });
}

}  // namespace r1kit::apps

// The eval stage (recipes/eval.h): config, metric math, the table, and the run.
#include "recipes/eval.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "policy/chat_template.h"
#include "policy/policy.h"
#include "policy/tokenizer.h"
#include "rewards/code.h"
#include "rewards/compose.h"
#include "rollout/prompts.h"
#include "sandbox/eval.h"
#include "sft/stage.h"

namespace r1kit::recipes {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Json default_rewards() {
  return Json{{"rewards", Json::array({Json{{"type", "accuracy"}}})}};
}

// Dataset names become file names (OUTPUT/inputs/NAME.jsonl) and table rows.
bool valid_dataset_name(const std::string& s) {
  if (s.empty()) return false;
  for (const char ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.'))
      return false;
  return s != "." && s != "..";
}

EvalDataset dataset_from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(
      j, {"name", "path", "prompt_field", "rewards", "max_problems", "max_prompt_tokens"}, where);
  EvalDataset d;
  d.name = get_required<std::string>(j, "name", where);
  R1_CHECK(valid_dataset_name(d.name),
           "{}: dataset name \"{}\" must be non-empty and use only letters, digits, '_', '-', '.'",
           where, d.name);
  d.path = get_required<std::string>(j, "path", where);
  R1_CHECK(!d.path.empty(), "{}: 'path' must name a JSONL file", where);
  d.prompt_field = get_optional<std::string>(j, "prompt_field", where, "");
  d.rewards =
      j.contains("rewards") && !j.at("rewards").is_null() ? j.at("rewards") : default_rewards();
  const std::string rw = json_where(where, "rewards");
  if (d.rewards.is_object()) {
    // Built now so that a bad reward config fails before any model is loaded.
    rewards::ComposedReward::from_json(d.rewards, rw);
  } else {
    R1_CHECK(d.rewards.is_string() && !d.rewards.get<std::string>().empty(),
             "{}: must be a reward config object or the path of one, got {}", rw,
             json_type_name(d.rewards));
  }
  d.max_problems = get_optional<int64_t>(j, "max_problems", where, d.max_problems);
  R1_CHECK(d.max_problems >= 0, "{}: 'max_problems' must be >= 0 (0 = all), got {}", where,
           d.max_problems);
  d.max_prompt_tokens = get_optional<int64_t>(j, "max_prompt_tokens", where, d.max_prompt_tokens);
  R1_CHECK(d.max_prompt_tokens >= 1, "{}: 'max_prompt_tokens' must be >= 1, got {}", where,
           d.max_prompt_tokens);
  return d;
}

Json dataset_to_json(const EvalDataset& d) {
  return Json{{"name", d.name},
              {"path", d.path},
              {"prompt_field", d.prompt_field},
              {"rewards", d.rewards},
              {"max_problems", d.max_problems},
              {"max_prompt_tokens", d.max_prompt_tokens}};
}

Json optional_json(const std::optional<double>& v) {
  return v ? Json(*v) : Json(nullptr);
}

// How a dataset's scorer is read: which component decides correctness, which one parses answers.
struct ScorerPlan {
  std::string correct_component;   // "" = the total score
  std::string accuracy_component;  // "" = no answers (no maj@k)
};

ScorerPlan plan_scorer(const rewards::ComposedReward& r) {
  ScorerPlan p;
  for (const auto& c : r.components())
    if (c.type == "accuracy") {
      p.accuracy_component = c.name;
      break;
    }
  p.correct_component = p.accuracy_component;
  if (p.correct_component.empty())
    for (const auto& c : r.components())
      if (c.type == "code" || c.type == "countdown") {
        p.correct_component = c.name;
        break;
      }
  return p;
}

SampleScore score_sample(const rewards::ComposedReward& scorer, const ScorerPlan& plan,
                         const rollout::PromptRow& row, const rollout::Completion& c,
                         std::string* reason) {
  SampleScore s;
  s.length = static_cast<int64_t>(c.token_ids.size());
  s.truncated = c.finish_reason == rollout::FinishReason::length;
  const rewards::RewardInput in{row.question, c.text, row.row, static_cast<size_t>(s.length),
                                nullptr};
  const rewards::RewardResult r = scorer.score(in);
  if (r.status != rewards::RewardStatus::ok) {
    s.scored = false;
    s.error = r.status == rewards::RewardStatus::error;
    *reason = r.reason;
    return s;
  }
  s.reward = r.score;
  if (const auto it = r.components.find("format"); it != r.components.end()) s.format = it->second;
  if (plan.correct_component.empty()) {
    s.correct = r.score >= 1.0;
  } else {
    const auto it = r.components.find(plan.correct_component);
    s.correct = it != r.components.end() && it->second >= 1.0;
  }
  if (!plan.accuracy_component.empty() && r.details.contains("components")) {
    for (const Json& pc : r.details.at("components")) {
      if (pc.value("name", std::string()) != plan.accuracy_component) continue;
      if (pc.contains("details") && pc.at("details").is_object()) {
        const Json& d = pc.at("details");
        if (d.contains("pred_parsed") && d.at("pred_parsed").is_string())
          s.answer = d.at("pred_parsed").get<std::string>();
      }
      break;
    }
  }
  return s;
}

// The dataset's rows as a JSONL file load_prompt_set reads: the file itself, or (a .json array,
// a gzip'd file) its rows rewritten under OUTPUT/inputs/.
std::string jsonl_input(const EvalDataset& d, const fs::path& out) {
  const std::string& p = d.path;
  auto ends_with = [&](std::string_view suffix) {
    return p.size() >= suffix.size() &&
           p.compare(p.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
  };
  if (!ends_with(".gz") && !ends_with(".json")) return p;
  const std::vector<Json> rows = sandbox::read_dataset(p);
  fs::create_directories(out / "inputs");
  const std::string converted = (out / "inputs" / (d.name + ".jsonl")).string();
  write_jsonl_file_atomic(converted, rows);
  logger()->info("[eval] {}: {} rows of {} rewritten as {}", d.name, rows.size(), p, converted);
  return converted;
}

std::string format_number(const Json& v, int decimals) {
  if (v.is_null() || !v.is_number()) return "-";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return fmt::format("{:.{}f}", v.get<double>(), decimals);
}

}  // namespace

// --- Config -------------------------------------------------------------------------------------

rollout::SamplingParams default_eval_sampling() {
  rollout::SamplingParams p;
  p.temperature = 0.6;
  p.top_p = 0.95;
  p.max_new_tokens = 32768;
  return p;
}

EvalConfig EvalConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j,
                      {"model", "tokenizer", "chat_template", "prompt_template", "system_prompt",
                       "datasets", "samples", "k", "sampling", "log_samples", "output", "device",
                       "dtype", "threads", "seed", "engine"},
                      where);
  EvalConfig c;
  c.model = get_required<std::string>(j, "model", where);
  R1_CHECK(!c.model.empty(), "{}: 'model' must name a model directory", where);
  c.tokenizer = get_optional<std::string>(j, "tokenizer", where, "");
  c.chat_template = get_optional<std::string>(j, "chat_template", where, "");
  c.prompt_template = get_optional<std::string>(j, "prompt_template", where, "");
  R1_CHECK(c.chat_template.empty() || c.prompt_template.empty(),
           "{}: give 'chat_template' (a built-in name) or 'prompt_template' (a pattern), not both",
           where);
  if (!c.prompt_template.empty()) policy::ChatTemplate::from_pattern(c.prompt_template);
  c.system_prompt = get_optional<std::string>(j, "system_prompt", where, "");

  R1_CHECK(j.contains("datasets"),
           "{}: 'datasets' is required (an array of {{\"name\", \"path\", ...}})", where);
  const Json& ds = j.at("datasets");
  const std::string dsw = json_where(where, "datasets");
  R1_CHECK(ds.is_array() && !ds.empty(),
           "{}: must be a non-empty array of {{\"name\", \"path\", ...}}, got {}", dsw,
           ds.is_array() ? std::string("an empty array") : json_type_name(ds));
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < ds.size(); ++i) {
    const std::string w = json_where(dsw, i);
    EvalDataset d = dataset_from_json(ds[i], w);
    const auto [it, fresh] = seen.emplace(d.name, i);
    R1_CHECK(fresh, "{}: duplicate dataset name '{}' (also datasets[{}])", w, d.name, it->second);
    c.datasets.push_back(std::move(d));
  }

  c.samples = get_optional<int64_t>(j, "samples", where, c.samples);
  R1_CHECK(c.samples >= 1, "{}: 'samples' must be >= 1, got {}", where, c.samples);
  c.k = get_optional<int64_t>(j, "k", where, c.samples);
  R1_CHECK(c.k >= 1 && c.k <= c.samples,
           "{}: 'k' must be in [1, samples = {}] (pass@k and maj@k need k of the samples), got {}",
           where, c.samples, c.k);
  c.sampling = default_eval_sampling();
  if (j.contains("sampling")) {
    const Json& s = j.at("sampling");
    const std::string sw = json_where(where, "sampling");
    R1_CHECK(!s.is_object() || !s.contains("n"),
             "{}: the number of samples per problem is 'samples', not sampling.n", where);
    R1_CHECK(!s.is_object() || !s.contains("seed"),
             "{}: the sampling seed is the stage's 'seed', not sampling.seed", where);
    c.sampling = rollout::sampling_params_from_json(s, sw, c.sampling);
  }
  c.sampling.n = c.samples;
  c.log_samples = get_optional<int64_t>(j, "log_samples", where, c.log_samples);
  R1_CHECK(c.log_samples >= 0, "{}: 'log_samples' must be >= 0, got {}", where, c.log_samples);
  c.output = get_optional<std::string>(j, "output", where, "");
  c.device = get_optional<std::string>(j, "device", where, c.device);
  c.dtype = get_optional<std::string>(j, "dtype", where, c.dtype);
  sft::check_device_and_dtype(c.device, c.dtype, where);
  c.threads = get_optional<int32_t>(j, "threads", where, c.threads);
  R1_CHECK(c.threads >= 0, "{}: 'threads' must be >= 0 (0 = all cores), got {}", where, c.threads);
  c.seed = get_optional<uint64_t>(j, "seed", where, c.seed);
  c.sampling.seed = c.seed;
  c.sampling.validate(json_where(where, "sampling"));
  // Greedy decoding gives every sample of a problem the same completion.
  R1_CHECK(c.sampling.temperature > 0 || c.samples == 1,
           "{}: sampling.temperature 0 (greedy) makes all {} samples identical: use samples 1 or "
           "a temperature > 0",
           where, c.samples);
  if (j.contains("engine"))
    c.engine = rollout::EngineOptions::from_json(j.at("engine"), json_where(where, "engine"));
  return c;
}

Json EvalConfig::to_json() const {
  Json s = rollout::to_json(sampling);
  s.erase("n");
  s.erase("seed");
  Json ds = Json::array();
  for (const EvalDataset& d : datasets) ds.push_back(dataset_to_json(d));
  return Json{{"model", model},
              {"tokenizer", tokenizer},
              {"chat_template", chat_template},
              {"prompt_template", prompt_template},
              {"system_prompt", system_prompt},
              {"datasets", ds},
              {"samples", samples},
              {"k", k},
              {"sampling", s},
              {"log_samples", log_samples},
              {"output", output},
              {"device", device},
              {"dtype", dtype},
              {"threads", threads},
              {"seed", seed},
              {"engine", engine.to_json()}};
}

std::vector<std::string> EvalConfig::input_paths() const {
  std::vector<std::string> p{model};
  if (!tokenizer.empty()) p.push_back(tokenizer);
  for (const EvalDataset& d : datasets) {
    p.push_back(d.path);
    if (d.rewards.is_string()) p.push_back(d.rewards.get<std::string>());
  }
  return p;
}

// --- Metric math --------------------------------------------------------------------------------

MajorityVote majority_vote(const std::vector<std::string>& answers,
                           const std::vector<bool>& correct) {
  R1_CHECK(answers.size() == correct.size(), "[majority_vote] {} answers but {} correctness flags",
           answers.size(), correct.size());
  // answer -> (votes, first sample giving it)
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> votes;
  for (size_t s = 0; s < answers.size(); ++s) {
    if (answers[s].empty()) continue;
    auto [it, fresh] = votes.try_emplace(answers[s], 0, static_cast<int64_t>(s));
    ++it->second.first;
  }
  MajorityVote v;
  for (const auto& [answer, cf] : votes) {
    const auto [count, first] = cf;
    if (v.index < 0 || count > v.votes || (count == v.votes && first < v.index)) {
      v.index = first;
      v.votes = count;
      v.answer = answer;
    }
  }
  if (v.index >= 0) v.correct = correct[static_cast<size_t>(v.index)];
  return v;
}

Json DatasetMetrics::to_json() const {
  return Json{{"problems", problems},
              {"samples_per_problem", samples_per_problem},
              {"samples", samples},
              {"k", k},
              {"pass@1", pass_at_1},
              {"pass@k", pass_at_k},
              {"maj@k", optional_json(maj_at_k)},
              {"format_rate", optional_json(format_rate)},
              {"response_length_mean", response_length_mean},
              {"truncated_fraction", truncated_fraction},
              {"reward_mean", optional_json(reward_mean)},
              {"scorer_skipped", scorer_skipped},
              {"scorer_errors", scorer_errors},
              {"skipped_rows", skipped_rows},
              {"correct", correct}};
}

DatasetMetrics summarize_scores(const std::string& name,
                                const std::vector<std::vector<SampleScore>>& scores, int64_t k,
                                bool voting) {
  DatasetMetrics m;
  m.name = name;
  m.k = k;
  m.problems = static_cast<int64_t>(scores.size());
  m.samples_per_problem = scores.empty() ? 0 : static_cast<int64_t>(scores.front().size());
  const int64_t n = m.samples_per_problem;
  R1_CHECK(scores.empty() || (k >= 1 && k <= n),
           "[eval] {}: k = {} must be in [1, samples per problem = {}]", name, k, n);
  double maj = 0, fmt_sum = 0, fmt_n = 0, len = 0, trunc = 0, reward = 0, scored = 0;
  for (size_t p = 0; p < scores.size(); ++p) {
    const std::vector<SampleScore>& ss = scores[p];
    R1_CHECK(static_cast<int64_t>(ss.size()) == n,
             "[eval] {}: problem {} has {} samples, problem 0 has {}", name, p, ss.size(), n);
    int64_t c = 0;
    std::vector<std::string> answers;
    std::vector<bool> flags;
    for (size_t s = 0; s < ss.size(); ++s) {
      const SampleScore& x = ss[s];
      c += x.correct ? 1 : 0;
      if (static_cast<int64_t>(s) < k) {
        answers.push_back(x.answer);
        flags.push_back(x.correct);
      }
      len += static_cast<double>(x.length);
      trunc += x.truncated ? 1 : 0;
      if (x.scored) {
        reward += x.reward;
        scored += 1;
      } else {
        ++(x.error ? m.scorer_errors : m.scorer_skipped);
      }
      if (x.format) {
        fmt_sum += *x.format;
        fmt_n += 1;
      }
    }
    m.correct.push_back(c);
    m.pass_at_1 += static_cast<double>(c) / static_cast<double>(n);
    m.pass_at_k += pass_at_k(n, c, k);
    if (voting) maj += majority_vote(answers, flags).correct ? 1.0 : 0.0;
  }
  m.samples = m.problems * n;
  if (m.problems > 0) {
    const double P = static_cast<double>(m.problems);
    const double S = static_cast<double>(m.samples);
    m.pass_at_1 /= P;
    m.pass_at_k /= P;
    if (voting) m.maj_at_k = maj / P;
    m.response_length_mean = len / S;
    m.truncated_fraction = trunc / S;
  }
  if (fmt_n > 0) m.format_rate = fmt_sum / fmt_n;
  if (scored > 0) m.reward_mean = reward / scored;
  return m;
}

std::string format_eval_table(const Json& results) {
  const Json empty = Json::object();
  const Json& ds =
      results.is_object() && results.contains("datasets") ? results.at("datasets") : empty;
  // Config order first, then any other dataset by name.
  std::vector<std::string> names;
  if (results.is_object() && results.contains("config") && results.at("config").is_object() &&
      results.at("config").contains("datasets") && results.at("config").at("datasets").is_array())
    for (const Json& d : results.at("config").at("datasets"))
      if (d.is_object() && d.contains("name") && d.at("name").is_string() &&
          ds.contains(d.at("name").get<std::string>()))
        names.push_back(d.at("name").get<std::string>());
  if (ds.is_object())
    for (auto it = ds.begin(); it != ds.end(); ++it)
      if (std::find(names.begin(), names.end(), it.key()) == names.end()) names.push_back(it.key());

  const std::vector<std::pair<std::string, int>> cols = {{"problems", 0},
                                                         {"samples_per_problem", 0},
                                                         {"k", 0},
                                                         {"pass@1", 3},
                                                         {"pass@k", 3},
                                                         {"maj@k", 3},
                                                         {"format_rate", 3},
                                                         {"response_length_mean", 1},
                                                         {"truncated_fraction", 3},
                                                         {"reward_mean", 3}};
  const std::vector<std::string> header = {"dataset", "problems",  "n",     "k",
                                           "pass@1",  "pass@k",    "maj@k", "format",
                                           "length",  "truncated", "reward"};
  std::vector<std::vector<std::string>> rows{header};
  for (const std::string& name : names) {
    const Json& m = ds.at(name);
    std::vector<std::string> row{name};
    for (const auto& [key, decimals] : cols)
      row.push_back(m.is_object() && m.contains(key) ? format_number(m.at(key), decimals) : "-");
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < rows[r].size(); ++i) {
      const std::string& cell = rows[r][i];
      const std::string pad(width[i] - cell.size(), ' ');
      // The dataset column is left-aligned, the numbers right-aligned.
      line += i == 0 ? cell + pad : "  " + pad + cell;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
    if (r == 0) {
      size_t total = 0;
      for (size_t i = 0; i < width.size(); ++i) total += width[i] + (i == 0 ? 0 : 2);
      out += std::string(total, '-') + "\n";
    }
  }
  return out;
}

// --- The stage ----------------------------------------------------------------------------------

EvalResult run_eval(const EvalConfig& cfg, const EvalProgress& on_progress) {
  R1_CHECK(!cfg.output.empty(), "[eval] 'output' must name a directory (a recipe sets it)");
  R1_CHECK(!cfg.datasets.empty(), "[eval] no datasets to evaluate");
  // Every input before the model loads.
  std::error_code ec;
  for (const EvalDataset& d : cfg.datasets) {
    R1_CHECK(fs::is_regular_file(d.path, ec), "[eval] dataset '{}': no such file: {}", d.name,
             d.path);
    if (d.rewards.is_string())
      R1_CHECK(fs::is_regular_file(d.rewards.get<std::string>(), ec),
               "[eval] dataset '{}': no such reward config file: {}", d.name,
               d.rewards.get<std::string>());
  }
  const fs::path out(cfg.output);
  fs::create_directories(out);
  write_json_file_atomic((out / "config.json").string(), cfg.to_json());

  auto ctxp = sft::make_context(cfg.device, cfg.threads, cfg.seed);
  Context& ctx = *ctxp;
  const std::string tok_dir = cfg.tokenizer.empty() ? cfg.model : cfg.tokenizer;
  policy::PolicyOptions po;
  po.dtype = sft::working_dtype(cfg.dtype, ctx);
  policy::Policy policy = policy::Policy::load(cfg.model, ctx, po);
  const int64_t vocab = policy.config().vocab_size;
  const std::unique_ptr<policy::Tokenizer> tok = policy::Tokenizer::load(tok_dir);
  const policy::ChatTemplate chat =
      cfg.prompt_template.empty()
          ? policy::ChatTemplate::for_model(tok_dir, cfg.chat_template)
          : policy::ChatTemplate::from_pattern(cfg.prompt_template,
                                               policy::read_chat_special_tokens(tok_dir));
  rollout::Engine engine(policy, tok.get(), cfg.engine, ctx);

  EvalResult result;
  Json datasets = Json::object();
  Json timing = Json::object();
  std::vector<Json> traces;
  const auto t_run = Clock::now();
  // Every dataset's prompts first: a bad row stops the stage before any sampling, and the
  // progress display knows the whole stage's sample count.
  std::vector<rollout::PromptSet> sets;
  int64_t total_samples = 0;
  for (const EvalDataset& d : cfg.datasets) {
    rollout::PromptSetOptions pso;
    pso.path = jsonl_input(d, out);
    pso.field = d.prompt_field;
    pso.system_prompt = cfg.system_prompt;
    pso.max_tokens = d.max_prompt_tokens;
    pso.vocab = vocab;
    pso.label = "datasets." + d.name;
    rollout::PromptSet set = rollout::load_prompt_set(pso, *tok, chat);
    if (d.max_problems > 0 && static_cast<int64_t>(set.rows.size()) > d.max_problems)
      set.rows.resize(static_cast<size_t>(d.max_problems));
    total_samples += static_cast<int64_t>(set.rows.size()) * cfg.samples;
    sets.push_back(std::move(set));
  }
  int64_t stage_done = 0;  // samples finished over all datasets
  auto report = [&](const std::string& dataset) {
    if (on_progress)
      on_progress(Json{{"type", "progress"},
                       {"dataset", dataset},
                       {"step", stage_done},
                       {"total_steps", total_samples}});
  };
  for (size_t di = 0; di < cfg.datasets.size(); ++di) {
    const EvalDataset& d = cfg.datasets[di];
    const auto t_ds = Clock::now();
    const std::string where = "datasets." + d.name;
    std::unique_ptr<rewards::ComposedReward> scorer =
        d.rewards.is_object()
            ? rewards::ComposedReward::from_json(d.rewards, json_where(where, "rewards"))
            : rewards::load_reward_config(d.rewards.get<std::string>());
    for (const auto& c : scorer->components())
      if (const auto* code = dynamic_cast<const rewards::CodeReward*>(c.reward.get()))
        R1_CHECK(code->sandbox_error().empty(),
                 "[eval] dataset '{}': the '{}' reward cannot run: {}", d.name, c.name,
                 code->sandbox_error());
    const ScorerPlan plan = plan_scorer(*scorer);
    rollout::PromptSet& set = sets[di];
    std::vector<rollout::PromptRow>& rows = set.rows;
    const int64_t P = static_cast<int64_t>(rows.size());
    logger()->info("[eval] {}: {} problems × {} samples ({} rows skipped)", d.name, P, cfg.samples,
                   set.skipped);

    // Chunks of about two engine batches, scored as they finish, so memory stays bounded.
    const int64_t chunk = std::max<int64_t>(1, 2 * cfg.engine.max_sequences / cfg.samples);
    std::vector<std::vector<SampleScore>> scores(static_cast<size_t>(P));
    int64_t generated = 0;
    std::string first_problem;
    for (int64_t begin = 0; begin < P; begin += chunk) {
      const int64_t end = std::min(P, begin + chunk);
      std::vector<rollout::Request> reqs;
      for (int64_t p = begin; p < end; ++p) {
        rollout::Request r;
        r.prompt_ids = rows[static_cast<size_t>(p)].ids;
        r.sampling = cfg.sampling;
        r.index = static_cast<uint64_t>(p);  // the problem's position: independent of chunking
        reqs.push_back(std::move(r));
      }
      // A progress line at most every 30 s while a chunk runs (long completions take a while).
      auto t_log = Clock::now();
      int64_t finished = begin * cfg.samples;
      const std::vector<rollout::RequestOutput> outs =
          engine.generate(reqs, [&](int64_t done, int64_t) {
            finished += done;
            stage_done += done;
            report(d.name);
            if (seconds_since(t_log) < 30) return;
            t_log = Clock::now();
            logger()->info("[eval] {}: {}/{} samples", d.name, finished, P * cfg.samples);
          });
      for (int64_t p = begin; p < end; ++p) {
        const rollout::PromptRow& row = rows[static_cast<size_t>(p)];
        const rollout::RequestOutput& o = outs[static_cast<size_t>(p - begin)];
        R1_CHECK(o.ok(), "[eval] dataset '{}' ({}:{}): {}", d.name, d.path, row.line, o.error);
        for (size_t s = 0; s < o.completions.size(); ++s) {
          const rollout::Completion& c = o.completions[s];
          std::string reason;
          SampleScore sc = score_sample(*scorer, plan, row, c, &reason);
          if (!sc.scored && first_problem.empty())
            first_problem = fmt::format("line {}: {}", row.line, reason);
          generated += sc.length;
          if (p * cfg.samples + static_cast<int64_t>(s) < cfg.log_samples)
            traces.push_back(Json{
                {"dataset", d.name},
                {"problem", p},
                {"line", row.line},
                {"sample", s},
                {"completion", c.text},
                {"correct", sc.correct},
                {"answer", plan.accuracy_component.empty() || sc.answer.empty() ? Json(nullptr)
                                                                                : Json(sc.answer)},
                {"status", sc.scored ? "ok" : (sc.error ? "error" : "skip")},
                {"reward", sc.scored ? Json(sc.reward) : Json(nullptr)},
                {"length", sc.length},
                {"finish_reason", std::string(rollout::finish_reason_name(c.finish_reason))}});
          scores[static_cast<size_t>(p)].push_back(std::move(sc));
        }
      }
      logger()->info("[eval] {}: {}/{} problems", d.name, end, P);
    }
    DatasetMetrics m = summarize_scores(d.name, scores, cfg.k, !plan.accuracy_component.empty());
    m.skipped_rows = set.skipped;
    if (m.scorer_skipped + m.scorer_errors > 0)
      logger()->warn(
          "[eval] {}: the scorer skipped {} and failed on {} samples (counted wrong); "
          "first: {}",
          d.name, m.scorer_skipped, m.scorer_errors, first_problem);
    const double secs = seconds_since(t_ds);
    timing[d.name] = {{"seconds", secs},
                      {"generated_tokens", generated},
                      {"tokens_per_s", secs > 0 ? static_cast<double>(generated) / secs : 0.0}};
    logger()->info("[eval] {}: pass@1 {:.4f}, pass@{} {:.4f} ({:.1f} s)", d.name, m.pass_at_1,
                   cfg.k, m.pass_at_k, secs);
    datasets[d.name] = m.to_json();
    result.datasets.push_back(std::move(m));
  }
  timing["total_s"] = seconds_since(t_run);

  result.results = Json{
      {"datasets", datasets}, {"model", cfg.model}, {"config", cfg.to_json()}, {"timing", timing}};
  result.results_path = (out / "results.json").string();
  write_jsonl_file_atomic((out / "samples.jsonl").string(), traces);
  write_json_file_atomic(result.results_path, result.results);
  result.table = format_eval_table(result.results);
  logger()->info("[eval] results ({}):\n{}", result.results_path, result.table);
  return result;
}

}  // namespace r1kit::recipes

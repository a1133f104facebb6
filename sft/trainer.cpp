// The SFT / distillation stage (sft/trainer.h).
#include "sft/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "policy/chat_template.h"
#include "policy/policy.h"
#include "policy/tokenizer.h"
#include "sft/checkpoint.h"
#include "sft/data_order.h"
#include "sft/stage.h"

namespace r1kit::sft {
namespace {

namespace fs = std::filesystem;

const char* kd_loss_name(KdLoss l) {
  switch (l) {
    case KdLoss::forward_kl:
      return "forward_kl";
    case KdLoss::reverse_kl:
      return "reverse_kl";
    case KdLoss::jsd:
      return "jsd";
  }
  return "forward_kl";
}

Json kd_to_json(const KdConfig& k) {
  return Json{{"loss", kd_loss_name(k.loss)},
              {"jsd_beta", k.jsd_beta},
              {"weight", k.weight},
              {"topk", k.topk}};
}

const char* enum_name(RowFormat f) {
  switch (f) {
    case RowFormat::auto_detect:
      return "auto";
    case RowFormat::messages:
      return "messages";
    case RowFormat::prompt_completion:
      return "prompt_completion";
    case RowFormat::question_answer:
      return "question_answer";
    case RowFormat::fields:
      return "fields";
    case RowFormat::text:
      return "text";
  }
  return "auto";
}

Json data_to_json(const DataConfig& d) {
  return Json{{"format", enum_name(d.format)},
              {"messages_field", d.messages_field},
              {"prompt_field", d.prompt_field},
              {"completion_field", d.completion_field},
              {"text_field", d.text_field},
              {"system_prompt", d.system_prompt},
              {"loss_on", d.loss_on == LossOn::assistant   ? "assistant"
                          : d.loss_on == LossOn::last_turn ? "last_turn"
                                                           : "all"},
              {"max_tokens", d.max_tokens},
              {"over_long", d.over_long == OverLong::drop       ? "drop"
                            : d.over_long == OverLong::truncate ? "truncate"
                                                                : "error"},
              {"strict", d.strict}};
}

// The fields a resumed run must share with the run that wrote the checkpoint.
Json trajectory(const SftConfig& c, int64_t train_examples) {
  Json j{{"train", c.train},
         {"eval", c.eval},
         {"eval_fraction", c.eval_fraction},
         {"data", data_to_json(c.data)},
         {"optim", optim_to_json(c.optim)},
         {"epochs", c.epochs},
         {"max_steps", c.max_steps},
         {"micro_batch_tokens", c.micro_batch_tokens},
         {"grad_accum", c.grad_accum},
         {"shuffle", c.shuffle},
         {"seed", c.seed},
         {"mtp_loss_weight", c.mtp_loss_weight},
         {"train_examples", train_examples}};
  if (c.kind == StageKind::distill) {
    j["teacher"] = c.teacher;
    j["kd"] = kd_to_json(c.kd);
  }
  return j;
}

// The number of steps the run takes (for the schedule): the batcher run over the lengths.
int64_t count_steps(const std::vector<int64_t>& lengths, const SftConfig& c) {
  TokenBudgetBatcher b(lengths, c.micro_batch_tokens,
                       DataOrder(static_cast<int64_t>(lengths.size()), c.seed, c.shuffle));
  int64_t steps = 0;
  while (b.state().epoch < c.epochs && (c.max_steps == 0 || steps < c.max_steps)) {
    for (int64_t m = 0; m < c.grad_accum && b.state().epoch < c.epochs; ++m) b.next();
    ++steps;
  }
  return steps;
}

struct EvalResult {
  double loss = std::numeric_limits<double>::quiet_NaN();
  double accuracy = std::numeric_limits<double>::quiet_NaN();
  int64_t targets = 0;
};

EvalResult evaluate(policy::Policy& p, const std::vector<Example>& ex, const SftConfig& c,
                    Context& ctx) {
  EvalResult r;
  if (ex.empty()) return r;
  double loss = 0;
  int64_t correct = 0;
  LossOptions lo;
  lo.accuracy = true;
  for (size_t b = 0; b < ex.size();) {
    std::vector<const Example*> mb;
    int64_t tokens = 0;
    while (b < ex.size() && (mb.empty() || tokens + static_cast<int64_t>(ex[b].tokens.size()) <=
                                               c.micro_batch_tokens)) {
      tokens += static_cast<int64_t>(ex[b].tokens.size());
      mb.push_back(&ex[b++]);
    }
    StepNorms n;
    n.targets = 1;
    const MicroResult m = micro_step(p, mb, n, lo, false, ctx);
    loss += m.loss_sum;
    correct += m.correct;
    r.targets += m.targets;
  }
  if (r.targets > 0) {
    r.loss = loss / static_cast<double>(r.targets);
    r.accuracy = static_cast<double>(correct) / static_cast<double>(r.targets);
  }
  return r;
}

// A checkpoint's trainer state.
Json trainer_state(const SftConfig& c, int64_t examples, const DataOrderState& order,
                   int64_t step) {
  return Json{{"kind", c.kind == StageKind::sft ? "sft" : "distill"},
              {"step", step},
              {"data_order", to_json(order)},
              {"trajectory", trajectory(c, examples)}};
}

// The eval split when it comes from the training rows: a seeded choice of round(f·N) examples
// (at least one, leaving at least one for training).
void split_eval(SftDataset& train, std::vector<Example>& eval, double fraction, uint64_t seed) {
  const int64_t n = static_cast<int64_t>(train.examples.size());
  int64_t k = static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
  k = std::clamp<int64_t>(k, 1, n - 1);
  R1_CHECK(n >= 2, "eval_fraction needs at least 2 training examples, got {}", n);
  const std::vector<int64_t> perm =
      data_order_permutation(n, seed ^ 0x5eedeba1f00dULL, /*epoch=*/0, true);
  std::vector<uint8_t> is_eval(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < k; ++i) is_eval[static_cast<size_t>(perm[static_cast<size_t>(i)])] = 1;
  std::vector<Example> rest;
  for (int64_t i = 0; i < n; ++i)
    (is_eval[static_cast<size_t>(i)] ? eval : rest)
        .push_back(std::move(train.examples[static_cast<size_t>(i)]));
  train.examples = std::move(rest);
}

bool first_row_has(const std::string& path, const char* field) {
  JsonlReader r(path);
  Json j;
  try {
    if (r.next(&j)) return j.is_object() && j.contains(field);
  } catch (const Error&) {
    return false;  // the loader reports the bad line
  }
  return false;
}

}  // namespace

SftConfig SftConfig::from_json(const Json& j, std::string_view where, StageKind kind) {
  require_object(j, where);
  std::vector<std::string> keys = {"model",
                                   "tokenizer",
                                   "chat_template",
                                   "train",
                                   "eval",
                                   "eval_fraction",
                                   "data",
                                   "optim",
                                   "epochs",
                                   "max_steps",
                                   "micro_batch_tokens",
                                   "grad_accum",
                                   "shuffle",
                                   "seed",
                                   "mtp_loss_weight",
                                   "output",
                                   "save_every",
                                   "keep_checkpoints",
                                   "eval_every",
                                   "log_every",
                                   "device",
                                   "dtype",
                                   "threads",
                                   "recompute"};
  if (kind == StageKind::distill) {
    keys.push_back("teacher");
    keys.push_back("kd");
  }
  reject_unknown_keys(j, keys, where);
  SftConfig c;
  c.kind = kind;
  c.model = get_required<std::string>(j, "model", where);
  c.tokenizer = get_optional<std::string>(j, "tokenizer", where, "");
  c.chat_template = get_optional<std::string>(j, "chat_template", where, "");
  c.train = get_required<std::string>(j, "train", where);
  c.eval = get_optional<std::string>(j, "eval", where, "");
  c.eval_fraction = get_optional<double>(j, "eval_fraction", where, c.eval_fraction);
  R1_CHECK(c.eval_fraction >= 0 && c.eval_fraction < 1,
           "{}: 'eval_fraction' must be in [0, 1), got {}", where, c.eval_fraction);
  R1_CHECK(c.eval.empty() || c.eval_fraction == 0,
           "{}: give 'eval' (a file) or 'eval_fraction' (held out from 'train'), not both", where);
  if (j.contains("data")) c.data = DataConfig::from_json(j.at("data"), json_where(where, "data"));
  if (j.contains("optim")) c.optim = optim_from_json(j.at("optim"), json_where(where, "optim"));
  c.epochs = get_optional<int64_t>(j, "epochs", where, c.epochs);
  R1_CHECK(c.epochs >= 1, "{}: 'epochs' must be >= 1, got {}", where, c.epochs);
  c.max_steps = get_optional<int64_t>(j, "max_steps", where, c.max_steps);
  R1_CHECK(c.max_steps >= 0, "{}: 'max_steps' must be >= 0 (0 = epochs decide), got {}", where,
           c.max_steps);
  c.micro_batch_tokens =
      get_optional<int64_t>(j, "micro_batch_tokens", where, c.micro_batch_tokens);
  R1_CHECK(c.micro_batch_tokens >= 2, "{}: 'micro_batch_tokens' must be >= 2, got {}", where,
           c.micro_batch_tokens);
  c.grad_accum = get_optional<int64_t>(j, "grad_accum", where, c.grad_accum);
  R1_CHECK(c.grad_accum >= 1, "{}: 'grad_accum' must be >= 1, got {}", where, c.grad_accum);
  c.shuffle = get_optional<bool>(j, "shuffle", where, c.shuffle);
  c.seed = get_optional<uint64_t>(j, "seed", where, c.seed);
  c.mtp_loss_weight = get_optional<double>(j, "mtp_loss_weight", where, c.mtp_loss_weight);
  R1_CHECK(c.mtp_loss_weight >= 0, "{}: 'mtp_loss_weight' must be >= 0, got {}", where,
           c.mtp_loss_weight);
  c.output = get_required<std::string>(j, "output", where);
  R1_CHECK(!c.output.empty(), "{}: 'output' must name a directory", where);
  c.save_every = get_optional<int64_t>(j, "save_every", where, c.save_every);
  c.keep_checkpoints = get_optional<int64_t>(j, "keep_checkpoints", where, c.keep_checkpoints);
  c.eval_every = get_optional<int64_t>(j, "eval_every", where, c.eval_every);
  c.log_every = get_optional<int64_t>(j, "log_every", where, c.log_every);
  R1_CHECK(c.save_every >= 0 && c.eval_every >= 0,
           "{}: 'save_every' and 'eval_every' must be >= 0 (0 = at the end only)", where);
  R1_CHECK(c.keep_checkpoints >= 1, "{}: 'keep_checkpoints' must be >= 1, got {}", where,
           c.keep_checkpoints);
  R1_CHECK(c.log_every >= 1, "{}: 'log_every' must be >= 1, got {}", where, c.log_every);
  c.device = get_optional<std::string>(j, "device", where, c.device);
  c.dtype = get_optional<std::string>(j, "dtype", where, c.dtype);
  check_device_and_dtype(c.device, c.dtype, where);
  c.threads = get_optional<int32_t>(j, "threads", where, c.threads);
  c.recompute = get_optional<bool>(j, "recompute", where, c.recompute);
  if (kind == StageKind::distill) {
    c.teacher = get_optional<std::string>(j, "teacher", where, "");
    if (j.contains("kd")) c.kd = KdConfig::from_json(j.at("kd"), json_where(where, "kd"));
  }
  return c;
}

Json SftConfig::to_json() const {
  Json j{{"model", model},
         {"tokenizer", tokenizer},
         {"chat_template", chat_template},
         {"train", train},
         {"eval", eval},
         {"eval_fraction", eval_fraction},
         {"data", data_to_json(data)},
         {"optim", optim_to_json(optim)},
         {"epochs", epochs},
         {"max_steps", max_steps},
         {"micro_batch_tokens", micro_batch_tokens},
         {"grad_accum", grad_accum},
         {"shuffle", shuffle},
         {"seed", seed},
         {"mtp_loss_weight", mtp_loss_weight},
         {"output", output},
         {"save_every", save_every},
         {"keep_checkpoints", keep_checkpoints},
         {"eval_every", eval_every},
         {"log_every", log_every},
         {"device", device},
         {"dtype", dtype},
         {"threads", threads},
         {"recompute", recompute}};
  if (kind == StageKind::distill) {
    j["teacher"] = teacher;
    j["kd"] = kd_to_json(kd);
  }
  return j;
}

SftDataset load_topk_dataset(const std::string& path, const DataConfig& cfg, int64_t vocab) {
  SftDataset ds;
  std::error_code ec;
  R1_CHECK(fs::exists(path, ec), "{}: no such file", path);
  JsonlReader reader(path);
  Json j;
  auto ids_of = [&](const Json& row, const char* field, const std::string& where) {
    std::vector<int32_t> out;
    for (const int64_t v : get_required<std::vector<int64_t>>(row, field, where)) {
      R1_CHECK(v >= 0 && v < vocab, "{}: {} holds token {}, outside the vocabulary [0, {})", where,
               field, v, vocab);
      out.push_back(static_cast<int32_t>(v));
    }
    return out;
  };
  while (true) {
    bool more = false;
    try {
      more = reader.next(&j);
    } catch (const Error& e) {
      if (cfg.strict) throw;
      ++ds.stats.rows;
      auto& s = ds.stats.skipped["malformed JSON"];
      ++s.count;
      if (s.lines.size() < 5) s.lines.push_back(static_cast<int64_t>(reader.lines_read()));
      continue;
    }
    if (!more) break;
    ++ds.stats.rows;
    const std::string where = fmt::format("{}:{}", path, reader.line_number());
    try {
      require_object(j, where);
      const std::vector<int32_t> prompt = ids_of(j, "prompt_ids", where);
      const std::vector<int32_t> completion = ids_of(j, "completion_ids", where);
      R1_CHECK(!prompt.empty() && !completion.empty(),
               "{}: prompt_ids and completion_ids must both be non-empty", where);
      const Json& ti = j.contains("topk_ids") ? j.at("topk_ids") : Json();
      const Json& tl = j.contains("topk_logprobs") ? j.at("topk_logprobs") : Json();
      R1_CHECK(ti.is_array() && tl.is_array() && ti.size() == completion.size() &&
                   tl.size() == completion.size(),
               "{}: 'topk_ids' and 'topk_logprobs' must be arrays with one entry per completion "
               "token ({})",
               where, completion.size());
      Example e;
      e.line = static_cast<int64_t>(reader.line_number());
      e.tokens = prompt;
      e.tokens.insert(e.tokens.end(), completion.begin(), completion.end());
      e.loss_mask.assign(prompt.size(), 0);
      e.loss_mask.insert(e.loss_mask.end(), completion.size(), 1);
      for (size_t i = 0; i < completion.size(); ++i) {
        const std::string at = fmt::format("{}: topk_ids[{}]", where, i);
        const auto ids = json_value_as<std::vector<int64_t>>(ti[i], "topk_ids", at);
        const auto lps = json_value_as<std::vector<double>>(tl[i], "topk_logprobs", at);
        if (i == 0) e.teacher_k = static_cast<int64_t>(ids.size());
        R1_CHECK(e.teacher_k >= 1 && static_cast<int64_t>(ids.size()) == e.teacher_k &&
                     lps.size() == ids.size(),
                 "{}: every completion token needs the same number (>= 1) of top-k ids and "
                 "log-probs; got {} ids and {} log-probs (the first token had {})",
                 at, ids.size(), lps.size(), e.teacher_k);
        for (size_t k = 0; k < ids.size(); ++k) {
          R1_CHECK(ids[k] >= 0 && ids[k] < vocab, "{}: token {} is outside the vocabulary [0, {})",
                   at, ids[k], vocab);
          R1_CHECK(lps[k] <= 1e-6 && !std::isnan(lps[k]),
                   "{}: log-prob {} must be <= 0 (a log-probability)", at, lps[k]);
          e.teacher_ids.push_back(static_cast<int32_t>(ids[k]));
          e.teacher_logprobs.push_back(static_cast<float>(std::min(lps[k], 0.0)));
        }
      }
      if (static_cast<int64_t>(e.tokens.size()) > cfg.max_tokens) {
        if (cfg.over_long == OverLong::error || cfg.strict)
          R1_THROW("{}: {} tokens, more than max_tokens {}", where, e.tokens.size(),
                   cfg.max_tokens);
        auto& s = ds.stats.skipped["over-long"];  // stored top-k rows are dropped, never cut
        ++s.count;
        if (s.lines.size() < 5) s.lines.push_back(e.line);
        continue;
      }
      ds.stats.tokens += static_cast<int64_t>(e.tokens.size());
      ds.stats.targets += static_cast<int64_t>(completion.size());
      ++ds.stats.examples;
      ds.examples.push_back(std::move(e));
    } catch (const Error&) {
      if (cfg.strict) throw;
      auto& s = ds.stats.skipped["bad row"];
      ++s.count;
      if (s.lines.size() < 5) s.lines.push_back(static_cast<int64_t>(reader.line_number()));
    }
  }
  R1_CHECK(!ds.examples.empty(), "{}: no usable rows ({})", path, ds.stats.summary());
  return ds;
}

SftResult run_sft(const SftConfig& cfg_in, const StepCallback& on_step) {
  SftConfig cfg = cfg_in;
  const bool distill = cfg.kind == StageKind::distill;
  auto ctxp = make_context(cfg.device, cfg.threads, cfg.seed);
  Context& ctx = *ctxp;
  const std::string tok_dir = cfg.tokenizer.empty() ? cfg.model : cfg.tokenizer;

  policy::PolicyOptions po;
  po.dtype = working_dtype(cfg.dtype, ctx);
  po.recompute = cfg.recompute;
  po.mtp_loss_weight = cfg.mtp_loss_weight;
  const fs::path out(cfg.output);
  const std::string ck_root = (out / "checkpoints").string();
  const std::string metrics_path = (out / "metrics.jsonl").string();
  // A run with checkpoints resumes from the newest (the model comes from it).
  const auto existing = list_checkpoints(ck_root);
  const std::string resume_dir = existing.empty() ? std::string() : existing.back().second;
  policy::Policy student =
      policy::Policy::load(resume_dir.empty() ? cfg.model : resume_dir, ctx, po);
  const int64_t vocab = student.config().vocab_size;

  // Datasets.
  const bool stored_topk = distill && cfg.teacher.empty() && first_row_has(cfg.train, "topk_ids");
  std::unique_ptr<policy::Tokenizer> tok;
  std::optional<policy::ChatTemplate> chat;
  auto load = [&](const std::string& path) {
    if (stored_topk) return load_topk_dataset(path, cfg.data, vocab);
    if (!tok) {
      tok = policy::Tokenizer::load(tok_dir);
      // Plain documents need no chat template (the model may have none before its chat SFT).
      if (cfg.data.format != RowFormat::text || !cfg.chat_template.empty())
        chat = policy::ChatTemplate::for_model(tok_dir, cfg.chat_template);
    }
    SftDataset d = load_sft_dataset(path, cfg.data, chat ? &*chat : nullptr, *tok);
    for (const Example& e : d.examples)
      for (const int32_t t : e.tokens)
        R1_CHECK(t < vocab,
                 "{}:{}: token {} is outside the model's vocabulary [0, {}): is the tokenizer "
                 "({}) the model's?",
                 path, e.line, t, vocab, tok_dir);
    return d;
  };
  SftDataset train = load(cfg.train);
  logger()->info("[sft] {}: {}", cfg.train, train.stats.summary());
  std::vector<Example> eval;
  SftResult result;
  result.train_stats = train.stats;
  if (!cfg.eval.empty()) {
    SftDataset e = load(cfg.eval);
    logger()->info("[sft] {}: {}", cfg.eval, e.stats.summary());
    result.eval_stats = e.stats;
    eval = std::move(e.examples);
  } else if (cfg.eval_fraction > 0) {
    split_eval(train, eval, cfg.eval_fraction, cfg.seed);
  }
  const int64_t N = static_cast<int64_t>(train.examples.size());
  std::vector<int64_t> lengths;
  for (const Example& e : train.examples) {
    R1_CHECK(static_cast<int64_t>(e.tokens.size()) <= cfg.micro_batch_tokens,
             "{}:{}: the example has {} tokens, more than micro_batch_tokens {} (raise "
             "micro_batch_tokens or lower data.max_tokens)",
             cfg.train, e.line, e.tokens.size(), cfg.micro_batch_tokens);
    lengths.push_back(static_cast<int64_t>(e.tokens.size()));
  }

  // Teacher (logit distillation on the fly).
  std::optional<policy::Policy> teacher;
  LossOptions lo;
  if (distill && (stored_topk || !cfg.teacher.empty())) lo.kd = &cfg.kd;
  if (distill && !cfg.teacher.empty()) {
    policy::PolicyOptions to;
    to.dtype = po.dtype;
    teacher.emplace(policy::Policy::load(cfg.teacher, ctx, to));
    R1_CHECK(teacher->config().vocab_size == vocab,
             "logit distillation needs the teacher ({}, vocabulary {}) and the student ({}, "
             "vocabulary {}) to share a tokenizer",
             cfg.teacher, teacher->config().vocab_size, cfg.model, vocab);
    if (!tok) tok = policy::Tokenizer::load(tok_dir);
    check_same_tokenizer(*tok, *policy::Tokenizer::load(cfg.teacher), tok_dir, cfg.teacher);
    lo.teacher = &*teacher;
  }
  if (distill && !lo.kd)
    logger()->info("[sft] distillation at the sequence level: SFT on {}", cfg.train);
  lo.mtp_depths = cfg.mtp_loss_weight > 0 ? student.config().num_mtp_modules() : 0;

  cfg.optim.total_steps = std::max<int64_t>(1, count_steps(lengths, cfg));
  fs::create_directories(out);
  write_json_file_atomic((out / "config.json").string(), cfg.to_json());

  DataOrderState start;
  int64_t step = 0;
  if (!resume_dir.empty()) {
    const Json t = load_training_checkpoint(resume_dir, student, ctx);
    check_same_trajectory(t.at("trajectory"), trajectory(cfg, N), resume_dir);
    start = data_order_state_from_json(t.at("data_order"), resume_dir + ": data_order");
    step = t.at("step").get<int64_t>();
    result.resumed_from = step;
    cut_metrics(metrics_path, step);
    logger()->info("[sft] resuming from {} (step {})", resume_dir, step);
  } else {
    cut_metrics(metrics_path, 0);
  }
  TokenBudgetBatcher batcher(lengths, cfg.micro_batch_tokens,
                             DataOrder(N, cfg.seed, cfg.shuffle, start));
  JsonlWriter metrics(metrics_path);

  auto save = [&](int64_t s) {
    save_checkpoint_keeping(ck_root, s, cfg.keep_checkpoints, student,
                            trainer_state(cfg, N, batcher.state(), s), ctx, tok_dir);
  };
  auto run_eval = [&](int64_t s) {
    if (eval.empty()) return;
    const EvalResult e = evaluate(student, eval, cfg, ctx);
    result.eval_loss = e.loss;
    result.eval_token_accuracy = e.accuracy;
    const Json line{{"type", "eval"},
                    {"step", s},
                    {"eval_loss", e.loss},
                    {"eval_token_accuracy", e.accuracy},
                    {"eval_targets", e.targets}};
    metrics.write(line);
    if (on_step) on_step(line);
  };

  const int64_t total = cfg.optim.total_steps;
  const auto t0 = std::chrono::steady_clock::now();
  auto done = [&] {
    return batcher.state().epoch >= cfg.epochs || (cfg.max_steps > 0 && step >= cfg.max_steps);
  };
  result.eval_loss = std::numeric_limits<double>::quiet_NaN();
  result.eval_token_accuracy = std::numeric_limits<double>::quiet_NaN();
  while (!done()) {
    const auto ts = std::chrono::steady_clock::now();
    std::vector<std::vector<const Example*>> mbs;
    for (int64_t m = 0; m < cfg.grad_accum && batcher.state().epoch < cfg.epochs; ++m) {
      std::vector<const Example*> mb;
      for (const int64_t i : batcher.next().examples)
        mb.push_back(&train.examples[static_cast<size_t>(i)]);
      mbs.push_back(std::move(mb));
    }
    const StepResult r = optimizer_step(student, mbs, cfg.optim, ctx, lo);
    ++step;
    result.final_loss = r.loss;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    if (step % cfg.log_every == 0 || done()) {
      const DataOrderState st = batcher.state();
      Json line{{"type", "train"},
                {"step", step},
                {"total_steps", total},
                {"epoch", static_cast<double>(st.epoch) +
                              static_cast<double>(st.position) / static_cast<double>(N)},
                {"loss", r.loss},
                {"nll", r.nll},
                {"grad_norm", r.grad_norm},
                {"lr", r.lr},
                {"targets", r.targets},
                {"tokens", r.tokens},
                {"skipped", r.skipped},
                {"tokens_per_s", secs > 0 ? static_cast<double>(r.tokens) / secs : 0.0},
                {"elapsed_s",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
      if (lo.kd) line["kd"] = r.kd;
      if (!r.mtp_loss.empty()) line["mtp_loss"] = r.mtp_loss;
      metrics.write(line);
      if (on_step) on_step(line);
    }
    if (r.skipped) logger()->warn("[sft] step {}: non-finite gradient norm, update skipped", step);
    if (cfg.eval_every > 0 && step % cfg.eval_every == 0 && !done()) run_eval(step);
    if (cfg.save_every > 0 && step % cfg.save_every == 0 && !done()) save(step);
    if (interrupt_requested() && !done()) {
      metrics.close();
      if (cfg.save_every == 0 || step % cfg.save_every != 0) save(step);
      throw Interrupted(fmt::format(
          "[sft] interrupted after step {}: checkpoint written, running again resumes there",
          step));
    }
  }
  // A resumed run that had already finished takes no step: its eval line and checkpoint exist.
  const bool new_steps = step > result.resumed_from || result.resumed_from == 0;
  if (new_steps) run_eval(step);
  metrics.close();
  if (new_steps) save(step);
  // final/: the model alone, for `--model` in the next stage.
  result.final_dir = save_final_model(out.string(), student, po.dtype, tok_dir, ctx);
  result.steps = step;
  return result;
}

}  // namespace r1kit::sft

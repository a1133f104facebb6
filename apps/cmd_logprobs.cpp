// `r1kit logprobs --model DIR --input FILE.jsonl --out FILE.jsonl`: teacher-forced log-probs of
// completions. Each input row {"prompt_ids": [...], "completion_ids": [...], ...} gives one output
// row, in order, with the input's fields plus "logprobs": the log-prob of each completion token
// given the prompt and the completion tokens before it (fp32 on the CPU, bf16 on a GPU). Rows are
// packed into batches of about --batch-tokens tokens; the output is written atomically.
#include <algorithm>
#include <iostream>

#include "apps/commands.h"
#include "core/json.h"
#include "policy/policy.h"

namespace r1kit::apps {
namespace {

struct LogprobsArgs {
  std::string model, input, out, device = "auto";
  int64_t batch_tokens = 4096;
  double temperature = 1.0;
  int threads = 0;
};

struct Row {
  Json record;
  std::vector<int32_t> prompt, completion;
};

std::vector<int32_t> token_ids(const Json& row, const char* field, const std::string& where,
                               int64_t vocab) {
  const auto ids = get_required<std::vector<int64_t>>(row, field, where);
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab)
      R1_THROW("{}: {}[{}] = {} is outside the model's vocabulary [0, {})", where, field, i, ids[i],
               vocab);
    out.push_back(static_cast<int32_t>(ids[i]));
  }
  return out;
}

std::vector<Row> read_rows(const std::string& path, int64_t vocab) {
  std::vector<Row> rows;
  JsonlReader reader(path);
  Json j;
  while (reader.next(&j)) {
    const std::string where = fmt::format("{}:{}", path, reader.line_number());
    require_object(j, where);
    if (!j.contains("prompt_ids") && (j.contains("prompt") || j.contains("completion")))
      R1_THROW("{}: text fields need a tokenizer; give prompt_ids and completion_ids", where);
    Row r;
    r.prompt = token_ids(j, "prompt_ids", where, vocab);
    r.completion = token_ids(j, "completion_ids", where, vocab);
    if (r.prompt.empty())
      R1_THROW(
          "{}: prompt_ids is empty: the first completion token needs at least one token "
          "before it (a BOS token, for instance)",
          where);
    if (j.contains("logprobs"))
      R1_THROW("{}: the row already has a 'logprobs' field, which the output would replace", where);
    r.record = std::move(j);
    rows.push_back(std::move(r));
  }
  return rows;
}

std::unique_ptr<Context> make_context(const LogprobsArgs& a) {
  ContextOptions co;
  co.threads = a.threads;
  if (a.device == "cpu") return Context::cpu(co);
  if (a.device == "cuda") return Context::cuda(co);
  if (a.device == "auto") return Context::best_available(co);
  R1_THROW("--device {}: expected auto, cpu or cuda", a.device);
}

// Log-probs of rows [begin, end) in one packed batch.
void score_batch(policy::Policy& p, std::vector<Row>& rows, size_t begin, size_t end,
                 double temperature, Context& ctx) {
  std::vector<std::vector<int32_t>> seqs;
  for (size_t i = begin; i < end; ++i) {
    std::vector<int32_t> s = rows[i].prompt;
    s.insert(s.end(), rows[i].completion.begin(), rows[i].completion.end());
    seqs.push_back(std::move(s));
  }
  const policy::TokenBatch batch = policy::TokenBatch::from_sequences(seqs, ctx);
  const Tensor targets = policy::shifted_targets(seqs, 1, ctx.host_allocator());
  policy::ForwardOptions fo;
  fo.targets = targets;
  fo.temperature = temperature;
  fo.for_backward = false;
  const policy::ForwardContext f = p.forward(batch, fo, ctx);
  Tensor lp({batch.num_tokens()}, f.logprob.dtype(), ctx.host_allocator(), "logprob");
  ctx.copy(lp, f.logprob);
  int64_t offset = 0;
  for (size_t i = begin; i < end; ++i) {
    Json out = Json::array();
    // Completion token j sits at position |prompt| + j; its log-prob is the target of the
    // position before it.
    const int64_t first = offset + static_cast<int64_t>(rows[i].prompt.size()) - 1;
    for (size_t k = 0; k < rows[i].completion.size(); ++k) {
      const int64_t t = first + static_cast<int64_t>(k);
      out.push_back(lp.dtype() == DType::f64 ? lp.ptr<double>()[t]
                                             : static_cast<double>(lp.ptr<float>()[t]));
    }
    rows[i].record["logprobs"] = std::move(out);
    offset += static_cast<int64_t>(seqs[i - begin].size());
  }
}

void run_logprobs(const LogprobsArgs& a) {
  if (a.batch_tokens < 1) R1_THROW("--batch-tokens {} must be >= 1", a.batch_tokens);
  auto ctx = make_context(a);
  policy::PolicyOptions po;
  po.dtype = ctx->is_cuda() ? DType::bf16 : DType::f32;
  policy::Policy p = policy::Policy::load(a.model, *ctx, po);
  std::vector<Row> rows = read_rows(a.input, p.config().vocab_size);
  int64_t tokens = 0;
  for (size_t begin = 0; begin < rows.size();) {
    size_t end = begin;
    int64_t n = 0;
    while (end < rows.size()) {
      const int64_t len =
          static_cast<int64_t>(rows[end].prompt.size() + rows[end].completion.size());
      if (end > begin && n + len > a.batch_tokens) break;
      n += len;
      ++end;
    }
    score_batch(p, rows, begin, end, a.temperature, *ctx);
    tokens += n;
    begin = end;
  }
  std::vector<Json> records;
  records.reserve(rows.size());
  for (Row& r : rows) records.push_back(std::move(r.record));
  write_jsonl_file_atomic(a.out, records);
  std::cout << Json{{"rows", rows.size()},
                    {"tokens", tokens},
                    {"out", a.out},
                    {"device", ctx->is_cuda() ? "cuda" : "cpu"},
                    {"dtype", dtype_name(po.dtype)}}
                   .dump()
            << "\n";
}

}  // namespace

void register_logprobs(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "logprobs", "Teacher-forced log-probs of completion tokens for JSONL rows of token ids");
  auto a = std::make_shared<LogprobsArgs>();
  cmd->add_option("--model", a->model, "model directory (config.json + safetensors)")->required();
  cmd->add_option("--input", a->input,
                  "JSONL rows {\"prompt_ids\": [...], \"completion_ids\": [...]}")
      ->required();
  cmd->add_option("--out", a->out, "output JSONL: each input row plus \"logprobs\"")->required();
  cmd->add_option("--batch-tokens", a->batch_tokens, "tokens per forward batch")
      ->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "log-probs of softmax(logits / temperature)")
      ->capture_default_str();
  cmd->add_option("--device", a->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: all)")->capture_default_str();
  cmd->callback([a] { run_logprobs(*a); });
}

}  // namespace r1kit::apps

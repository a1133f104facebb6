// `r1kit logprobs --model DIR --input FILE.jsonl --out FILE.jsonl`: teacher-forced log-probs of
// completions. Each input row gives one output row, in order, with the input's fields plus
// "logprobs": the log-prob of each completion token given the prompt and the completion tokens
// before it (fp32 on the CPU, bf16 on a GPU). Rows are packed into batches of about --batch-tokens
// tokens; the output is written atomically.
//
// A row gives its prompt as exactly one of
//   "prompt_ids": [...]   token ids, used as they are;
//   "prompt": "text"      encoded with the model directory's tokenizer (Tokenizer::load), special-
//                         token text recognised and BOS added as the tokenizer config says;
//   "messages": [...]     a conversation ({role, content[, reasoning]}) rendered with the model's
//                         chat template (or --template NAME / --pattern P) with the generation
//                         prompt, and encoded as apply_chat_template does (encode_chat_prompt: no
//                         double BOS, no EOS added);
// and its completion as exactly one of "completion_ids": [...] or "completion": "text". Completion
// text is encoded on its own, special-token text recognised but no BOS/EOS added (SentencePiece-
// style tokenizers add their dummy-prefix space, as for any text), and the output row then also
// gets "completion_ids": the tokens the log-probs are for. The tokenizer and the chat template are
// loaded only when a row needs them; errors name the input file and line.
#include <algorithm>
#include <iostream>

#include "apps/commands.h"
#include "core/json.h"
#include "policy/chat_template.h"
#include "policy/policy.h"
#include "policy/tokenizer.h"

namespace r1kit::apps {
namespace {

struct LogprobsArgs {
  std::string model, input, out, device = "auto", template_name, pattern;
  int64_t batch_tokens = 4096;
  int64_t topk = 0;
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

// The model directory's tokenizer and chat template, loaded on first use.
class TextEncoder {
 public:
  explicit TextEncoder(const LogprobsArgs& a) : args_(a) {}

  const policy::Tokenizer& tokenizer(const std::string& where) {
    if (!tok_) {
      try {
        tok_ = policy::Tokenizer::load(args_.model);
      } catch (Error& e) {
        e.add_context(fmt::format(
            "loading the tokenizer of --model {} for the text fields of {} (rows of token ids "
            "need none: give prompt_ids and completion_ids)",
            args_.model, where));
        throw;
      }
    }
    return *tok_;
  }

  const policy::ChatTemplate& chat_template(const std::string& where) {
    if (!template_) {
      try {
        if (!args_.pattern.empty()) {
          template_ = policy::ChatTemplate::from_pattern(
              args_.pattern, policy::read_chat_special_tokens(args_.model));
        } else {
          template_ = policy::ChatTemplate::for_model(args_.model, args_.template_name);
        }
      } catch (Error& e) {
        e.add_context(fmt::format("loading the chat template for the messages of {}", where));
        throw;
      }
    }
    return *template_;
  }

 private:
  const LogprobsArgs& args_;
  std::unique_ptr<policy::Tokenizer> tok_;
  std::optional<policy::ChatTemplate> template_;
};

// Ids from the tokenizer, checked against the model's vocabulary (a tokenizer of another model
// gives ids the embedding does not have).
std::vector<int32_t> checked_ids(std::vector<int32_t> ids, const char* field,
                                 const std::string& where, int64_t vocab) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      R1_THROW(
          "{}: {} encodes to token {} (position {}), outside the model's vocabulary [0, {}): is "
          "the tokenizer the model's?",
          where, field, ids[i], i, vocab);
  return ids;
}

std::string text_field(const Json& row, const char* field, const std::string& where) {
  return get_required<std::string>(row, field, where);
}

// The one field of `fields` the row has; an error when it has none or several.
const char* pick_field(const Json& row, std::initializer_list<const char*> fields, const char* what,
                       const std::string& where) {
  const char* found = nullptr;
  std::string names;
  for (const char* f : fields) {
    names += names.empty() ? fmt::format("'{}'", f) : fmt::format(", '{}'", f);
    if (!row.contains(f)) continue;
    if (found)
      R1_THROW("{}: the row gives its {} twice, as '{}' and as '{}'", where, what, found, f);
    found = f;
  }
  if (!found) R1_THROW("{}: the row has no {} (give one of {})", where, what, names);
  return found;
}

std::vector<Row> read_rows(const std::string& path, int64_t vocab, TextEncoder& text) {
  std::vector<Row> rows;
  JsonlReader reader(path);
  Json j;
  while (reader.next(&j)) {
    const std::string where = fmt::format("{}:{}", path, reader.line_number());
    require_object(j, where);
    if (j.contains("logprobs"))
      R1_THROW("{}: the row already has a 'logprobs' field, which the output would replace", where);
    Row r;
    const std::string prompt_field =
        pick_field(j, {"prompt_ids", "prompt", "messages"}, "prompt", where);
    const std::string completion_field =
        pick_field(j, {"completion_ids", "completion"}, "completion", where);
    try {
      if (prompt_field == "prompt_ids") {
        r.prompt = token_ids(j, "prompt_ids", where, vocab);
      } else if (prompt_field == "prompt") {
        const std::string s = text_field(j, "prompt", where);
        r.prompt = checked_ids(text.tokenizer(where).encode(s), "prompt", where, vocab);
      } else {
        const auto messages = policy::parse_chat_messages(j.at("messages"), where + ": messages");
        policy::ChatRenderOptions ro;
        ro.add_generation_prompt = true;
        const std::string rendered = text.chat_template(where).render(messages, ro);
        r.prompt = checked_ids(policy::encode_chat_prompt(text.tokenizer(where), rendered),
                               "messages", where, vocab);
      }
      if (completion_field == "completion_ids") {
        r.completion = token_ids(j, "completion_ids", where, vocab);
      } else {
        const std::string s = text_field(j, "completion", where);
        policy::EncodeOptions eo;
        eo.add_special_tokens = true;  // "<｜end▁of▁sentence｜>" in the text is the EOS token
        eo.add_bos_eos = false;
        r.completion = checked_ids(text.tokenizer(where).encode(s, eo), "completion", where, vocab);
        j["completion_ids"] = r.completion;
      }
    } catch (Error& e) {
      // Tokenizer and template messages (invalid UTF-8 at byte N) do not know the row.
      bool named = e.message().find(where) != std::string::npos;
      for (const auto& c : e.context()) named = named || c.find(where) != std::string::npos;
      if (!named) e.add_context(fmt::format("encoding the row at {}", where));
      throw;
    }
    if (r.prompt.empty())
      R1_THROW(
          "{}: the prompt ({}) is empty: the first completion token needs at least one token "
          "before it (a BOS token, for instance)",
          where, prompt_field);
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
                 double temperature, int64_t topk, Context& ctx) {
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
  fo.topk = topk;
  const policy::ForwardContext f = p.forward(batch, fo, ctx);
  Tensor lp({batch.num_tokens()}, f.logprob.dtype(), ctx.host_allocator(), "logprob");
  ctx.copy(lp, f.logprob);
  Tensor top_ids, top_lp;
  if (topk > 0) {
    top_ids = Tensor(f.topk_idx.view().dims(), DType::i32, ctx.host_allocator(), "topk_idx");
    top_lp = Tensor(f.topk_logprob.view().dims(), f.topk_logprob.dtype(), ctx.host_allocator(),
                    "topk_logprob");
    ctx.copy(top_ids, f.topk_idx);
    ctx.copy(top_lp, f.topk_logprob);
  }
  auto value = [](const Tensor& t, int64_t i) {
    return t.dtype() == DType::f64 ? t.ptr<double>()[i] : static_cast<double>(t.ptr<float>()[i]);
  };
  int64_t offset = 0;
  for (size_t i = begin; i < end; ++i) {
    Json out = Json::array(), ids = Json::array(), lps = Json::array();
    // Completion token j sits at position |prompt| + j; its log-prob is the target of the
    // position before it (and so is its top-k: the distribution it was drawn from).
    const int64_t first = offset + static_cast<int64_t>(rows[i].prompt.size()) - 1;
    for (size_t k = 0; k < rows[i].completion.size(); ++k) {
      const int64_t t = first + static_cast<int64_t>(k);
      out.push_back(value(lp, t));
      if (topk > 0) {
        Json ri = Json::array(), rl = Json::array();
        for (int64_t c = 0; c < topk; ++c) {
          ri.push_back(top_ids.ptr<int32_t>()[t * topk + c]);
          rl.push_back(value(top_lp, t * topk + c));
        }
        ids.push_back(std::move(ri));
        lps.push_back(std::move(rl));
      }
    }
    rows[i].record["logprobs"] = std::move(out);
    if (topk > 0) {
      rows[i].record["prompt_ids"] = rows[i].prompt;
      rows[i].record["completion_ids"] = rows[i].completion;
      rows[i].record["topk_ids"] = std::move(ids);
      rows[i].record["topk_logprobs"] = std::move(lps);
    }
    offset += static_cast<int64_t>(seqs[i - begin].size());
  }
}

void run_logprobs(const LogprobsArgs& a) {
  if (a.batch_tokens < 1) R1_THROW("--batch-tokens {} must be >= 1", a.batch_tokens);
  if (a.topk < 0) R1_THROW("--topk {} must be >= 0", a.topk);
  if (!a.template_name.empty() && !a.pattern.empty())
    R1_THROW("logprobs: give --template or --pattern, not both");
  auto ctx = make_context(a);
  policy::PolicyOptions po;
  po.dtype = ctx->is_cuda() ? DType::bf16 : DType::f32;
  policy::Policy p = policy::Policy::load(a.model, *ctx, po);
  TextEncoder text(a);
  std::vector<Row> rows = read_rows(a.input, p.config().vocab_size, text);
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
    score_batch(p, rows, begin, end, a.temperature, a.topk, *ctx);
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
      "logprobs", "Teacher-forced log-probs of completion tokens for JSONL rows (ids or text)");
  auto a = std::make_shared<LogprobsArgs>();
  cmd->add_option("--model", a->model, "model directory (config.json + safetensors)")->required();
  cmd->add_option("--input", a->input,
                  "JSONL rows: prompt_ids, prompt (text) or messages; completion_ids or "
                  "completion (text)")
      ->required();
  cmd->add_option("--out", a->out, "output JSONL: each input row plus \"logprobs\"")->required();
  cmd->add_option("--batch-tokens", a->batch_tokens, "tokens per forward batch")
      ->capture_default_str();
  cmd->add_option("--topk", a->topk,
                  "also write each completion token's top-k distribution (topk_ids, "
                  "topk_logprobs, plus prompt_ids): a stored-teacher dataset for r1kit distill")
      ->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "log-probs of softmax(logits / temperature)")
      ->capture_default_str();
  cmd->add_option("--template", a->template_name,
                  "for messages rows: a built-in chat template instead of the model's");
  cmd->add_option("--pattern", a->pattern,
                  "for messages rows: a pattern template, e.g. \"User: {prompt}\\nAssistant:\"");
  cmd->add_option("--device", a->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: all)")->capture_default_str();
  cmd->callback([a] { run_logprobs(*a); });
}

}  // namespace r1kit::apps

// `r1kit generate --model DIR --prompts FILE.jsonl --out FILE.jsonl`: completions for JSONL prompt
// rows through the rollout engine (rollout/engine.h). Each input row gives one output row, in
// order: its fields plus "completions" ([{"text", "token_ids", "logprobs", "finish_reason"} and
// "experts" for MoE policies] × n). A row gives its prompt as exactly one of "prompt_ids", "prompt"
// (text, encoded with the tokenizer: BOS added as the tokenizer config says, so "" means BOS only)
// or "messages" (rendered with the model's chat template, or --chat-template NAME, with the
// generation prompt). A row's "sampling" object overrides the command line's sampling flags. Row i
// (0-based) samples with Philox stream i * n + sample, so rows are reproducible alone or together.
// The output is written atomically; errors name the input file and line.
#include <chrono>
#include <iostream>

#include "apps/commands.h"
#include "core/json.h"
#include "core/progress.h"
#include "policy/chat_template.h"
#include "policy/policy.h"
#include "policy/tokenizer.h"
#include "rollout/engine.h"

namespace r1kit::apps {
namespace {

struct GenerateArgs {
  std::string model, prompts, out, device = "auto", chat_template;
  rollout::SamplingParams sampling;
  bool greedy = false;
  int64_t kv_blocks = 4096, block_size = 16, batch_tokens = 512, max_sequences = 256;
  int threads = 0;
};

std::unique_ptr<Context> make_context(const GenerateArgs& a) {
  ContextOptions co;
  co.threads = a.threads;
  if (a.device == "cpu") return Context::cpu(co);
  if (a.device == "cuda") return Context::cuda(co);
  if (a.device == "auto") return Context::best_available(co);
  R1_THROW("--device {}: expected auto, cpu or cuda", a.device);
}

void run_generate(GenerateArgs a) {
  if (a.greedy) a.sampling.temperature = 0;
  a.sampling.validate("generate: the sampling flags");
  auto ctx = make_context(a);
  policy::PolicyOptions po;
  po.dtype = ctx->is_cuda() ? DType::bf16 : DType::f32;
  policy::Policy policy = policy::Policy::load(a.model, *ctx, po);
  std::unique_ptr<policy::Tokenizer> tok;
  try {
    tok = policy::Tokenizer::load(a.model);
  } catch (const Error&) {
    // Token-id rows need no tokenizer; their completions then carry no text.
    std::cerr << "generate: no tokenizer in " << a.model
              << " (completions get no text, text prompts and stop strings are errors)\n";
  }
  std::optional<policy::ChatTemplate> chat;

  std::vector<Json> rows;
  std::vector<rollout::Request> requests;
  std::vector<std::string> wheres;
  {
    JsonlReader reader(a.prompts);
    Json j;
    while (reader.next(&j)) {
      const std::string where = fmt::format("{}:{}", a.prompts, reader.line_number());
      rollout::Request r = rollout::request_from_json(j, a.sampling, where);
      r.index = requests.size();
      if (r.prompt_kind == rollout::PromptKind::text) {
        R1_CHECK(tok, "{}: a text prompt needs the model's tokenizer ({} has none)", where,
                 a.model);
        r.prompt_ids = tok->encode(r.prompt);
        R1_CHECK(!r.prompt_ids.empty(),
                 "{}: the prompt is empty and the tokenizer adds no BOS: give some text or "
                 "prompt_ids",
                 where);
      } else if (r.prompt_kind == rollout::PromptKind::messages) {
        R1_CHECK(tok, "{}: a messages prompt needs the model's tokenizer ({} has none)", where,
                 a.model);
        R1_CHECK(a.chat_template != "none",
                 "{}: the row has messages but --chat-template none renders none: give prompt or "
                 "prompt_ids rows, or a template",
                 where);
        if (!chat) chat = policy::ChatTemplate::for_model(a.model, a.chat_template);
        policy::ChatRenderOptions ro;
        ro.add_generation_prompt = true;
        r.prompt_ids = policy::encode_chat_prompt(*tok, chat->render(r.messages, ro));
      }
      r.prompt_kind = rollout::PromptKind::token_ids;
      rows.push_back(std::move(j));
      requests.push_back(std::move(r));
      wheres.push_back(where);
    }
  }

  rollout::EngineOptions eo;
  eo.num_blocks = a.kv_blocks;
  eo.block_size = a.block_size;
  eo.max_batch_tokens = a.batch_tokens;
  eo.max_sequences = a.max_sequences;
  rollout::Engine engine(policy, tok.get(), eo, *ctx);

  int64_t total = 0;
  for (const auto& r : requests) total += r.sampling.n;
  const auto start = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  ProgressOptions popts;
  popts.unit = "seq";
  Progress progress("generate", total, std::cerr, stderr_is_tty(), popts);
  std::vector<rollout::RequestOutput> outs =
      engine.generate(requests, [&](int64_t finished, int64_t new_tokens) {
        tokens += new_tokens;
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        progress.set_postfix(fmt::format("{:.1f} tok/s", s > 0 ? tokens / s : 0.0));
        progress.tick(finished);
      });
  progress.finish();
  std::vector<Json> records;
  records.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!outs[i].ok()) R1_THROW("{}: {}", wheres[i], outs[i].error);
    records.push_back(
        rollout::generate_output_row(rows[i], outs[i].completions, outs[i].prompt_experts));
  }
  write_jsonl_file_atomic(a.out, records);
  const rollout::EngineStats& st = engine.stats();
  std::cout << Json{{"rows", rows.size()},
                    {"sequences", total},
                    {"tokens", st.generated_tokens},
                    {"steps", st.steps},
                    {"preemptions", st.preemptions},
                    {"out", a.out},
                    {"device", ctx->is_cuda() ? "cuda" : "cpu"}}
                   .dump()
            << "\n";
}

}  // namespace

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Completions for JSONL prompt rows (rollout engine)");
  auto a = std::make_shared<GenerateArgs>();
  rollout::SamplingParams& s = a->sampling;
  cmd->add_option("--model", a->model, "model directory (config.json + safetensors)")->required();
  cmd->add_option("--prompts", a->prompts, "JSONL rows: prompt_ids, prompt (text) or messages")
      ->required();
  cmd->add_option("--out", a->out, "output JSONL: each input row plus \"completions\"")->required();
  cmd->add_option("--n", s.n, "samples per prompt")->capture_default_str();
  cmd->add_option("--temperature", s.temperature, "0: greedy")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "nucleus mass (1: off)")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0: off)")
      ->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "drop tokens below min_p * max prob (0: off)")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", s.max_new_tokens, "tokens per completion at most")
      ->capture_default_str();
  cmd->add_option("--seed", s.seed, "sampling seed")->capture_default_str();
  cmd->add_flag("--greedy", a->greedy, "temperature 0 (argmax)");
  cmd->add_flag("--ignore-eos", s.ignore_eos, "generate past EOS");
  cmd->add_option("--stop", s.stop, "a stop string (repeatable)");
  cmd->add_option("--chat-template", a->chat_template,
                  "for messages rows: a built-in template instead of the model's; none: reject "
                  "messages rows");
  cmd->add_option("--kv-blocks", a->kv_blocks, "KV cache blocks (the memory budget)")
      ->capture_default_str();
  cmd->add_option("--block-size", a->block_size, "token slots per KV block")->capture_default_str();
  cmd->add_option("--batch-tokens", a->batch_tokens, "tokens per engine step")
      ->capture_default_str();
  cmd->add_option("--max-sequences", a->max_sequences, "sequences per engine step")
      ->capture_default_str();
  cmd->add_option("--device", a->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: all)")->capture_default_str();
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace r1kit::apps

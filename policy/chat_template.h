// Chat templates without a Jinja engine: one hand-written renderer per known template, each
// byte-for-byte what transformers' apply_chat_template renders from the Jinja original for
// tool-less conversations (tests/golden/make_chat_template_fixtures.py), plus the R1-Zero prompt
// and a small placeholder language for recipe-defined prompts.
//
// Built-in templates (ChatTemplate::builtin_names()):
//   deepseek-r1          DeepSeek-R1's tokenizer_config.json (February 2025): BOS text, the system
//                        messages joined by "\n\n", "<｜User｜>…",
//                        "<｜Assistant｜>…<｜end▁of▁sentence｜>" with everything up to the last
//                        "</think>" of an assistant message dropped (earlier turns lose their
//                        reasoning), generation prompt
//                        "<｜Assistant｜><think>\n". The BOS text is written once (see
//                        encode_chat_prompt for the "no double BOS" rule when encoding).
//   deepseek-r1-2501     the same as first published (January 2025): generation prompt
//                        "<｜Assistant｜>".
//   deepseek-v3          DeepSeek-V3: as deepseek-r1 but assistant content is kept whole and the
//                        generation prompt is "<｜Assistant｜>".
//   r1-distill-qwen      DeepSeek-R1-Distill-Qwen/-Llama: as deepseek-r1, but only the last
//                        system message is used.
//   r1-distill-qwen-llamacpp
//                        llama.cpp's copy of that template (models/templates/, with an
//                        enable_thinking switch): after "<｜Assistant｜><think>\n" it writes
//                        "</think>" unless enable_thinking is true.
//   qwen2.5              Qwen2.5-Instruct ChatML without tools: "<|im_start|>ROLE\n…<|im_end|>\n"
//                        per message, the default system prompt "You are Qwen, created by Alibaba
//                        Cloud. You are a helpful assistant." when the first message is not a
//                        system message, generation prompt "<|im_start|>assistant\n".
//   qwen3                Qwen3 without tools: reasoning kept only for assistant turns after the
//                        last real user query (<think>\n…\n</think>\n\n), from `reasoning` or from
//                        the content's <think>…</think>; enable_thinking == false adds an empty
//                        think block to the generation prompt.
//   r1-zero              the DeepSeek-R1-Zero training template (DeepSeek-R1 paper, Table 1), as
//                        the pattern kR1ZeroPattern below.
//
// Messages are {role, content[, reasoning]}; roles are system, user and assistant (tool calls and
// tool messages are not rendered: an error). `reasoning` is what transformers calls
// reasoning_content: only qwen3 reads it (the DeepSeek templates read reasoning from <think>
// inside the content, and drop it). Empty conversations are an error.
//
// Template selection (ChatTemplate::for_model): the model directory's chat template source —
// chat_template.jinja, else chat_template.json, else tokenizer_config.json "chat_template" (a
// string, or the entry named "default" of a list) — is normalised (whitespace control applied as
// transformers' jinja2 settings do: trim_blocks, lstrip_blocks, "-" markers, the final newline;
// comments dropped; whitespace inside tags collapsed; string literals re-quoted) and its 64-bit
// FNV-1a hash looked up among the known sources. An unknown template is an error naming the file
// and its hash and suggesting --template NAME. bos_token / eos_token come from
// tokenizer_config.json (or special_tokens_map.json), as transformers passes them to Jinja.
//
// Pattern templates (ChatTemplate::from_pattern), for recipes: literal text with placeholders
//   {prompt}  the user message (required in every pattern)
//   {system}  the system message ("" when there is none; a system message given to a pattern
//             without {system} is an error)
//   {bos} {eos}  the tokenizer's BOS / EOS text (an error when the tokenizer has none)
//   {{ and }} a literal { and }; any other {name} or an unmatched brace is an error at parse time.
// A pattern renders one exchange: an optional system message, exactly one user message, and
// optionally one assistant message whose content is appended right after the rendered pattern
// (the pattern ends where the model starts writing, e.g. "Assistant:"). add_generation_prompt
// does not change a pattern's output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "policy/tokenizer.h"

namespace r1kit::policy {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
  std::optional<std::string> reasoning;  // transformers' reasoning_content
};

// A JSON array of messages, or an object {"messages": [...]}. Each message: "role", "content"
// (strings) and optionally "reasoning" or "reasoning_content" (a string or null). Unknown keys
// and wrong types are errors naming `where` and the message index.
std::vector<ChatMessage> parse_chat_messages(const Json& j, std::string_view where);
std::vector<ChatMessage> read_chat_messages(const std::string& path);

// The special-token texts a template may write (Jinja's bos_token / eos_token).
struct ChatSpecialTokens {
  std::optional<std::string> bos;
  std::optional<std::string> eos;
};

// The bos_token / eos_token a model directory's tokenizer_config.json (or special_tokens_map.json)
// defines, as strings (AddedToken objects give their "content").
ChatSpecialTokens read_chat_special_tokens(const std::string& dir);

struct ChatRenderOptions {
  bool add_generation_prompt = false;
  // Jinja's enable_thinking: unset means undefined (read by qwen3, r1-distill-qwen-llamacpp).
  std::optional<bool> enable_thinking;
};

// The R1-Zero template text, from the DeepSeek-R1 paper ("prompt will be replaced with the
// specific reasoning question during training").
inline constexpr std::string_view kR1ZeroPattern =
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: {prompt}. Assistant:";

class ChatTemplate {
 public:
  // A built-in template by name; an unknown name lists the known ones. Without `tokens`, the
  // special tokens of the models that ship the template (DeepSeek: <｜begin▁of▁sentence｜> and
  // <｜end▁of▁sentence｜>; Qwen: no BOS, <|im_end|>).
  static ChatTemplate builtin(std::string_view name);
  static ChatTemplate builtin(std::string_view name, const ChatSpecialTokens& tokens);
  static std::vector<std::string> builtin_names();
  // One line saying what a built-in template is ("" for unknown names).
  static std::string builtin_description(std::string_view name);
  // A recipe's pattern (syntax above); errors give the offset of the bad placeholder.
  static ChatTemplate from_pattern(std::string_view pattern, const ChatSpecialTokens& tokens = {});
  // A Jinja source that must be one of the known ones; `label` (a file name) goes in the error.
  static ChatTemplate from_jinja(std::string_view source, const ChatSpecialTokens& tokens,
                                 std::string_view label);
  // The template of a model directory; with a non-empty `name`, that built-in template instead
  // (with the directory's special tokens where it defines them).
  static ChatTemplate for_model(const std::string& dir, std::string_view name = {});

  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  std::string render(const std::vector<ChatMessage>& messages, const ChatRenderOptions& opts) const;

  // The built-in name, or "pattern" for recipe patterns.
  const std::string& name() const { return name_; }
  const ChatSpecialTokens& special_tokens() const { return tokens_; }

 private:
  enum class Kind {
    deepseek_r1,
    deepseek_r1_2501,
    deepseek_v3,
    r1_distill_qwen,
    r1_distill_qwen_llamacpp,
    qwen25,
    qwen3,
    pattern
  };
  struct PatternPiece {
    enum class Type { text, prompt, system, bos, eos } type = Type::text;
    std::string text;
  };
  ChatTemplate(std::string name, Kind kind, ChatSpecialTokens tokens)
      : name_(std::move(name)), kind_(kind), tokens_(std::move(tokens)) {}
  std::string render_pattern(const std::vector<ChatMessage>& messages) const;

  std::string name_;
  Kind kind_;
  ChatSpecialTokens tokens_;
  std::vector<PatternPiece> pattern_;
};

// The normalised form of a Jinja chat template (see above) and its hash as 16 hex digits; two
// sources with the same normal form render the same text.
std::string normalize_jinja_template(std::string_view source);
std::string jinja_template_hash(std::string_view source);
// The built-in name whose Jinja original has this normal form, if any.
std::optional<std::string> match_builtin_jinja(std::string_view source);

// Encodes a rendered chat the way apply_chat_template(tokenize=True) does (add_special_tokens=False
// there): special-token text recognised, no BOS beyond the ones the text itself starts with ("no
// double BOS": a template that writes the BOS text and a tokenizer that adds BOS give one BOS, not
// two), and no EOS appended by the tokenizer.
std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, std::string_view rendered);

}  // namespace r1kit::policy

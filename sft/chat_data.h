// SFT examples from JSONL: rows of any supported shape mapped to a conversation, rendered with the
// model's chat template, encoded into tokens with a per-token loss mask, cut to a length limit;
// bad rows skipped with counts and sample line numbers (or an error in strict mode).
//
// Row shapes (DataConfig::format; auto picks the first that applies):
//   messages            {"messages": [{"role", "content"[, "reasoning"]}…]} (field name
//   configurable) prompt_completion   {"prompt": text or messages, "completion": text or [one
//   assistant message]} question_answer     {"question": text, "answer": text} fields
//   {<prompt_field>: text, <completion_field>: text}: any two named fields
//   text                {<text_field>: "…"} (default field "text"): a plain document for
//                       pretraining or continued pretraining, no chat template (auto picks it only
//                       when no conversation shape applies)
// A configured system prompt is prepended when the conversation has no system message. The last
// message must be a non-empty assistant message.
//
// Encoding (how the tokens a model is trained on match what it sees when it generates): with P the
// template's rendering of the messages before the final assistant message, with the generation
// prompt, and c that message's content as written (reasoning kept: R1 cold-start data holds it as
// <think>…</think> inside the content),
//   text = P + c' + E
// (a final message with a separate "reasoning" and no <think> in its content gets
// c = "<think>\n" + reasoning + "\n</think>\n\n" + content), where E is the template's end-of-turn
// text (what follows an assistant message's content in the template, trailing newlines dropped,
// e.g. "<｜end▁of▁sentence｜>" or "<|im_end|>"; for pattern templates the tokenizer's EOS text) and
// c' is c without a leading "<think>" (and one newline after it) when P already ends with
// "<think>\n" (DeepSeek-R1's generation prompt opens the think block). The engine renders prompts
// the same way (generation prompt on), so training and sampling see the same prefix. Earlier turns
// are as the template renders history (DeepSeek-R1's drops their reasoning, as at inference). P and
// c' + E are encoded separately (encode_chat_prompt: special tokens recognised, no BOS added beyond
// the template's own), so the mask boundary is exact. Loss mask (LossOn), 1 = the token is a
// training target:
//   assistant  c' + E of the final turn, and every earlier assistant turn's span in P: for turn k,
//              [len(render(m[:k], gen)), len(render(m[:k+1]))) — which needs each rendering to be
//              a prefix of the next (a template that rewrites earlier turns cannot give spans: the
//              row is an error naming the turn; use last_turn)
//   last_turn  c' + E only
//   all        every token but the first
// Text rows are the document's tokens as the tokenizer encodes a plain text (its BOS when its
// config adds one, special-token text recognised), then its first EOS token unless the text already
// ends with one, every token but the first a target (loss_on does not apply); the packed
// micro-batch restarts positions per row, so each document is seen on its own. Over-long rows (more
// than max_tokens): drop (counted), truncate to the first max_tokens (counted; dropped if no target
// is left), or error.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "policy/chat_template.h"
#include "policy/tokenizer.h"

namespace r1kit::sft {

enum class RowFormat { auto_detect, messages, prompt_completion, question_answer, fields, text };
enum class LossOn { assistant, last_turn, all };
enum class OverLong { drop, truncate, error };

struct DataConfig {
  RowFormat format = RowFormat::auto_detect;
  std::string messages_field = "messages";
  std::string prompt_field = "prompt";          // format fields
  std::string completion_field = "completion";  // format fields
  std::string text_field = "text";              // format text
  std::string system_prompt;                    // prepended when the row has none ("" = none)
  LossOn loss_on = LossOn::assistant;
  int64_t max_tokens = 4096;
  OverLong over_long = OverLong::truncate;
  bool strict = false;  // a bad row is an error instead of a skip

  // Keys: format ("auto", "messages", "prompt_completion", "question_answer", "fields", "text"),
  // messages_field, prompt_field, completion_field, text_field, system_prompt, loss_on
  // ("assistant", "last_turn", "all"), max_tokens, over_long ("drop", "truncate", "error"), strict.
  // Unknown keys and wrong types are errors naming `where` and the key.
  static DataConfig from_json(const Json& j, std::string_view where);
};

// One encoded example.
struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;  // (tokens) 1 where the token is a training target
  int64_t line = 0;                // 1-based line of the source row (0 when not from a file)
  bool truncated = false;
  // A stored teacher distribution (logit distillation): for each target token, in order (the
  // tokens i >= 1 with loss_mask[i] = 1), the teacher's teacher_k most likely tokens at the
  // position before it and their log-probs: (targets, teacher_k) row-major. Empty: none.
  int64_t teacher_k = 0;
  std::vector<int32_t> teacher_ids;
  std::vector<float> teacher_logprobs;
  int64_t targets() const;  // tokens with loss
};

// The row shape cfg.format gives, or the one auto detection picks for this row (see the file
// comment; a row of no known shape is an error naming `where` and the row's fields).
RowFormat row_format(const Json& row, const DataConfig& cfg, std::string_view where);

// The conversation of one (non-text) row; errors (std::runtime_error-derived r1kit::Error) name
// `where`.
std::vector<policy::ChatMessage> row_messages(const Json& row, const DataConfig& cfg,
                                              std::string_view where);

// Encodes one conversation (see the file comment); the error names `where`.
Example encode_conversation(const std::vector<policy::ChatMessage>& messages,
                            const policy::ChatTemplate& chat, const policy::Tokenizer& tok,
                            LossOn loss_on, std::string_view where);

// Encodes one plain document (a text row; see the file comment); the error names `where`.
Example encode_text(std::string_view text, const policy::Tokenizer& tok, std::string_view where);

// Encodes one row of any shape with cfg (text rows with encode_text, the others with
// row_messages + encode_conversation); errors name `where`. `chat` may be null when only text rows
// are expected (format text): a conversation row is then an error.
Example encode_row(const Json& row, const DataConfig& cfg, const policy::ChatTemplate* chat,
                   const policy::Tokenizer& tok, std::string_view where);

struct DatasetStats {
  int64_t rows = 0;       // non-blank lines read
  int64_t examples = 0;   // kept
  int64_t truncated = 0;  // kept after truncation
  int64_t tokens = 0, targets = 0;
  // Skips by reason ("malformed JSON", "bad row", "empty assistant turn", "over-long", "no
  // target left after truncation") with the count and the first few line numbers.
  struct Skip {
    int64_t count = 0;
    std::vector<int64_t> lines;
  };
  std::map<std::string, Skip> skipped;
  int64_t num_skipped() const;
  Json to_json() const;
  std::string summary() const;  // one line for the log
};

struct SftDataset {
  std::vector<Example> examples;
  DatasetStats stats;
};

// Reads a JSONL file row by row. Lines that are not JSON objects, rows that do not map to a valid
// conversation, over-long rows (per over_long) are skipped and counted, or — with cfg.strict —
// an error naming the file and line. A missing or empty result is an error naming the file.
SftDataset load_sft_dataset(const std::string& path, const DataConfig& cfg,
                            const policy::ChatTemplate& chat, const policy::Tokenizer& tok);
// The same with no chat template: for plain documents (format text) only.
SftDataset load_sft_dataset(const std::string& path, const DataConfig& cfg,
                            const policy::ChatTemplate* chat, const policy::Tokenizer& tok);

}  // namespace r1kit::sft

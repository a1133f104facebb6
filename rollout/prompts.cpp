#include "rollout/prompts.h"

#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/log.h"

namespace r1kit::rollout {

namespace {

std::string default_prompt_field(const Json& row) {
  for (const char* f : {"messages", "prompt", "question", "problem"})
    if (row.contains(f)) return f;
  return "";
}

}  // namespace

PromptSet load_prompt_set(const PromptSetOptions& o, const policy::Tokenizer& tok,
                          const policy::ChatTemplate& chat) {
  std::error_code ec;
  R1_CHECK(std::filesystem::exists(o.path, ec), "{}: no such file (the '{}' prompts)", o.path,
           o.label);
  JsonlReader reader(o.path);
  PromptSet out;
  std::map<std::string, int64_t> why;
  Json j;
  while (true) {
    bool more = false;
    try {
      more = reader.next(&j);
    } catch (const Error& e) {
      logger()->warn("[{}] {}", o.label, e.what());
      ++why["malformed JSON"];
      continue;
    }
    if (!more) break;
    const std::string where = fmt::format("{}:{}", o.path, reader.line_number());
    try {
      require_object(j, where);
      const std::string field = o.field.empty() ? default_prompt_field(j) : o.field;
      R1_CHECK(!field.empty() && j.contains(field), "{}: no prompt field ({}; set 'prompt_field')",
               where,
               o.field.empty() ? "none of messages, prompt, question, problem"
                               : "'" + o.field + "' is missing");
      std::vector<policy::ChatMessage> msgs;
      PromptRow p;
      if (j.at(field).is_array()) {
        msgs = policy::parse_chat_messages(j.at(field), where);
        for (const auto& m : msgs)
          if (m.role == "user") p.question = m.content;
      } else {
        p.question = get_required<std::string>(j, field, where);
        if (!o.system_prompt.empty()) msgs.push_back({"system", o.system_prompt, std::nullopt});
        msgs.push_back({"user", p.question, std::nullopt});
      }
      R1_CHECK(msgs.empty() || msgs.back().role != "assistant",
               "{}: the prompt's last message is the assistant's", where);
      p.ids = policy::encode_chat_prompt(tok, chat.render(msgs, true));
      R1_CHECK(!p.ids.empty(), "{}: the prompt encodes to no tokens", where);
      if (o.vocab > 0)
        for (const int32_t t : p.ids)
          R1_CHECK(t >= 0 && t < o.vocab, "{}: token {} is outside the model's vocabulary [0, {})",
                   where, t, o.vocab);
      if (static_cast<int64_t>(p.ids.size()) > o.max_tokens) {
        ++why["longer than max_prompt_tokens"];
        continue;
      }
      p.row = std::move(j);
      p.line = static_cast<int64_t>(reader.line_number());
      out.rows.push_back(std::move(p));
    } catch (const Error& e) {
      logger()->warn("[{}] {}", o.label, e.what());
      ++why["bad row"];
    }
  }
  for (const auto& [k, v] : why) {
    out.skipped += v;
    logger()->info("[{}] {}: {} rows skipped: {}", o.label, o.path, v, k);
  }
  R1_CHECK(!out.rows.empty(), "{}: no usable prompt rows", o.path);
  return out;
}

}  // namespace r1kit::rollout

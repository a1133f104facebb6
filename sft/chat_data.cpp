// SFT rows → conversations → tokens with a loss mask (sft/chat_data.h).
#include "sft/chat_data.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"

namespace r1kit::sft {
namespace {

using policy::ChatMessage;

// A row field holding text or messages, as messages with `role_for_text` for text.
std::vector<ChatMessage> text_or_messages(const Json& v, const std::string& role_for_text,
                                          std::string_view field, std::string_view where) {
  if (v.is_string()) return {ChatMessage{role_for_text, v.get<std::string>(), std::nullopt}};
  if (v.is_array()) return policy::parse_chat_messages(v, json_where(where, field));
  R1_THROW("{}: '{}' must be a string or an array of messages, got {}", where, field,
           json_type_name(v));
}

bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(0, p.size()) == p;
}

bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// The template's end-of-turn text after an assistant message (see the header).
std::string end_of_turn(const policy::ChatTemplate& chat) {
  const std::string marker = "r1kit-probe-assistant-content";
  const std::vector<ChatMessage> probe = {{"user", "r1kit-probe-user", std::nullopt},
                                          {"assistant", marker, std::nullopt}};
  const std::string full = chat.render(probe, false);
  const size_t at = full.rfind(marker);
  std::string end = at == std::string::npos ? std::string() : full.substr(at + marker.size());
  while (!end.empty() && (end.back() == '\n' || end.back() == ' ')) end.pop_back();
  if (end.empty() && chat.special_tokens().eos) end = *chat.special_tokens().eos;
  return end;
}

void append(Example& ex, const std::vector<int32_t>& ids, uint8_t target) {
  ex.tokens.insert(ex.tokens.end(), ids.begin(), ids.end());
  ex.loss_mask.insert(ex.loss_mask.end(), ids.size(), target);
}

}  // namespace

DataConfig DataConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j,
                      {"format", "messages_field", "prompt_field", "completion_field", "text_field",
                       "system_prompt", "loss_on", "max_tokens", "over_long", "strict"},
                      where);
  DataConfig c;
  c.format = get_enum<RowFormat>(j, "format", where,
                                 {{"auto", RowFormat::auto_detect},
                                  {"messages", RowFormat::messages},
                                  {"prompt_completion", RowFormat::prompt_completion},
                                  {"question_answer", RowFormat::question_answer},
                                  {"fields", RowFormat::fields},
                                  {"text", RowFormat::text}},
                                 c.format);
  c.messages_field = get_optional<std::string>(j, "messages_field", where, c.messages_field);
  c.prompt_field = get_optional<std::string>(j, "prompt_field", where, c.prompt_field);
  c.completion_field = get_optional<std::string>(j, "completion_field", where, c.completion_field);
  c.text_field = get_optional<std::string>(j, "text_field", where, c.text_field);
  c.system_prompt = get_optional<std::string>(j, "system_prompt", where, c.system_prompt);
  c.loss_on = get_enum<LossOn>(
      j, "loss_on", where,
      {{"assistant", LossOn::assistant}, {"last_turn", LossOn::last_turn}, {"all", LossOn::all}},
      c.loss_on);
  c.max_tokens = get_optional<int64_t>(j, "max_tokens", where, c.max_tokens);
  R1_CHECK(c.max_tokens >= 2, "{}: 'max_tokens' must be at least 2, got {}", where, c.max_tokens);
  c.over_long = get_enum<OverLong>(
      j, "over_long", where,
      {{"drop", OverLong::drop}, {"truncate", OverLong::truncate}, {"error", OverLong::error}},
      c.over_long);
  c.strict = get_optional<bool>(j, "strict", where, c.strict);
  return c;
}

int64_t Example::targets() const {
  return std::count(loss_mask.begin(), loss_mask.end(), uint8_t{1});
}

RowFormat row_format(const Json& row, const DataConfig& cfg, std::string_view where) {
  R1_CHECK(row.is_object(), "{}: a row must be a JSON object, got {}", where, json_type_name(row));
  if (cfg.format != RowFormat::auto_detect) return cfg.format;
  if (row.contains(cfg.messages_field)) return RowFormat::messages;
  if (row.contains("prompt") && row.contains("completion")) return RowFormat::prompt_completion;
  if (row.contains("question") && row.contains("answer")) return RowFormat::question_answer;
  if (row.contains(cfg.text_field)) return RowFormat::text;
  std::string keys;
  for (const auto& [k, v] : row.items()) keys += (keys.empty() ? "" : ", ") + k;
  R1_THROW(
      "{}: no known row shape: expected '{}', 'prompt' + 'completion', 'question' + 'answer' or "
      "'{}' (or set format and the field names); the row has {}",
      where, cfg.messages_field, cfg.text_field, keys.empty() ? "no fields" : keys);
}

std::vector<ChatMessage> row_messages(const Json& row, const DataConfig& cfg,
                                      std::string_view where) {
  const RowFormat f = row_format(row, cfg, where);
  R1_CHECK(f != RowFormat::text, "{}: a text row ('{}') is a plain document, not a conversation",
           where, cfg.text_field);
  std::vector<ChatMessage> m;
  auto field = [&](const std::string& name) -> const Json& {
    R1_CHECK(row.contains(name), "{}: missing field '{}'", where, name);
    return row.at(name);
  };
  switch (f) {
    case RowFormat::messages:
      m = policy::parse_chat_messages(field(cfg.messages_field),
                                      json_where(where, cfg.messages_field));
      break;
    case RowFormat::prompt_completion:
    case RowFormat::fields: {
      const std::string pf = f == RowFormat::fields ? cfg.prompt_field : "prompt";
      const std::string cf = f == RowFormat::fields ? cfg.completion_field : "completion";
      m = text_or_messages(field(pf), "user", pf, where);
      const auto c = text_or_messages(field(cf), "assistant", cf, where);
      R1_CHECK(c.size() == 1 && c[0].role == "assistant",
               "{}: '{}' must be text or exactly one assistant message", where, cf);
      m.push_back(c[0]);
      break;
    }
    case RowFormat::question_answer:
      m = text_or_messages(field("question"), "user", "question", where);
      R1_CHECK(field("answer").is_string(), "{}: 'answer' must be a string, got {}", where,
               json_type_name(field("answer")));
      m.push_back(ChatMessage{"assistant", field("answer").get<std::string>(), std::nullopt});
      break;
    case RowFormat::auto_detect:
    case RowFormat::text:
      break;
  }
  R1_CHECK(!m.empty(), "{}: the conversation is empty", where);
  if (!cfg.system_prompt.empty() && m.front().role != "system")
    m.insert(m.begin(), ChatMessage{"system", cfg.system_prompt, std::nullopt});
  R1_CHECK(m.back().role == "assistant",
           "{}: the last message must be the assistant's (the training target), got role '{}'",
           where, m.back().role);
  return m;
}

Example encode_conversation(const std::vector<ChatMessage>& messages,
                            const policy::ChatTemplate& chat, const policy::Tokenizer& tok,
                            LossOn loss_on, std::string_view where) {
  R1_CHECK(!messages.empty() && messages.back().role == "assistant",
           "{}: the conversation must end with an assistant message", where);
  R1_CHECK(!messages.back().content.empty(), "{}: empty assistant turn", where);
  const std::vector<ChatMessage> head(messages.begin(), messages.end() - 1);
  R1_CHECK(!head.empty(), "{}: the conversation has no prompt before the assistant turn", where);
  const std::string prompt = chat.render(head, true);
  std::string content = messages.back().content;
  const auto& reasoning = messages.back().reasoning;
  if (reasoning && !reasoning->empty() && content.find("<think>") == std::string::npos)
    content = "<think>\n" + *reasoning + "\n</think>\n\n" + content;
  if (ends_with(prompt, "<think>\n") && starts_with(content, "<think>")) {
    content.erase(0, 7);
    if (starts_with(content, "\n")) content.erase(0, 1);
  }
  const std::string completion = content + end_of_turn(chat);

  // Spans [begin, end) of `prompt` that are earlier assistant turns (loss_on assistant).
  std::vector<std::pair<size_t, size_t>> spans;
  if (loss_on == LossOn::assistant) {
    for (size_t k = 0; k + 1 < messages.size(); ++k) {
      if (messages[k].role != "assistant") continue;
      const std::vector<ChatMessage> before(messages.begin(), messages.begin() + k);
      const std::vector<ChatMessage> through(messages.begin(), messages.begin() + k + 1);
      R1_CHECK(!before.empty(), "{}: message {} is an assistant turn with no prompt before it",
               where, k);
      const std::string a = chat.render(before, true), b = chat.render(through, false);
      R1_CHECK(starts_with(b, a) && starts_with(prompt, b),
               "{}: the chat template ('{}') renders assistant turn {} differently once later "
               "turns follow (it rewrites earlier turns, e.g. drops their reasoning), so its "
               "tokens cannot be marked in the full conversation; use loss_on \"last_turn\"",
               where, chat.name(), k);
      spans.emplace_back(a.size(), b.size());
    }
  }
  Example ex;
  size_t at = 0;
  for (const auto& [b, e] : spans) {
    append(ex, policy::encode_chat_prompt(tok, std::string_view(prompt).substr(at, b - at)),
           loss_on == LossOn::all);
    append(ex, policy::encode_chat_prompt(tok, std::string_view(prompt).substr(b, e - b)), 1);
    at = e;
  }
  append(ex, policy::encode_chat_prompt(tok, std::string_view(prompt).substr(at)),
         loss_on == LossOn::all);
  append(ex, policy::encode_chat_prompt(tok, completion), 1);
  R1_CHECK(ex.tokens.size() >= 2, "{}: the conversation encodes to {} token(s)", where,
           ex.tokens.size());
  ex.loss_mask[0] = 0;  // the first token is never predicted
  return ex;
}

Example encode_text(std::string_view text, const policy::Tokenizer& tok, std::string_view where) {
  R1_CHECK(!text.empty(), "{}: empty text", where);
  Example ex;
  ex.tokens = tok.encode(text);
  const std::vector<int32_t> eos = tok.eos_ids();
  if (!eos.empty() &&
      (ex.tokens.empty() || std::find(eos.begin(), eos.end(), ex.tokens.back()) == eos.end()))
    ex.tokens.push_back(eos.front());
  R1_CHECK(ex.tokens.size() >= 2, "{}: the text encodes to {} token(s)", where, ex.tokens.size());
  ex.loss_mask.assign(ex.tokens.size(), 1);
  ex.loss_mask[0] = 0;  // the first token is never predicted
  return ex;
}

Example encode_row(const Json& row, const DataConfig& cfg, const policy::ChatTemplate* chat,
                   const policy::Tokenizer& tok, std::string_view where) {
  if (row_format(row, cfg, where) == RowFormat::text) {
    R1_CHECK(row.contains(cfg.text_field), "{}: missing field '{}'", where, cfg.text_field);
    const Json& t = row.at(cfg.text_field);
    R1_CHECK(t.is_string(), "{}: '{}' must be a string, got {}", where, cfg.text_field,
             json_type_name(t));
    return encode_text(t.get<std::string>(), tok, where);
  }
  const auto messages = row_messages(row, cfg, where);
  R1_CHECK(!messages.back().content.empty(), "{}: empty assistant turn", where);
  R1_CHECK(chat, "{}: a conversation row, but no chat template is loaded (format text)", where);
  return encode_conversation(messages, *chat, tok, cfg.loss_on, where);
}

int64_t DatasetStats::num_skipped() const {
  int64_t n = 0;
  for (const auto& [reason, s] : skipped) n += s.count;
  return n;
}

Json DatasetStats::to_json() const {
  Json sk = Json::object();
  for (const auto& [reason, s] : skipped) sk[reason] = {{"count", s.count}, {"lines", s.lines}};
  return {{"rows", rows},     {"examples", examples}, {"truncated", truncated},
          {"tokens", tokens}, {"targets", targets},   {"skipped", sk}};
}

std::string DatasetStats::summary() const {
  std::string s = fmt::format("{} rows: {} examples ({} truncated), {} tokens, {} targets", rows,
                              examples, truncated, tokens, targets);
  for (const auto& [reason, sk] : skipped) {
    std::string lines;
    for (int64_t l : sk.lines) lines += (lines.empty() ? "" : ", ") + std::to_string(l);
    s += fmt::format("; skipped {} {} (lines {}{})", sk.count, reason, lines,
                     sk.count > static_cast<int64_t>(sk.lines.size()) ? ", …" : "");
  }
  return s;
}

SftDataset load_sft_dataset(const std::string& path, const DataConfig& cfg,
                            const policy::ChatTemplate& chat, const policy::Tokenizer& tok) {
  return load_sft_dataset(path, cfg, &chat, tok);
}

SftDataset load_sft_dataset(const std::string& path, const DataConfig& cfg,
                            const policy::ChatTemplate* chat, const policy::Tokenizer& tok) {
  std::ifstream in(path, std::ios::binary);
  R1_CHECK(in, "{}: cannot open the dataset (missing file or no permission)", path);
  SftDataset ds;
  DatasetStats& st = ds.stats;
  auto skip = [&](const std::string& reason, int64_t line, const std::string& message) {
    R1_CHECK(!cfg.strict, "{} (strict: bad rows are errors)", message);
    DatasetStats::Skip& s = st.skipped[reason];
    ++s.count;
    if (s.lines.size() < 5) s.lines.push_back(line);
  };
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (line == 1 && starts_with(text, "\xEF\xBB\xBF")) text.erase(0, 3);
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    ++st.rows;
    const std::string where = fmt::format("{}:{}", path, line);
    const Json row = Json::parse(text, nullptr, false);
    if (row.is_discarded()) {
      skip("malformed JSON", line, fmt::format("{}: not valid JSON (or not UTF-8)", where));
      continue;
    }
    Example ex;
    try {
      if (row_format(row, cfg, where) != RowFormat::text &&
          row_messages(row, cfg, where).back().content.empty()) {
        skip("empty assistant turn", line, fmt::format("{}: empty assistant turn", where));
        continue;
      }
      ex = encode_row(row, cfg, chat, tok, where);
    } catch (const Error& e) {
      if (cfg.strict) throw;
      skip("bad row", line, e.what());
      continue;
    }
    ex.line = line;
    if (static_cast<int64_t>(ex.tokens.size()) > cfg.max_tokens) {
      const std::string msg = fmt::format("{}: {} tokens, more than max_tokens = {}", where,
                                          ex.tokens.size(), cfg.max_tokens);
      if (cfg.over_long == OverLong::error) R1_THROW("{} (over_long: error)", msg);
      if (cfg.over_long == OverLong::drop) {
        skip("over-long", line, msg);
        continue;
      }
      ex.tokens.resize(static_cast<size_t>(cfg.max_tokens));
      ex.loss_mask.resize(static_cast<size_t>(cfg.max_tokens));
      ex.truncated = true;
      if (ex.targets() == 0) {
        skip("no target left after truncation", line, msg);
        continue;
      }
      ++st.truncated;
    }
    st.tokens += static_cast<int64_t>(ex.tokens.size());
    st.targets += ex.targets();
    ds.examples.push_back(std::move(ex));
  }
  st.examples = static_cast<int64_t>(ds.examples.size());
  R1_CHECK(st.rows > 0, "{}: the dataset has no rows", path);
  R1_CHECK(st.examples > 0, "{}: no usable example in {} rows ({})", path, st.rows, st.summary());
  return ds;
}

}  // namespace r1kit::sft

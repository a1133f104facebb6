// Chat templates (see chat_template.h): the Jinja normaliser and the table of known sources, one
// renderer per built-in template (each mirrors its Jinja original line by line, tool-less), the
// pattern language, model-directory lookup, messages files and BOS-aware encoding.
#include "policy/chat_template.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"

namespace r1kit::policy {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDeepseekBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kDeepseekEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kQwenEos = "<|im_end|>";
constexpr std::string_view kQwenDefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

// --- Jinja normal form ---------------------------------------------------------------------------

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_word(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// A tag body with whitespace collapsed (kept, as one space, only between two word characters) and
// string literals decoded and re-quoted with double quotes.
std::string canonical_tag_body(std::string_view body) {
  std::string out;
  bool pending_space = false;
  for (size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (is_ws(c)) {
      pending_space = true;
      ++i;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string value;
      size_t j = i + 1;
      while (j < body.size() && body[j] != c) {
        if (body[j] == '\\' && j + 1 < body.size()) {
          const char e = body[j + 1];
          switch (e) {
            case 'n':
              value += '\n';
              break;
            case 't':
              value += '\t';
              break;
            case 'r':
              value += '\r';
              break;
            case '\\':
              value += '\\';
              break;
            case '\'':
              value += '\'';
              break;
            case '"':
              value += '"';
              break;
            default:
              value += '\\';
              value += e;
              break;  // kept as written, as Python does
          }
          j += 2;
          continue;
        }
        value += body[j++];
      }
      out += '"';
      for (const char v : value) {
        if (v == '"' || v == '\\') {
          out += '\\';
          out += v;
        } else if (v == '\n') {
          out += "\\n";
        } else if (v == '\t') {
          out += "\\t";
        } else if (v == '\r') {
          out += "\\r";
        } else {
          out += v;
        }
      }
      out += '"';
      pending_space = false;
      i = j + 1;
      continue;
    }
    if (pending_space && !out.empty() && is_word(out.back()) && is_word(c)) out += ' ';
    pending_space = false;
    out += c;
    ++i;
  }
  return out;
}

// End of the tag body starting at `from` for a "{{" (closer "}}") or "{%" (closer "%}") tag: the
// index of the closer, skipping string literals and bracketed expressions as jinja2's lexer does.
size_t find_tag_end(const std::string& src, size_t from, char kind, std::string_view label) {
  const char close = kind == '{' ? '}' : '%';
  int depth = 0;
  for (size_t i = from; i < src.size(); ++i) {
    const char c = src[i];
    if (c == '\'' || c == '"') {
      for (++i; i < src.size() && src[i] != c; ++i)
        if (src[i] == '\\') ++i;
      continue;
    }
    if (depth == 0 && c == close && i + 1 < src.size() && src[i + 1] == '}') return i;
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
  }
  R1_THROW("{}: unterminated Jinja tag starting at byte {}", label, from - 2);
}

std::string normalize_jinja(std::string_view source_in, std::string_view label) {
  // jinja2 reads "\r\n" and "\r" as "\n" and drops one final newline (keep_trailing_newline=False).
  std::string src;
  src.reserve(source_in.size());
  for (size_t i = 0; i < source_in.size(); ++i) {
    if (source_in[i] == '\r') {
      src += '\n';
      if (i + 1 < source_in.size() && source_in[i + 1] == '\n') ++i;
    } else {
      src += source_in[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();

  std::vector<std::pair<char, std::string>> segs;  // 'T' text, 'V' {{ }}, 'B' {% %}
  const auto add_text = [&](std::string text) {
    if (text.empty()) return;
    if (!segs.empty() && segs.back().first == 'T') {
      segs.back().second += text;
    } else {
      segs.emplace_back('T', std::move(text));
    }
  };
  size_t pos = 0;
  bool line_starting = true;  // the text at pos starts a line (jinja2's lstrip_blocks rule)
  while (pos < src.size()) {
    size_t open = pos;
    while (true) {
      open = src.find('{', open);
      if (open == std::string::npos || open + 1 >= src.size()) {
        open = std::string::npos;
        break;
      }
      const char k = src[open + 1];
      if (k == '{' || k == '%' || k == '#') break;
      ++open;
    }
    std::string text = src.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    if (open == std::string::npos) {
      add_text(std::move(text));
      break;
    }
    const char kind = src[open + 1];
    size_t body = open + 2;
    const char open_mod = body < src.size() ? src[body] : '\0';
    if (open_mod == '-') {
      while (!text.empty() && is_ws(text.back())) text.pop_back();
      ++body;
    } else if (open_mod == '+') {
      ++body;
    } else if (kind != '{') {
      // lstrip_blocks: spaces and tabs between the start of a line and a block or comment tag.
      const size_t nl = text.rfind('\n');
      const size_t line = nl == std::string::npos ? 0 : nl + 1;
      if ((nl != std::string::npos || line_starting) &&
          std::all_of(text.begin() + static_cast<std::ptrdiff_t>(line), text.end(),
                      [](char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\v'; }))
        text.resize(line);
    }
    add_text(std::move(text));
    size_t close;  // index of "}}", "%}" or "#}"
    if (kind == '#') {
      close = src.find("#}", body);
      if (close == std::string::npos)
        R1_THROW("{}: unterminated Jinja comment starting at byte {}", label, open);
    } else {
      close = find_tag_end(src, body, kind, label);
    }
    size_t body_end = close;
    char close_mod = '\0';
    if (body_end > body && (src[body_end - 1] == '-' || src[body_end - 1] == '+')) {
      close_mod = src[body_end - 1];
      --body_end;
    }
    if (kind != '#')
      segs.emplace_back(kind == '{' ? 'V' : 'B',
                        canonical_tag_body(std::string_view(src).substr(body, body_end - body)));
    pos = close + 2;
    line_starting = false;
    if (close_mod == '-') {
      size_t p = pos;
      while (p < src.size() && is_ws(src[p])) ++p;
      line_starting = p > pos && src[p - 1] == '\n';
      pos = p;
    } else if (close_mod != '+' && kind != '{' && pos < src.size() && src[pos] == '\n') {
      ++pos;  // trim_blocks
      line_starting = true;
    }
  }
  std::string out;
  for (const auto& [k, s] : segs) {
    out += k;
    out += std::to_string(s.size());
    out += ':';
    out += s;
  }
  return out;
}

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// Normal-form hashes of the Jinja originals, from the sources in tests/policy/data/chat_templates
// (`r1kit chat-template --hash FILE` prints them).
struct KnownJinja {
  std::string_view hash;
  std::string_view name;
  std::string_view source;
};
constexpr KnownJinja kKnownJinja[] = {
    {"e775e1aad9341538", "deepseek-r1", "deepseek-ai/DeepSeek-R1 tokenizer_config.json (2025-02)"},
    {"5625f882794edba6", "deepseek-r1-2501",
     "deepseek-ai/DeepSeek-R1 as first published (2025-01)"},
    {"0581e02419ec8fa7", "deepseek-v3", "deepseek-ai/DeepSeek-V3 tokenizer_config.json"},
    {"4d92787464903b1e", "r1-distill-qwen", "deepseek-ai/DeepSeek-R1-Distill-Qwen-* and -Llama-*"},
    {"e204149b1551fe53", "r1-distill-qwen-llamacpp",
     "llama.cpp models/templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"},
    {"fe0d3de9c0a74e32", "qwen2.5", "Qwen/Qwen2.5-*-Instruct tokenizer_config.json"},
    {"76928f07e2488f3d", "qwen3", "Qwen/Qwen3-* tokenizer_config.json"},
};

// --- Built-in table -----------------------------------------------------------------------------

struct BuiltinInfo {
  std::string_view name;
  std::string_view description;
  bool deepseek_tokens;
};
constexpr BuiltinInfo kBuiltins[] = {
    {"deepseek-r1", "DeepSeek-R1 (generation prompt <｜Assistant｜><think>\\n)", true},
    {"deepseek-r1-2501", "DeepSeek-R1 as first published (generation prompt <｜Assistant｜>)",
     true},
    {"deepseek-v3", "DeepSeek-V3", true},
    {"r1-distill-qwen", "DeepSeek-R1-Distill-Qwen / -Llama", true},
    {"r1-distill-qwen-llamacpp", "llama.cpp's R1-Distill-Qwen template (enable_thinking switch)",
     true},
    {"qwen2.5", "Qwen2.5-Instruct ChatML, tool-less", false},
    {"qwen3", "Qwen3, tool-less", false},
    {"r1-zero", "the DeepSeek-R1-Zero training prompt (DeepSeek-R1 paper, Table 1)", true},
};

std::string builtin_list() {
  std::string s;
  for (const auto& b : kBuiltins) {
    if (!s.empty()) s += ", ";
    s += b.name;
  }
  return s;
}

const BuiltinInfo* find_builtin(std::string_view name) {
  for (const auto& b : kBuiltins)
    if (b.name == name) return &b;
  return nullptr;
}

// --- Rendering helpers
// ----------------------------------------------------------------------------

// Python's s.split(sep)[-1] and s.split(sep)[0].
std::string after_last(const std::string& s, std::string_view sep) {
  const size_t p = s.rfind(sep);
  return p == std::string::npos ? s : s.substr(p + sep.size());
}
std::string before_first(const std::string& s, std::string_view sep) {
  const size_t p = s.find(sep);
  return p == std::string::npos ? s : s.substr(0, p);
}
// Python's lstrip('\n') / rstrip('\n') / strip('\n').
std::string lstrip_nl(const std::string& s) {
  const size_t p = s.find_first_not_of('\n');
  return p == std::string::npos ? std::string() : s.substr(p);
}
std::string rstrip_nl(const std::string& s) {
  const size_t p = s.find_last_not_of('\n');
  return p == std::string::npos ? std::string() : s.substr(0, p + 1);
}
std::string strip_nl(const std::string& s) {
  return rstrip_nl(lstrip_nl(s));
}
bool starts_with(const std::string& s, std::string_view p) {
  return s.starts_with(p);
}
bool ends_with(const std::string& s, std::string_view p) {
  return s.ends_with(p);
}

void check_messages(const std::vector<ChatMessage>& messages, std::string_view name) {
  if (messages.empty()) R1_THROW("[chat template {}] no messages to render", name);
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant")
      R1_THROW(
          "[chat template {}] message {} has role '{}'; the built-in templates render system, user "
          "and assistant messages only (no tool calls or tool results)",
          name, i, r);
  }
}

// DeepSeek-V3/R1: every system message, the first as is and each later one after "\n\n".
std::string deepseek_joined_system(const std::vector<ChatMessage>& messages) {
  std::string sp;
  bool first = true;
  for (const auto& m : messages) {
    if (m.role != "system") continue;
    if (first) {
      sp += m.content;
      first = false;
    } else {
      sp += "\n\n" + m.content;
    }
  }
  return sp;
}

}  // namespace

// --- Public: normal form
// ---------------------------------------------------------------------------

std::string normalize_jinja_template(std::string_view source) {
  return normalize_jinja(source, "chat template");
}

std::string jinja_template_hash(std::string_view source) {
  return R1_FORMAT("{:016x}", fnv1a64(normalize_jinja_template(source)));
}

std::optional<std::string> match_builtin_jinja(std::string_view source) {
  const std::string h = jinja_template_hash(source);
  for (const auto& k : kKnownJinja)
    if (k.hash == h) return std::string(k.name);
  return std::nullopt;
}

// --- Public: messages
// ------------------------------------------------------------------------------

std::vector<ChatMessage> parse_chat_messages(const Json& j, std::string_view where) {
  const Json* list = &j;
  std::string at(where);
  if (j.is_object()) {
    reject_unknown_keys(j, {"messages"}, where);
    const auto it = j.find("messages");
    if (it == j.end()) R1_THROW("{}: no \"messages\" array", where);
    list = &*it;
    at = json_where(where, "messages");
  }
  if (!list->is_array())
    R1_THROW("{}: expected an array of messages, got {}", at, json_type_name(*list));
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& m = (*list)[i];
    const std::string w = json_where(at, i);
    require_object(m, w);
    reject_unknown_keys(m, {"role", "content", "reasoning", "reasoning_content"}, w);
    ChatMessage msg;
    msg.role = get_required<std::string>(m, "role", w);
    msg.content = get_required<std::string>(m, "content", w);
    auto r1 = get_optional<std::string>(m, "reasoning", w);
    auto r2 = get_optional<std::string>(m, "reasoning_content", w);
    if (r1 && r2) R1_THROW("{}: give \"reasoning\" or \"reasoning_content\", not both", w);
    msg.reasoning = r1 ? std::move(r1) : std::move(r2);
    out.push_back(std::move(msg));
  }
  return out;
}

std::vector<ChatMessage> read_chat_messages(const std::string& path) {
  return parse_chat_messages(read_json_file(path), path);
}

// --- Public: construction
// ----------------------------------------------------------------------------

std::vector<std::string> ChatTemplate::builtin_names() {
  std::vector<std::string> out;
  for (const auto& b : kBuiltins) out.emplace_back(b.name);
  return out;
}

std::string ChatTemplate::builtin_description(std::string_view name) {
  const BuiltinInfo* b = find_builtin(name);
  return b ? std::string(b->description) : std::string();
}

ChatTemplate ChatTemplate::builtin(std::string_view name) {
  const BuiltinInfo* b = find_builtin(name);
  if (!b) R1_THROW("unknown chat template '{}' (built-in: {})", name, builtin_list());
  ChatSpecialTokens t;
  if (b->deepseek_tokens) {
    t.bos = std::string(kDeepseekBos);
    t.eos = std::string(kDeepseekEos);
  } else {
    t.eos = std::string(kQwenEos);
  }
  return builtin(name, t);
}

ChatTemplate ChatTemplate::builtin(std::string_view name, const ChatSpecialTokens& tokens) {
  const BuiltinInfo* b = find_builtin(name);
  if (!b) R1_THROW("unknown chat template '{}' (built-in: {})", name, builtin_list());
  if (name == "r1-zero") {
    ChatTemplate t = from_pattern(kR1ZeroPattern, tokens);
    t.name_ = "r1-zero";
    return t;
  }
  Kind kind;
  if (name == "deepseek-r1") {
    kind = Kind::deepseek_r1;
  } else if (name == "deepseek-r1-2501") {
    kind = Kind::deepseek_r1_2501;
  } else if (name == "deepseek-v3") {
    kind = Kind::deepseek_v3;
  } else if (name == "r1-distill-qwen") {
    kind = Kind::r1_distill_qwen;
  } else if (name == "r1-distill-qwen-llamacpp") {
    kind = Kind::r1_distill_qwen_llamacpp;
  } else if (name == "qwen2.5") {
    kind = Kind::qwen25;
  } else {
    kind = Kind::qwen3;
  }
  return ChatTemplate(std::string(name), kind, tokens);
}

ChatTemplate ChatTemplate::from_pattern(std::string_view pattern, const ChatSpecialTokens& tokens) {
  ChatTemplate t("pattern", Kind::pattern, tokens);
  std::string text;
  bool has_prompt = false;
  const auto flush = [&] {
    if (!text.empty()) t.pattern_.push_back({PatternPiece::Type::text, std::move(text)});
    text.clear();
  };
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '{' && i + 1 < pattern.size() && pattern[i + 1] == '{') {
      text += '{';
      ++i;
    } else if (c == '}' && i + 1 < pattern.size() && pattern[i + 1] == '}') {
      text += '}';
      ++i;
    } else if (c == '}') {
      R1_THROW(
          "chat template pattern: unmatched '}}' at offset {} (write '}}}}' for a literal brace)",
          i);
    } else if (c == '{') {
      const size_t close = pattern.find('}', i);
      if (close == std::string_view::npos)
        R1_THROW(
            "chat template pattern: unmatched '{{' at offset {} (write '{{{{' for a literal "
            "brace)",
            i);
      const std::string_view key = pattern.substr(i + 1, close - i - 1);
      PatternPiece::Type type;
      if (key == "prompt") {
        type = PatternPiece::Type::prompt;
        has_prompt = true;
      } else if (key == "system") {
        type = PatternPiece::Type::system;
      } else if (key == "bos") {
        type = PatternPiece::Type::bos;
      } else if (key == "eos") {
        type = PatternPiece::Type::eos;
      } else {
        R1_THROW(
            "chat template pattern: unknown placeholder '{{{}}}' at offset {} (known: {{prompt}}, "
            "{{system}}, {{bos}}, {{eos}}; '{{{{' and '}}}}' are literal braces)",
            key, i);
      }
      flush();
      t.pattern_.push_back({type, {}});
      i = close;
    } else {
      text += c;
    }
  }
  flush();
  if (!has_prompt) R1_THROW("chat template pattern: no {{prompt}} placeholder in \"{}\"", pattern);
  return t;
}

ChatTemplate ChatTemplate::from_jinja(std::string_view source, const ChatSpecialTokens& tokens,
                                      std::string_view label) {
  const std::string h = R1_FORMAT("{:016x}", fnv1a64(normalize_jinja(source, label)));
  for (const auto& k : kKnownJinja)
    if (k.hash == h) return builtin(k.name, tokens);
  R1_THROW(
      "{}: unknown chat template (normalised hash {}); r1kit renders only its built-in templates, "
      "so pass --template NAME to pick one (built-in: {}) or give the recipe a pattern template",
      label, h, builtin_list());
}

namespace {

// bos_token / eos_token as tokenizer_config.json writes them: a string, an AddedToken object
// {"content": ...}, or null.
std::optional<std::string> special_token_text(const Json& j, std::string_view key,
                                              std::string_view where) {
  const auto it = j.find(std::string(key));
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return get_required<std::string>(*it, "content", json_where(where, key));
  R1_THROW("{}: field '{}' must be a string or an object with \"content\", got {}", where, key,
           json_type_name(*it));
}

}  // namespace

namespace {

// The special tokens a model directory defines: tokenizer_config.json first, then
// special_tokens_map.json; a key present with null counts as defined (as "no such token").
struct DirTokens {
  ChatSpecialTokens tokens;
  bool have_bos = false;
  bool have_eos = false;
};
DirTokens read_dir_tokens(const fs::path& d) {
  DirTokens out;
  std::error_code ec;
  for (const char* file : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const std::string path = (d / file).string();
    if (!fs::is_regular_file(path, ec)) continue;
    const Json j = read_json_file(path);
    require_object(j, path);
    if (!out.have_bos && j.contains("bos_token")) {
      out.tokens.bos = special_token_text(j, "bos_token", path);
      out.have_bos = true;
    }
    if (!out.have_eos && j.contains("eos_token")) {
      out.tokens.eos = special_token_text(j, "eos_token", path);
      out.have_eos = true;
    }
  }
  return out;
}

}  // namespace

ChatSpecialTokens read_chat_special_tokens(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) R1_THROW("{}: not a model directory", dir);
  return read_dir_tokens(dir).tokens;
}

ChatTemplate ChatTemplate::for_model(const std::string& dir, std::string_view name) {
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) R1_THROW("{}: not a model directory", dir);
  const DirTokens dt = read_dir_tokens(d);
  const ChatSpecialTokens& tokens = dt.tokens;
  const std::string config_path = (d / "tokenizer_config.json").string();
  Json config;
  if (fs::is_regular_file(config_path, ec)) config = read_json_file(config_path);
  if (!name.empty()) {
    // The template's own special tokens, replaced by those the directory defines.
    ChatSpecialTokens t = builtin(name).tokens_;
    if (dt.have_bos) t.bos = tokens.bos;
    if (dt.have_eos) t.eos = tokens.eos;
    return builtin(name, t);
  }
  // transformers' precedence: chat_template.jinja, chat_template.json, tokenizer_config.json.
  const std::string jinja_path = (d / "chat_template.jinja").string();
  if (fs::is_regular_file(jinja_path, ec))
    return from_jinja(read_file(jinja_path), tokens, jinja_path);
  const std::string json_path = (d / "chat_template.json").string();
  if (fs::is_regular_file(json_path, ec)) {
    const Json j = read_json_file(json_path);
    require_object(j, json_path);
    return from_jinja(get_required<std::string>(j, "chat_template", json_path), tokens, json_path);
  }
  if (config.is_object() && config.contains("chat_template") &&
      !config.at("chat_template").is_null()) {
    const Json& ct = config.at("chat_template");
    if (ct.is_string()) return from_jinja(ct.get<std::string>(), tokens, config_path);
    if (ct.is_array()) {
      for (size_t i = 0; i < ct.size(); ++i) {
        const std::string w = json_where(json_where(config_path, "chat_template"), i);
        require_object(ct[i], w);
        if (get_required<std::string>(ct[i], "name", w) == "default")
          return from_jinja(get_required<std::string>(ct[i], "template", w), tokens,
                            config_path + " (chat_template \"default\")");
      }
      R1_THROW(
          "{}: chat_template lists no template named \"default\"; pass --template NAME "
          "(built-in: {})",
          config_path, builtin_list());
    }
    R1_THROW("{}: field 'chat_template' must be a string or a list of {{name, template}}, got {}",
             config_path, json_type_name(ct));
  }
  R1_THROW(
      "{}: no chat template (no chat_template.jinja, and tokenizer_config.json has no "
      "chat_template); pass --template NAME (built-in: {})",
      dir, builtin_list());
}

// --- Public: rendering
// -----------------------------------------------------------------------------

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) const {
  ChatRenderOptions opts;
  opts.add_generation_prompt = add_generation_prompt;
  return render(messages, opts);
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 const ChatRenderOptions& opts) const {
  if (kind_ == Kind::pattern) return render_pattern(messages);
  check_messages(messages, name_);
  const std::string bos = tokens_.bos.value_or("");  // an undefined bos_token renders as ""
  std::string out;
  switch (kind_) {
    case Kind::deepseek_r1:
    case Kind::deepseek_r1_2501:
    case Kind::deepseek_v3:
    case Kind::r1_distill_qwen:
    case Kind::r1_distill_qwen_llamacpp: {
      // {{bos_token}}{{ns.system_prompt}}, then user and assistant turns; system messages only
      // feed the system prompt.
      const bool distill =
          kind_ == Kind::r1_distill_qwen || kind_ == Kind::r1_distill_qwen_llamacpp;
      std::string system;
      if (distill) {
        for (const auto& m : messages)
          if (m.role == "system") system = m.content;  // the last one wins
      } else {
        system = deepseek_joined_system(messages);
      }
      out = bos + system;
      for (const auto& m : messages) {
        if (m.role == "user") {
          out += "<｜User｜>" + m.content;
        } else if (m.role == "assistant") {
          // V3 keeps the content; R1 and the distills keep what follows the last "</think>".
          const std::string content =
              kind_ == Kind::deepseek_v3 ? m.content : after_last(m.content, "</think>");
          out += "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>";
        }
      }
      if (opts.add_generation_prompt) {
        switch (kind_) {
          case Kind::deepseek_v3:
          case Kind::deepseek_r1_2501:
            out += "<｜Assistant｜>";
            break;
          case Kind::r1_distill_qwen_llamacpp:
            out += "<｜Assistant｜><think>\n";
            if (!opts.enable_thinking.value_or(false)) out += "</think>";
            break;
          default:
            out += "<｜Assistant｜><think>\n";
            break;
        }
      }
      return out;
    }
    case Kind::qwen25: {
      if (messages[0].role == "system") {
        out = "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";
      } else {
        out = "<|im_start|>system\n" + std::string(kQwenDefaultSystem) + "<|im_end|>\n";
      }
      for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "system" && i == 0) continue;
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      }
      if (opts.add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    }
    case Kind::qwen3: {
      if (messages[0].role == "system")
        out = "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";
      // The last user message that is not a tool response ("<tool_response>…</tool_response>").
      size_t last_query = messages.size() - 1;
      for (size_t k = messages.size(); k-- > 0;) {
        const auto& m = messages[k];
        if (m.role == "user" && !(starts_with(m.content, "<tool_response>") &&
                                  ends_with(m.content, "</tool_response>"))) {
          last_query = k;
          break;
        }
      }
      for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "user" || (m.role == "system" && i > 0)) {
          out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        } else if (m.role == "assistant") {
          std::string content = m.content;
          std::string reasoning;
          if (m.reasoning) {
            reasoning = *m.reasoning;
          } else if (m.content.find("</think>") != std::string::npos) {
            content = lstrip_nl(after_last(m.content, "</think>"));
            reasoning =
                lstrip_nl(after_last(rstrip_nl(before_first(m.content, "</think>")), "<think>"));
          }
          const bool last = i + 1 == messages.size();
          if (i > last_query && (last || !reasoning.empty())) {
            out += "<|im_start|>assistant\n<think>\n" + strip_nl(reasoning) + "\n</think>\n\n" +
                   lstrip_nl(content);
          } else {
            out += "<|im_start|>assistant\n" + content;
          }
          out += "<|im_end|>\n";
        }
      }
      if (opts.add_generation_prompt) {
        out += "<|im_start|>assistant\n";
        if (opts.enable_thinking == false) out += "<think>\n\n</think>\n\n";
      }
      return out;
    }
    case Kind::pattern:
      break;
  }
  return out;
}

std::string ChatTemplate::render_pattern(const std::vector<ChatMessage>& messages) const {
  const std::string& label = name_;
  size_t i = 0;
  const ChatMessage* system = nullptr;
  const ChatMessage* user = nullptr;
  const ChatMessage* assistant = nullptr;
  if (i < messages.size() && messages[i].role == "system") system = &messages[i++];
  if (i < messages.size() && messages[i].role == "user") user = &messages[i++];
  if (i < messages.size() && messages[i].role == "assistant") assistant = &messages[i++];
  if (!user || i != messages.size())
    R1_THROW(
        "[chat template {}] a pattern template renders one exchange: an optional system message, "
        "one user message and optionally one assistant message (got {} messages{})",
        label, messages.size(),
        messages.empty() ? "" : R1_FORMAT(", roles starting {}", messages[0].role));
  std::string out;
  bool used_system = false;
  for (const auto& p : pattern_) {
    switch (p.type) {
      case PatternPiece::Type::text:
        out += p.text;
        break;
      case PatternPiece::Type::prompt:
        out += user->content;
        break;
      case PatternPiece::Type::system:
        used_system = true;
        if (system) out += system->content;
        break;
      case PatternPiece::Type::bos:
        if (!tokens_.bos)
          R1_THROW("[chat template {}] the pattern uses {{bos}} but the tokenizer has no BOS token",
                   label);
        out += *tokens_.bos;
        break;
      case PatternPiece::Type::eos:
        if (!tokens_.eos)
          R1_THROW("[chat template {}] the pattern uses {{eos}} but the tokenizer has no EOS token",
                   label);
        out += *tokens_.eos;
        break;
    }
  }
  if (system && !used_system)
    R1_THROW("[chat template {}] a system message was given but the pattern has no {{system}}",
             label);
  if (assistant) out += assistant->content;
  return out;
}

// --- Public: encoding
// ------------------------------------------------------------------------------

namespace {

// Special-token text recognised, BOS/EOS not added, where EncodeOptions can say so.
EncodeOptions chat_encode_options() {
  EncodeOptions o;
  o.add_special_tokens = true;
  if constexpr (requires { o.add_bos_eos; }) o.add_bos_eos = false;
  return o;
}

}  // namespace

std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, std::string_view rendered) {
  std::vector<int32_t> ids = tok.encode(rendered, chat_encode_options());
  // Tokenizers that add BOS/EOS anyway: keep only the BOS the text starts with and the EOS it ends
  // with.
  if (const auto bos = tok.bos_id()) {
    const std::string bos_text = tok.id_to_token(*bos);
    size_t in_text = 0;
    if (!bos_text.empty())
      for (std::string_view r = rendered; r.starts_with(bos_text); r.remove_prefix(bos_text.size()))
        ++in_text;
    size_t in_ids = 0;
    while (in_ids < ids.size() && ids[in_ids] == *bos) ++in_ids;
    if (in_ids > in_text)
      ids.erase(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(in_ids - in_text));
  }
  const std::vector<int32_t> eos = tok.eos_ids();
  const auto is_eos = [&](int32_t id) {
    return std::find(eos.begin(), eos.end(), id) != eos.end();
  };
  size_t eos_in_text = 0;
  for (std::string_view r = rendered;;) {
    bool found = false;
    for (const int32_t e : eos) {
      const std::string t = tok.id_to_token(e);
      if (!t.empty() && r.ends_with(t)) {
        r.remove_suffix(t.size());
        ++eos_in_text;
        found = true;
        break;
      }
    }
    if (!found) break;
  }
  size_t eos_in_ids = 0;
  while (eos_in_ids < ids.size() && is_eos(ids[ids.size() - 1 - eos_in_ids])) ++eos_in_ids;
  for (; eos_in_ids > eos_in_text; --eos_in_ids) ids.pop_back();
  return ids;
}

}  // namespace r1kit::policy

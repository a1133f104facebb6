// Chat templates: every built-in renderer against transformers' apply_chat_template on the Jinja
// originals (tests/policy/data/chat_templates/fixtures.json, made by
// tests/golden/make_chat_template_fixtures.py), byte for byte; recognition of the originals and of
// rewritten-but-equivalent sources; the R1-Zero text; the pattern language; model directories;
// messages files; BOS-aware encoding.
#include "policy/chat_template.h"

#include <filesystem>
#include <random>

#include "core/fs.h"
#include "policy/sp_tokenizer.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::expect_error_contains;
using testing::ScratchDir;

std::string data(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/chat_templates/" + name;
}

const Json& fixtures() {
  static const Json j = read_json_file(data("fixtures.json"));
  return j;
}

std::vector<ChatMessage> conversation(const std::string& name) {
  return parse_chat_messages(fixtures().at("conversations").at(name), "fixtures.json: " + name);
}

ChatSpecialTokens template_tokens(const Json& t) {
  ChatSpecialTokens tokens;
  if (!t.at("bos_token").is_null()) tokens.bos = t.at("bos_token").get<std::string>();
  if (!t.at("eos_token").is_null()) tokens.eos = t.at("eos_token").get<std::string>();
  return tokens;
}

TEST(ChatTemplate, MatchesTransformersByteForByte) {
  std::map<std::string, Json> templates;
  for (const auto& t : fixtures().at("templates")) templates[t.at("file").get<std::string>()] = t;
  ASSERT_EQ(templates.size(), 7u);
  std::map<std::string, int> per_template;
  for (const auto& c : fixtures().at("cases")) {
    const std::string file = c.at("template").get<std::string>();
    const Json& t = templates.at(file);
    const ChatSpecialTokens tokens = template_tokens(t);
    const ChatTemplate recognised = ChatTemplate::from_jinja(read_file(data(file)), tokens, file);
    const ChatTemplate named = ChatTemplate::builtin(t.at("name").get<std::string>(), tokens);
    EXPECT_EQ(recognised.name(), t.at("name").get<std::string>());
    ChatRenderOptions opts;
    opts.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
    if (c.contains("enable_thinking")) opts.enable_thinking = c.at("enable_thinking").get<bool>();
    const auto messages = conversation(c.at("conversation").get<std::string>());
    const std::string expected = c.at("text").get<std::string>();
    const std::string what =
        file + " / " + c.at("conversation").get<std::string>() +
        " / gen=" + std::to_string(opts.add_generation_prompt) +
        (c.contains("enable_thinking") ? " / thinking=" + c["enable_thinking"].dump() : "");
    EXPECT_EQ(recognised.render(messages, opts), expected) << what;
    EXPECT_EQ(named.render(messages, opts), expected) << what;
    ++per_template[file];
  }
  for (const auto& [file, n] : per_template) EXPECT_GE(n, 18) << file;
}

TEST(ChatTemplate, DeepseekR1Behaviour) {
  const ChatTemplate r1 = ChatTemplate::builtin("deepseek-r1");
  const std::vector<ChatMessage> m = {
      {"user", "Hi", {}},
      {"assistant", "<think>\nhidden\n</think>\n\nHello", {}},
      {"user", "2+2?", {}},
  };
  EXPECT_EQ(r1.render(m, true),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>\n\nHello<｜end▁of▁sentence｜>"
            "<｜User｜>2+2?<｜Assistant｜><think>\n");
  EXPECT_EQ(ChatTemplate::builtin("deepseek-v3").render(m, true),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>\nhidden\n</think>\n\nHello"
            "<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>");
}

TEST(ChatTemplate, R1ZeroIsThePapersTemplate) {
  const ChatTemplate z = ChatTemplate::builtin("r1-zero");
  EXPECT_EQ(z.name(), "r1-zero");
  const std::string expected =
      "A conversation between User and Assistant. The user asks a question, and the Assistant "
      "solves it. The assistant first thinks about the reasoning process in the mind and then "
      "provides the user with the answer. The reasoning process and answer are enclosed within "
      "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
      "process here </think> <answer> answer here </answer>. User: What is 2 + 3 * 4?. "
      "Assistant:";
  const std::vector<ChatMessage> q = {{"user", "What is 2 + 3 * 4?", {}}};
  EXPECT_EQ(z.render(q, true), expected);
  EXPECT_EQ(z.render(q, false), expected);
  EXPECT_EQ(
      z.render({q[0], {"assistant", " <think> 12 + 2 </think> <answer> 14 </answer>", {}}}, false),
      expected + " <think> 12 + 2 </think> <answer> 14 </answer>");
  expect_error_contains(
      [&] {
        z.render({{"system", "s", {}}, q[0]}, true);
      },
      {"r1-zero", "system message", "{system}"});
  expect_error_contains([&] { z.render({q[0], q[0]}, true); }, {"one user message"});
  expect_error_contains([&] { z.render({}, true); }, {"one user message"});
}

TEST(ChatTemplate, Patterns) {
  ChatSpecialTokens tokens;
  tokens.bos = "<s>";
  const ChatTemplate p =
      ChatTemplate::from_pattern("{bos}[{system}] {{literal}} Q: {prompt}\nA:", tokens);
  EXPECT_EQ(p.name(), "pattern");
  EXPECT_EQ(p.render({{"system", "Be brief.", {}}, {"user", "Why?", {}}}, true),
            "<s>[Be brief.] {literal} Q: Why?\nA:");
  EXPECT_EQ(p.render({{"user", "Why?", {}}}, true), "<s>[] {literal} Q: Why?\nA:");
  EXPECT_EQ(p.render({{"user", "Why?", {}}, {"assistant", " Because.", {}}}, false),
            "<s>[] {literal} Q: Why?\nA: Because.");
  expect_error_contains([] { ChatTemplate::from_pattern("Q: {question}"); },
                        {"unknown placeholder '{question}'", "offset 3", "{prompt}"});
  expect_error_contains([] { ChatTemplate::from_pattern("no prompt here"); }, {"no {prompt}"});
  expect_error_contains([] { ChatTemplate::from_pattern("{prompt} {"); }, {"unmatched '{'", "9"});
  expect_error_contains([] { ChatTemplate::from_pattern("{prompt} }"); }, {"unmatched '}'", "9"});
  expect_error_contains(
      [] {
        ChatTemplate::from_pattern("{eos}{prompt}").render({{"user", "x", {}}}, true);
      },
      {"{eos}", "no EOS"});
  expect_error_contains(
      [] {
        ChatTemplate::from_pattern("{prompt}")
            .render({{"system", "x", {}}, {"user", "y", {}}}, true);
      },
      {"no {system}"});
}

TEST(ChatTemplate, RecognisesEquivalentSources) {
  int equivalent = 0, different = 0;
  for (const auto& v : fixtures().at("variants")) {
    const std::string file = v.at("file").get<std::string>();
    const std::string src = read_file(data(file));
    if (v.at("name").is_null()) {
      EXPECT_FALSE(match_builtin_jinja(src).has_value()) << file;
      ++different;
    } else {
      EXPECT_EQ(match_builtin_jinja(src), v.at("name").get<std::string>()) << file;
      ++equivalent;
    }
  }
  EXPECT_GE(equivalent, 4);
  EXPECT_GE(different, 1);
  // jinja2's whitespace rules with transformers' settings.
  EXPECT_EQ(normalize_jinja_template("{% if x %}\n  a\n{% endif %}"),
            normalize_jinja_template("{% if x %}  a\n{% endif %}"));  // trim_blocks
  EXPECT_EQ(normalize_jinja_template("b\n   {% if x %}a{% endif %}"),
            normalize_jinja_template("b\n{% if x %}a{% endif %}"));  // lstrip_blocks
  EXPECT_NE(normalize_jinja_template("b\n   {{ x }}"), normalize_jinja_template("b\n{{ x }}"));
  EXPECT_EQ(normalize_jinja_template("a  \n {{- x -}} \n b"), normalize_jinja_template("a{{x}}b"));
  EXPECT_EQ(normalize_jinja_template("{{ x }}\n"), normalize_jinja_template("{{ x }}"));
  EXPECT_NE(normalize_jinja_template("{{ x }}\n\n"), normalize_jinja_template("{{ x }}"));
  EXPECT_EQ(normalize_jinja_template("{{ 'a\\n' + b }}"),
            normalize_jinja_template("{{\"a\\n\"+b}}"));
  EXPECT_NE(normalize_jinja_template("{{ not x }}"), normalize_jinja_template("{{ notx }}"));
  EXPECT_EQ(normalize_jinja_template("{# note #}{{ x }}"), normalize_jinja_template("{{ x }}"));
  EXPECT_EQ(normalize_jinja_template("{{ '}}' }}"), normalize_jinja_template("{{\"}}\"}}"));
  EXPECT_EQ(jinja_template_hash("{{ x }}").size(), 16u);
  expect_error_contains([] { normalize_jinja_template("{{ x "); }, {"unterminated"});
}

TEST(ChatTemplate, ModelDirectories) {
  const ChatTemplate v3 = ChatTemplate::for_model(data("models/deepseek-v3"));
  EXPECT_EQ(v3.name(), "deepseek-v3");
  EXPECT_EQ(v3.special_tokens().bos, "<｜begin▁of▁sentence｜>");  // from an AddedToken object
  EXPECT_EQ(ChatTemplate::for_model(data("models/qwen3")).name(), "qwen3");
  const ChatTemplate distill = ChatTemplate::for_model(data("models/r1-distill-qwen"));
  EXPECT_EQ(distill.name(), "r1-distill-qwen");  // from chat_template.jinja
  EXPECT_EQ(distill.render({{"user", "x", {}}}, true),
            "<｜begin▁of▁sentence｜><｜User｜>x<｜Assistant｜><think>\n");
  // By name: the directory's special tokens replace the template's own.
  const ChatTemplate named = ChatTemplate::for_model(data("models/no-template"), "deepseek-r1");
  EXPECT_EQ(named.render({{"user", "x", {}}}, false), "<s><｜User｜>x");
  EXPECT_EQ(ChatTemplate::for_model(data("models/qwen3"), "deepseek-r1")
                .render({{"user", "x", {}}}, false),
            "<｜User｜>x");  // Qwen3's tokenizer_config.json has "bos_token": null
  expect_error_contains([] { ChatTemplate::for_model(data("models/unknown")); },
                        {data("models/unknown/tokenizer_config.json"), "unknown chat template",
                         "normalised hash", "--template NAME", "deepseek-r1"});
  expect_error_contains([] { ChatTemplate::for_model(data("models/no-template")); },
                        {data("models/no-template"), "no chat template", "--template NAME"});
  expect_error_contains([] { ChatTemplate::for_model(data("models/no-template"), "chatml"); },
                        {"unknown chat template 'chatml'", "qwen2.5"});
  expect_error_contains([] { ChatTemplate::for_model(data("no-such-dir")); },
                        {"no-such-dir", "not a model directory"});
  EXPECT_EQ(read_chat_special_tokens(data("models/qwen3")).eos, "<|im_end|>");

  // A list of named templates, as some tokenizer_config.json files hold.
  ScratchDir dir;
  Json list = Json::array();
  list.push_back({{"name", "tool_use"}, {"template", "{{ tools }}"}});
  list.push_back({{"name", "default"}, {"template", read_file(data("qwen2.5-instruct.jinja"))}});
  write_json_file_atomic(dir.file("tokenizer_config.json"), {{"chat_template", list}});
  EXPECT_EQ(ChatTemplate::for_model(dir.str()).name(), "qwen2.5");
  write_json_file_atomic(dir.file("tokenizer_config.json"), {{"chat_template", 5}});
  expect_error_contains([&] { ChatTemplate::for_model(dir.str()); },
                        {"tokenizer_config.json", "chat_template", "string"});
}

TEST(ChatTemplate, Messages) {
  const auto m = read_chat_messages(data("messages_multi_turn.json"));
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[0].role, "system");
  EXPECT_EQ(read_chat_messages(data("messages_single.json")).size(), 1u);
  const auto r = parse_chat_messages(
      Json::parse(R"([{"role":"assistant","content":"a","reasoning_content":"r"},
                      {"role":"assistant","content":"b","reasoning":null}])"),
      "x.json");
  EXPECT_EQ(r[0].reasoning, "r");
  EXPECT_FALSE(r[1].reasoning.has_value());
  expect_error_contains(
      [] { parse_chat_messages(Json::parse(R"([{"role":"user","contents":"x"}])"), "m.json"); },
      {"m.json[0]", "contents", "did you mean 'content'"});
  expect_error_contains([] { parse_chat_messages(Json::parse(R"([{"content":"x"}])"), "m.json"); },
                        {"m.json[0]", "role"});
  expect_error_contains(
      [] { parse_chat_messages(Json::parse(R"([{"role":"user","content":7}])"), "m.json"); },
      {"m.json[0]", "content", "string"});
  expect_error_contains(
      [] {
        parse_chat_messages(
            Json::parse(
                R"([{"role":"user","content":"x","reasoning":"a","reasoning_content":"b"}])"),
            "m.json");
      },
      {"not both"});
  expect_error_contains([] { parse_chat_messages(Json::parse(R"({"msgs":[]})"), "m.json"); },
                        {"msgs", "messages"});
  expect_error_contains([] { parse_chat_messages(Json::parse("3"), "m.json"); },
                        {"m.json", "array"});
  expect_error_contains(
      [] {
        ChatTemplate::builtin("qwen2.5").render({{"tool", "42", {}}}, true);
      },
      {"role 'tool'", "no tool"});
  expect_error_contains([] { ChatTemplate::builtin("deepseek-r1").render({}, true); },
                        {"no messages"});
}

// A tokenizer that always adds BOS ("<B>") and recognises its text, like DeepSeek's.
class BosTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts) const override {
    std::vector<int32_t> ids;
    if (opts.add_special_tokens) ids.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (opts.add_special_tokens && text.substr(i).starts_with("<B>")) {
        ids.push_back(0);
        i += 2;
      } else {
        ids.push_back(static_cast<unsigned char>(text[i]));
      }
    }
    return ids;
  }
  std::string decode(const std::vector<int32_t>&, const DecodeOptions&) const override {
    return {};
  }
  int64_t vocab_size() const override { return 256; }
  std::string id_to_token(int32_t id) const override {
    return id == 0 ? "<B>" : std::string(1, static_cast<char>(id));
  }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  bool is_special(int32_t id) const override { return id == 0; }
  std::optional<int32_t> bos_id() const override { return 0; }
  std::vector<int32_t> eos_ids() const override { return {}; }
  std::optional<int32_t> pad_id() const override { return std::nullopt; }
  std::string token_bytes(int32_t id) const override { return id_to_token(id); }
};

TEST(ChatTemplate, EncodeWithoutDoubleBos) {
  const BosTokenizer tok;
  EXPECT_EQ(encode_chat_prompt(tok, "<B>hi"), (std::vector<int32_t>{0, 'h', 'i'}));
  EXPECT_EQ(encode_chat_prompt(tok, "hi"), (std::vector<int32_t>{'h', 'i'}));
  EXPECT_EQ(encode_chat_prompt(tok, "<B><B>hi"), (std::vector<int32_t>{0, 0, 'h', 'i'}));
  EXPECT_EQ(encode_chat_prompt(tok, "h<B>"), (std::vector<int32_t>{'h', 0}));
  // A SentencePiece tokenizer that adds BOS, and a pattern that writes it.
  const auto sp = load_sentencepiece_tokenizer(std::string(R1KIT_SOURCE_DIR) +
                                               "/tests/policy/data/stories260K_tok/tok512.model");
  ChatSpecialTokens tokens;
  tokens.bos = "<s>";
  const std::string text =
      ChatTemplate::from_pattern("{bos}{prompt}", tokens).render({{"user", "Once upon", {}}}, true);
  const auto ids = encode_chat_prompt(*sp, text);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_NE(ids[1], 1);
  EXPECT_EQ(sp->decode(ids, {.skip_special_tokens = true}), "Once upon");
  // A tokenizer that appends EOS (add_eos_token): not after a prompt, kept when the text has it.
  ScratchDir dir;
  write_file_atomic(
      dir.file("tokenizer.model"),
      read_file(std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/stories260K_tok/tok512.model"));
  write_file_atomic(dir.file("tokenizer_config.json"), R"({"add_eos_token": true})");
  const auto sp_eos = load_sentencepiece_tokenizer(dir.str());
  ASSERT_EQ(sp_eos->encode("Once").back(), 2);
  const auto prompt = encode_chat_prompt(*sp_eos, "<s>Once");
  EXPECT_EQ(prompt.front(), 1);
  EXPECT_NE(prompt.back(), 2);
  const auto with_eos = encode_chat_prompt(*sp_eos, "<s>Once</s>");
  ASSERT_GE(with_eos.size(), 3u);
  EXPECT_EQ(with_eos.back(), 2);
  EXPECT_NE(with_eos[with_eos.size() - 2], 2);
}

// The normaliser on arbitrary text (and on damaged real templates) returns or throws r1kit::Error.
TEST(ChatTemplate, NormaliserNeverCrashes) {
  std::mt19937_64 rng(9);
  const std::string src = read_file(data("qwen3.jinja"));
  const std::string alphabet = "{}%#-+'\"\\ \n\tab(){}[]";
  for (int trial = 0; trial < 500; ++trial) {
    std::string s;
    if (trial % 2) {
      s = src.substr(0, rng() % src.size());
    } else {
      s.resize(rng() % 40);
      for (auto& c : s) c = alphabet[rng() % alphabet.size()];
    }
    try {
      (void)jinja_template_hash(s);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("unterminated"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace r1kit::policy

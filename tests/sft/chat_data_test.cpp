// SFT rows to tokens and loss masks (sft/chat_data.h): the R1 conversation masked token by token
// (prompt with DeepSeek-R1's generation prompt untrained, reasoning + answer + EOS trained),
// multi-turn ChatML with every assistant turn, the last turn only or all tokens, a template that
// rewrites earlier turns refused for per-turn masks, the row shapes, config errors, and a JSONL
// file with bad rows skipped and counted (or errors in strict mode), over-long rows dropped,
// truncated or refused; plain-text rows (pretraining documents) with every token trained and no
// chat template needed.
#include "sft/chat_data.h"

#include <fstream>

#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace r1kit::sft {
namespace {

using policy::ChatMessage;
using policy::ChatTemplate;
using policy::Tokenizer;
using testing::expect_error_contains;

std::string tokenizer_dir(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/" + name;
}

const Tokenizer& deepseek_tok() {
  static const auto t = Tokenizer::load(tokenizer_dir("deepseek-v3-mini"));
  return *t;
}
const Tokenizer& qwen_tok() {
  static const auto t = Tokenizer::load(tokenizer_dir("qwen3-mini"));
  return *t;
}

ChatMessage msg(std::string role, std::string content) {
  return {std::move(role), std::move(content), std::nullopt};
}

// Maximal runs of mask == 1, decoded.
std::vector<std::string> target_runs(const Example& ex, const Tokenizer& tok) {
  std::vector<std::string> runs;
  std::vector<int32_t> cur;
  for (size_t i = 0; i <= ex.tokens.size(); ++i) {
    if (i < ex.tokens.size() && ex.loss_mask[i]) {
      cur.push_back(ex.tokens[i]);
    } else if (!cur.empty()) {
      runs.push_back(tok.decode(cur));
      cur.clear();
    }
  }
  return runs;
}

TEST(ChatData, R1ConversationMaskedTokenByToken) {
  const ChatTemplate chat = ChatTemplate::builtin("deepseek-r1");
  const Tokenizer& tok = deepseek_tok();
  const std::vector<ChatMessage> m = {
      msg("user", "What is 2 + 2?"),
      msg("assistant", "<think>\nTwo plus two.\n</think>\n<answer>4</answer>")};
  const Example ex = encode_conversation(m, chat, tok, LossOn::assistant, "row");
  const std::string prompt = chat.render({m[0]}, true);
  ASSERT_TRUE(prompt.ends_with("<｜Assistant｜><think>\n")) << prompt;
  // The completion as the model writes it after the generation prompt: the think block already
  // opened, so "<think>\n" is not repeated; then the end of the turn.
  const std::string completion = "Two plus two.\n</think>\n<answer>4</answer><｜end▁of▁sentence｜>";
  const std::vector<int32_t> p_ids = policy::encode_chat_prompt(tok, prompt);
  const std::vector<int32_t> c_ids = policy::encode_chat_prompt(tok, completion);
  std::vector<int32_t> want = p_ids;
  want.insert(want.end(), c_ids.begin(), c_ids.end());
  ASSERT_EQ(ex.tokens, want);
  for (size_t i = 0; i < ex.tokens.size(); ++i)
    EXPECT_EQ(ex.loss_mask[i], i >= p_ids.size() ? 1 : 0)
        << "token " << i << " '" << tok.decode({ex.tokens[i]}) << "'";
  EXPECT_EQ(ex.tokens.front(), *tok.bos_id());  // one BOS, from the template's text
  EXPECT_EQ(ex.tokens.back(), tok.eos_ids().at(0));
  EXPECT_EQ(target_runs(ex, tok), std::vector<std::string>{completion});
  EXPECT_EQ(ex.targets(), static_cast<int64_t>(c_ids.size()));
  // A single turn: last_turn marks the same tokens; all marks everything but the first.
  const Example last = encode_conversation(m, chat, tok, LossOn::last_turn, "row");
  EXPECT_EQ(last.tokens, ex.tokens);
  EXPECT_EQ(last.loss_mask, ex.loss_mask);
  const Example all = encode_conversation(m, chat, tok, LossOn::all, "row");
  EXPECT_EQ(all.tokens, ex.tokens);
  EXPECT_EQ(all.loss_mask[0], 0);
  EXPECT_EQ(all.targets(), static_cast<int64_t>(ex.tokens.size()) - 1);
}

TEST(ChatData, SeparateReasoningBecomesTheThinkBlock) {
  const ChatTemplate chat = ChatTemplate::builtin("qwen2.5");
  ChatMessage a = msg("assistant", "4");
  a.reasoning = "Two plus two.";
  const Example ex =
      encode_conversation({msg("user", "2 + 2?"), a}, chat, qwen_tok(), LossOn::assistant, "r");
  EXPECT_EQ(target_runs(ex, qwen_tok()),
            std::vector<std::string>{"<think>\nTwo plus two.\n</think>\n\n4<|im_end|>"});
}

TEST(ChatData, MultiTurnChatMlMasksEachAssistantTurn) {
  const ChatTemplate chat = ChatTemplate::builtin("qwen2.5");
  const Tokenizer& tok = qwen_tok();
  const std::vector<ChatMessage> m = {msg("system", "Be brief."), msg("user", "Hi"),
                                      msg("assistant", "Hello."), msg("user", "2 + 2?"),
                                      msg("assistant", "4")};
  const Example ex = encode_conversation(m, chat, tok, LossOn::assistant, "row");
  // The earlier turn's span as the template renders it (its newline after <|im_end|> included),
  // then the final turn as generated.
  EXPECT_EQ(target_runs(ex, tok), (std::vector<std::string>{"Hello.<|im_end|>\n", "4<|im_end|>"}));
  std::string decoded = tok.decode(ex.tokens);
  EXPECT_EQ(decoded, chat.render({m.begin(), m.end() - 1}, true) + "4<|im_end|>");
  const Example last = encode_conversation(m, chat, tok, LossOn::last_turn, "row");
  EXPECT_EQ(last.tokens, ex.tokens);
  EXPECT_EQ(target_runs(last, tok), std::vector<std::string>{"4<|im_end|>"});
  const Example all = encode_conversation(m, chat, tok, LossOn::all, "row");
  EXPECT_EQ(all.targets(), static_cast<int64_t>(all.tokens.size()) - 1);
}

TEST(ChatData, TemplateThatRewritesEarlierTurnsNeedsLastTurn) {
  const ChatTemplate chat = ChatTemplate::builtin("deepseek-r1");
  const std::vector<ChatMessage> m = {msg("user", "a"), msg("assistant", "<think>x</think>y"),
                                      msg("user", "b"), msg("assistant", "<think>z</think>w")};
  expect_error_contains(
      [&] { encode_conversation(m, chat, deepseek_tok(), LossOn::assistant, "data.jsonl:7"); },
      {"data.jsonl:7", "assistant turn 1", "last_turn"});
  const Example ex = encode_conversation(m, chat, deepseek_tok(), LossOn::last_turn, "r");
  EXPECT_EQ(target_runs(ex, deepseek_tok()),
            std::vector<std::string>{"z</think>w<｜end▁of▁sentence｜>"});  // after "<think>\n"
}

TEST(ChatData, RowShapes) {
  DataConfig cfg;
  auto roles = [](const std::vector<ChatMessage>& m) {
    std::string s;
    for (const auto& x : m) s += x.role + ":" + x.content + ";";
    return s;
  };
  EXPECT_EQ(roles(row_messages(Json::parse(R"({"messages":[{"role":"user","content":"q"},
      {"role":"assistant","content":"a"}],"id":3})"),
                               cfg, "r")),
            "user:q;assistant:a;");
  EXPECT_EQ(roles(row_messages(Json{{"prompt", "q"}, {"completion", "a"}}, cfg, "r")),
            "user:q;assistant:a;");
  EXPECT_EQ(roles(row_messages(Json::parse(R"({"prompt":[{"role":"system","content":"s"},
      {"role":"user","content":"q"}],"completion":[{"role":"assistant","content":"a"}]})"),
                               cfg, "r")),
            "system:s;user:q;assistant:a;");
  EXPECT_EQ(roles(row_messages(Json{{"question", "q"}, {"answer", "a"}}, cfg, "r")),
            "user:q;assistant:a;");
  DataConfig named = DataConfig::from_json(
      Json::parse(R"({"format":"fields","prompt_field":"problem","completion_field":"solution",
                      "system_prompt":"Think."})"),
      "cfg");
  EXPECT_EQ(roles(row_messages(Json{{"problem", "q"}, {"solution", "a"}}, named, "r")),
            "system:Think.;user:q;assistant:a;");
  expect_error_contains(
      [&] {
        row_messages(Json{{"problem", "q"}}, named, "f.jsonl:2");
      },
      {"f.jsonl:2", "missing field 'solution'"});
  expect_error_contains(
      [&] {
        row_messages(Json{{"text", "x"}}, cfg, "f.jsonl:3");
      },
      {"f.jsonl:3", "not a conversation", "text"});
  expect_error_contains(
      [&] {
        row_messages(Json::parse(R"({"messages":[{"role":"assistant","content":"a"},
            {"role":"user","content":"q"}]})"),
                     cfg, "f.jsonl:4");
      },
      {"f.jsonl:4", "last message must be the assistant's"});
  expect_error_contains([&] { row_messages(Json::array(), cfg, "f.jsonl:5"); },
                        {"f.jsonl:5", "must be a JSON object"});
}

TEST(ChatData, ConfigErrorsNameTheKey) {
  expect_error_contains(
      [] {
        DataConfig::from_json(Json{{"los_on", "all"}}, "sft.json: data");
      },
      {"unknown key 'los_on'", "sft.json: data", "did you mean 'loss_on'"});
  expect_error_contains(
      [] {
        DataConfig::from_json(Json{{"loss_on", "assistants"}}, "sft.json: data");
      },
      {"'loss_on' must be one of", "did you mean \"assistant\""});
  expect_error_contains(
      [] {
        DataConfig::from_json(Json{{"max_tokens", 1}}, "d");
      },
      {"'max_tokens' must be at least 2"});
  const DataConfig c = DataConfig::from_json(
      Json{{"loss_on", "last_turn"}, {"over_long", "drop"}, {"max_tokens", 64}, {"strict", true}},
      "d");
  EXPECT_EQ(c.loss_on, LossOn::last_turn);
  EXPECT_EQ(c.over_long, OverLong::drop);
  EXPECT_EQ(c.max_tokens, 64);
  EXPECT_TRUE(c.strict);
}

class DatasetFile : public ::testing::Test {
 protected:
  testing::ScratchDir dir;
  std::string path;
  void SetUp() override {
    path = dir.file("data.jsonl");
    std::ofstream f(path, std::ios::binary);
    f << R"({"prompt":"What is 1 + 1?","completion":"2"})"
      << "\n"  // 1 ok
      << R"({"prompt":"broken", )"
      << "\n"  // 2 malformed
      << "\n"  // blank
      << R"({"question":"Name a colour.","answer":"Blue"})"
      << "\n"  // 4 ok
      << R"({"prompt":"q"})"
      << "\n"  // 5 bad row
      << R"({"prompt":"q","completion":""})"
      << "\n"  // 6 empty
      << R"({"prompt":"Count.","completion":"one two three four five six seven eight nine ten"})"
      << "\n"                                             // 7 long
      << "{\"prompt\":\"\xff\",\"completion\":\"x\"}\n";  // 8 not UTF-8
  }
  SftDataset load(DataConfig cfg) {
    return load_sft_dataset(path, cfg, ChatTemplate::builtin("qwen2.5"), qwen_tok());
  }
};

TEST_F(DatasetFile, BadRowsAreSkippedWithCountsAndLines) {
  DataConfig cfg;
  const SftDataset ds = load(cfg);
  EXPECT_EQ(ds.stats.rows, 7);
  EXPECT_EQ(ds.stats.examples, 3);
  ASSERT_EQ(ds.examples.size(), 3u);
  EXPECT_EQ(ds.examples[0].line, 1);
  EXPECT_EQ(ds.examples[1].line, 4);
  EXPECT_EQ(ds.examples[2].line, 7);
  const auto& sk = ds.stats.skipped;
  EXPECT_EQ(sk.at("malformed JSON").count, 2);
  EXPECT_EQ(sk.at("malformed JSON").lines, (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(sk.at("bad row").lines, std::vector<int64_t>{5});
  EXPECT_EQ(sk.at("empty assistant turn").lines, std::vector<int64_t>{6});
  EXPECT_EQ(ds.stats.num_skipped(), 4);
  EXPECT_NE(ds.stats.summary().find("skipped 2 malformed JSON (lines 2, 8)"), std::string::npos)
      << ds.stats.summary();
  EXPECT_EQ(ds.stats.to_json().at("skipped").at("bad row").at("count"), 1);
  int64_t targets = 0;
  for (const auto& e : ds.examples) targets += e.targets();
  EXPECT_EQ(ds.stats.targets, targets);
}

TEST_F(DatasetFile, StrictModeMakesTheFirstBadRowAnError) {
  DataConfig cfg;
  cfg.strict = true;
  expect_error_contains([&] { load(cfg); }, {"data.jsonl:2", "not valid JSON", "strict"});
}

TEST_F(DatasetFile, OverLongRowsDroppedTruncatedOrRefused) {
  DataConfig cfg;
  const int64_t long_len =
      static_cast<int64_t>(load(cfg).examples[2].tokens.size());  // line 7, the longest
  cfg.max_tokens = long_len - 3;
  cfg.over_long = OverLong::drop;
  SftDataset ds = load(cfg);
  EXPECT_EQ(ds.stats.skipped.at("over-long").lines, std::vector<int64_t>{7});
  EXPECT_EQ(ds.stats.examples, 2);
  cfg.over_long = OverLong::truncate;
  ds = load(cfg);
  EXPECT_EQ(ds.stats.truncated, 1);
  EXPECT_TRUE(ds.examples[2].truncated);
  EXPECT_EQ(static_cast<int64_t>(ds.examples[2].tokens.size()), long_len - 3);
  EXPECT_EQ(ds.examples[2].loss_mask.size(), ds.examples[2].tokens.size());
  cfg.over_long = OverLong::error;
  expect_error_contains([&] { load(cfg); }, {"data.jsonl:7", "more than max_tokens"});
  // Truncation that leaves no target drops the row.
  cfg.over_long = OverLong::truncate;
  cfg.max_tokens = 4;
  expect_error_contains([&] { load(cfg); }, {"no usable example", "no target left"});
}

TEST(ChatData, TextRowsAreWholeDocumentsWithEveryTokenTrained) {
  const Tokenizer& tok = qwen_tok();
  const std::string doc = "What is 47 + 85?\n<think>\n7 + 5 = 12\n</think>\n<answer>132</answer>";
  const Example ex = encode_text(doc, tok, "row");
  // The tokenizer's own encoding of the text, then its EOS; every token but the first a target.
  std::vector<int32_t> want = tok.encode(doc);
  ASSERT_FALSE(tok.eos_ids().empty());
  want.push_back(tok.eos_ids().front());
  EXPECT_EQ(ex.tokens, want);
  ASSERT_EQ(ex.loss_mask.size(), want.size());
  EXPECT_EQ(ex.loss_mask[0], 0);
  EXPECT_EQ(ex.targets(), static_cast<int64_t>(want.size()) - 1);
  // <think> is one token here, as the policy generates it.
  const auto think = tok.token_to_id("<think>");
  ASSERT_TRUE(think.has_value());
  EXPECT_NE(std::find(ex.tokens.begin(), ex.tokens.end(), *think), ex.tokens.end());
  // A text that already ends with EOS gets no second one.
  const std::string eos_text = tok.id_to_token(tok.eos_ids().front());
  EXPECT_EQ(encode_text(doc + eos_text, tok, "row").tokens, want);
  expect_error_contains([&] { encode_text("", tok, "f.jsonl:3"); }, {"f.jsonl:3", "empty text"});

  // Auto detection picks text only when no conversation shape applies; format text insists.
  DataConfig cfg;
  EXPECT_EQ(row_format(Json{{"text", "x"}}, cfg, "r"), RowFormat::text);
  EXPECT_EQ(row_format(Json{{"text", "x"}, {"question", "q"}, {"answer", "a"}}, cfg, "r"),
            RowFormat::question_answer);
  expect_error_contains(
      [&] {
        row_format(Json{{"body", "x"}}, cfg, "f.jsonl:2");
      },
      {"f.jsonl:2", "no known row shape", "'text'", "body"});
  cfg.text_field = "body";
  EXPECT_EQ(encode_row(Json{{"body", doc}}, cfg, nullptr, tok, "r").tokens, want);
  cfg.format = RowFormat::text;
  expect_error_contains(
      [&] {
        encode_row(Json{{"body", 7}}, cfg, nullptr, tok, "f.jsonl:4");
      },
      {"f.jsonl:4", "'body' must be a string", "integer"});
  expect_error_contains(
      [&] {
        encode_row(Json{{"text", doc}}, cfg, nullptr, tok, "f.jsonl:5");
      },
      {"f.jsonl:5", "missing field 'body'"});
  expect_error_contains(
      [&] {
        row_messages(Json{{"body", doc}}, cfg, "f.jsonl:6");
      },
      {"f.jsonl:6", "plain document"});
  // With no chat template loaded, a conversation row is an error, not a crash.
  cfg = DataConfig{};
  expect_error_contains(
      [&] {
        encode_row(Json{{"question", "q"}, {"answer", "a"}}, cfg, nullptr, tok, "f.jsonl:7");
      },
      {"f.jsonl:7", "no chat template"});
  EXPECT_EQ(DataConfig::from_json(Json::parse(R"({"format": "text", "text_field": "t"})"), "d")
                .text_field,
            "t");
}

TEST(ChatData, TextFileLoadsWithoutAChatTemplate) {
  testing::ScratchDir dir;
  const std::string path = dir.file("pretrain.jsonl");
  {
    std::ofstream f(path);
    f << R"({"text": "one two three"})"
      << "\n"
      << R"({"text": ""})"
      << "\n"  // 2: empty
      << R"({"text": "four five six seven eight nine ten eleven twelve"})"
      << "\n"
      << R"({"messages": [{"role": "user", "content": "q"}]})"
      << "\n";  // 4: not a document
  }
  DataConfig cfg;
  cfg.format = RowFormat::text;
  SftDataset ds = load_sft_dataset(path, cfg, nullptr, qwen_tok());
  ASSERT_EQ(ds.examples.size(), 2u);
  EXPECT_EQ(ds.examples[0].line, 1);
  EXPECT_EQ(ds.examples[1].line, 3);
  EXPECT_EQ(ds.stats.skipped.at("bad row").lines, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(ds.stats.targets, ds.stats.tokens - 2);
  // Over-long documents are cut like any row.
  cfg.max_tokens = 4;
  ds = load_sft_dataset(path, cfg, nullptr, qwen_tok());
  EXPECT_EQ(ds.stats.truncated, 1);
  EXPECT_EQ(ds.examples[1].tokens.size(), 4u);
  cfg.strict = true;
  expect_error_contains([&] { load_sft_dataset(path, cfg, nullptr, qwen_tok()); },
                        {"pretrain.jsonl:2", "empty text"});
}

TEST(ChatData, MissingAndEmptyFilesAreErrors) {
  testing::ScratchDir dir;
  const ChatTemplate chat = ChatTemplate::builtin("qwen2.5");
  expect_error_contains([&] { load_sft_dataset(dir.file("nope.jsonl"), {}, chat, qwen_tok()); },
                        {"nope.jsonl", "cannot open"});
  { std::ofstream(dir.file("empty.jsonl")) << "\n\n"; }
  expect_error_contains([&] { load_sft_dataset(dir.file("empty.jsonl"), {}, chat, qwen_tok()); },
                        {"empty.jsonl", "no rows"});
}

}  // namespace
}  // namespace r1kit::sft

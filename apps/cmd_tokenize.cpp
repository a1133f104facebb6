// `r1kit tokenize --model DIR (--text STR | --file F) [--no-special]`: prints
// {"ids":[...],"tokens":[...]} (tokens as the vocabulary spells them, "Ġthe");
// `r1kit tokenize --model DIR --decode 1,2,3 [--skip-special]`: prints {"text":"..."}.
// Output is one line of JSON, escaped as JSON requires (U+FFFD stands in for undecodable bytes).
#include <iostream>

#include "apps/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "policy/tokenizer.h"

namespace r1kit::apps {
namespace {

struct TokenizeArgs {
  std::string model, text, file, decode;
  bool have_text = false;
  bool no_special = false;
  bool skip_special = false;
};

std::vector<int32_t> parse_ids(const std::string& list) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(pos, end - pos);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) {
      if (end == list.size() && ids.empty() && list.find_first_not_of(' ') == std::string::npos)
        break;  // "--decode ''": no ids
      R1_THROW("tokenize: --decode: empty id at character {} of '{}'", pos + 1, list);
    }
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < INT32_MIN || v > INT32_MAX)
      R1_THROW("tokenize: --decode: '{}' is not an integer id (expected e.g. 1,2,3)", item);
    ids.push_back(static_cast<int32_t>(v));
    pos = end + 1;
  }
  return ids;
}

void run_tokenize(const TokenizeArgs& a) {
  const int sources = int(a.have_text) + int(!a.file.empty()) + int(!a.decode.empty());
  if (sources != 1) R1_THROW("tokenize: give exactly one of --text, --file and --decode");
  auto tok = policy::Tokenizer::load(a.model);
  if (!a.decode.empty()) {
    policy::DecodeOptions o;
    o.skip_special_tokens = a.skip_special;
    const Json out = {{"text", tok->decode(parse_ids(a.decode), o)}};
    std::cout << dump_json(out, -1, "tokenize output") << "\n";
    return;
  }
  const std::string text = a.have_text ? a.text : read_file(a.file);
  policy::EncodeOptions o;
  o.add_special_tokens = !a.no_special;
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text, o);
  } catch (Error& e) {
    e.add_context(a.have_text ? std::string("encoding --text") : "encoding " + a.file);
    throw;
  }
  Json tokens = Json::array();
  for (int32_t id : ids) tokens.push_back(tok->id_to_token(id));
  const Json out = {{"ids", ids}, {"tokens", tokens}};
  std::cout << dump_json(out, -1, "tokenize output") << "\n";
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "tokenize", "Encode text to token ids (or decode ids) with a model's tokenizer");
  auto a = std::make_shared<TokenizeArgs>();
  cmd->add_option("--model", a->model,
                  "model directory (tokenizer.json, vocab.json + merges.txt, tokenizer.model) or "
                  "a tokenizer file")
      ->required();
  auto* text = cmd->add_option("--text", a->text, "the text to encode");
  cmd->add_option("--file", a->file, "a UTF-8 file whose whole content is encoded");
  cmd->add_option("--decode", a->decode, "comma-separated ids to decode, e.g. 1,2,3");
  cmd->add_flag("--no-special", a->no_special,
                "no BOS/EOS, and special-token text is encoded as plain text");
  cmd->add_flag("--skip-special", a->skip_special, "with --decode: drop special tokens");
  cmd->callback([a, text] {
    a->have_text = text->count() > 0;
    run_tokenize(*a);
  });
}

}  // namespace r1kit::apps

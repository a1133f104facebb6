// `r1kit chat-template --model DIR --messages FILE.json [--add-generation-prompt] [--template
// NAME]`: prints the prompt the model's chat template (or the named built-in one, or a recipe
// pattern) renders for the messages, byte for byte, with no newline added. `r1kit chat-template
// --list`: the built-in templates. `--hash FILE`: the normalised hash of a Jinja template file and
// the built-in template it is, for adding known templates.
#include <iostream>

#include "apps/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "policy/chat_template.h"

namespace r1kit::apps {
namespace {

struct ChatTemplateArgs {
  std::string model, messages, name, pattern, enable_thinking, hash_file;
  bool add_generation_prompt = false;
  bool list = false;
};

void run_chat_template(const ChatTemplateArgs& a) {
  if (a.list) {
    for (const auto& n : policy::ChatTemplate::builtin_names())
      std::cout << n << "\t" << policy::ChatTemplate::builtin_description(n) << "\n";
    return;
  }
  if (!a.hash_file.empty()) {
    const std::string src = read_file(a.hash_file);
    const auto match = policy::match_builtin_jinja(src);
    std::cout << policy::jinja_template_hash(src) << " " << (match ? *match : "unknown") << "\n";
    return;
  }
  if (a.messages.empty()) R1_THROW("chat-template: --messages FILE.json is required");
  if (!a.name.empty() && !a.pattern.empty())
    R1_THROW("chat-template: give --template or --pattern, not both");
  if (a.model.empty() && a.name.empty() && a.pattern.empty())
    R1_THROW("chat-template: give --model DIR (its chat template), --template NAME or --pattern");
  policy::ChatRenderOptions opts;
  opts.add_generation_prompt = a.add_generation_prompt;
  if (a.enable_thinking == "true") {
    opts.enable_thinking = true;
  } else if (a.enable_thinking == "false") {
    opts.enable_thinking = false;
  } else if (!a.enable_thinking.empty()) {
    R1_THROW("chat-template: --enable-thinking takes true or false, got '{}'", a.enable_thinking);
  }
  const auto messages = policy::read_chat_messages(a.messages);
  std::optional<policy::ChatTemplate> t;
  if (!a.pattern.empty()) {
    policy::ChatSpecialTokens tokens;
    if (!a.model.empty()) tokens = policy::read_chat_special_tokens(a.model);
    t = policy::ChatTemplate::from_pattern(a.pattern, tokens);
  } else if (a.model.empty()) {
    t = policy::ChatTemplate::builtin(a.name);
  } else {
    t = policy::ChatTemplate::for_model(a.model, a.name);
  }
  std::cout << t->render(messages, opts) << std::flush;
}

}  // namespace

void register_chat_template(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "chat-template", "Render messages with a model's chat template (or a built-in one)");
  auto a = std::make_shared<ChatTemplateArgs>();
  cmd->add_option("--model", a->model,
                  "model directory (tokenizer_config.json / chat_template.jinja)");
  cmd->add_option("--messages", a->messages,
                  "JSON file: [{\"role\", \"content\"[, \"reasoning\"]}, ...]");
  cmd->add_flag("--add-generation-prompt", a->add_generation_prompt,
                "end with the assistant's turn header (and <think>\\n for DeepSeek-R1)");
  cmd->add_option("--template", a->name, "a built-in template instead of the model's (see --list)");
  cmd->add_option("--pattern", a->pattern,
                  "a pattern template, e.g. \"User: {prompt}\\nAssistant:\" ({system}, {bos}, "
                  "{eos}; {{ }} for braces)");
  cmd->add_option("--enable-thinking", a->enable_thinking,
                  "true|false: the enable_thinking variable of Qwen3-style templates");
  cmd->add_flag("--list", a->list, "list the built-in templates");
  cmd->add_option("--hash", a->hash_file,
                  "print the normalised hash of a Jinja template file and what it matches");
  cmd->callback([a] { run_chat_template(*a); });
}

}  // namespace r1kit::apps

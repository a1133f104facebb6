// The list of subcommands.
#include "apps/commands.h"

namespace r1kit::apps {
void register_all(CLI::App& app) {
  register_chat_template(app);
  register_convert(app);
  register_info(app);
  register_generate(app);
  register_init(app);
  register_inspect(app);
  register_logprobs(app);
  register_reward(app);
  register_run(app);
  register_sandbox(app);
  register_grpo(app);
  register_sft(app);
  register_tokenize(app);
  register_verify(app);
}
}  // namespace r1kit::apps

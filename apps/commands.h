// Subcommand registration for the r1kit CLI. Each cmd_*.cpp defines one register_* function that
// adds its subcommand and callback; callbacks throw r1kit::Error, which main() reports.
#pragma once

#include <CLI/CLI.hpp>

namespace r1kit::apps {
void register_all(CLI::App& app);
void register_chat_template(CLI::App& app);
void register_convert(CLI::App& app);
void register_info(CLI::App& app);
void register_generate(CLI::App& app);
void register_init(CLI::App& app);
void register_inspect(CLI::App& app);
void register_logprobs(CLI::App& app);
void register_reward(CLI::App& app);
void register_run(CLI::App& app);
void register_sandbox(CLI::App& app);
void register_grpo(CLI::App& app);
void register_sft(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_verify(CLI::App& app);
}  // namespace r1kit::apps

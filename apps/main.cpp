// The r1kit command line. Each subcommand lives in its own file (apps/cmd_*.cpp) and registers
// itself here; this file only builds the CLI11 app and reports errors.
#include <CLI/CLI.hpp>
#include <iostream>

#include "apps/commands.h"
#include "core/error.h"
#include "core/interrupt.h"

int main(int argc, char** argv) {
  CLI::App app{
      "r1kit: DeepSeek-R1-style post-training (GRPO, SFT, rejection sampling, distillation)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "r1kit 0.1.0");
  r1kit::apps::register_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const r1kit::Interrupted& e) {
    std::cerr << "r1kit: interrupted: " << e.what() << "\n";
    return 130;
  } catch (const r1kit::Error& e) {
    std::cerr << "r1kit: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

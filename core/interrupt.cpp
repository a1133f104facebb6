#include "core/interrupt.h"

#include <atomic>
#include <csignal>

namespace r1kit {

namespace {

std::atomic<bool> g_requested{false};

extern "C" void on_signal(int sig) {
  if (g_requested.exchange(true)) {
    std::signal(sig, SIG_DFL);  // the second signal: the default action (terminate)
    std::raise(sig);
  }
}

}  // namespace

void install_interrupt_handlers() {
  static std::atomic<bool> installed{false};
  if (installed.exchange(true)) return;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

bool interrupt_requested() {
  return g_requested.load(std::memory_order_relaxed);
}
void request_interrupt() {
  g_requested.store(true);
}
void clear_interrupt() {
  g_requested.store(false);
}

}  // namespace r1kit

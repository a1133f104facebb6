// Cooperative interruption (Ctrl-C): a SIGINT/SIGTERM handler sets a flag that long-running loops
// poll between steps. Trainers poll it after each step: they write a checkpoint of that step and
// throw Interrupted, so the command exits cleanly and a rerun resumes from exactly there. A
// second Ctrl-C while the first is being handled restores the default action (kills at once).
#pragma once

#include "core/error.h"

namespace r1kit {

// Thrown by a loop that stopped because interruption was requested (after saving its state).
class Interrupted : public Error {
 public:
  using Error::Error;
};

// Installs the SIGINT/SIGTERM handlers (idempotent).
void install_interrupt_handlers();
bool interrupt_requested();
// Sets / clears the flag directly (tests, and the handler).
void request_interrupt();
void clear_interrupt();

}  // namespace r1kit

// A per-call time budget checked cooperatively: the parser and the equivalence checker call
// tick() in their loops and recursion; once the deadline has passed tick() throws
// BudgetExceeded, which the verifier catches at its top level. No signals, no threads.
#pragma once

#include <chrono>
#include <exception>

namespace r1kit::rewards {

struct BudgetExceeded : std::exception {
  const char* what() const noexcept override { return "time budget exceeded"; }
};

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;
  // seconds <= 0 or not finite: no limit.
  explicit Deadline(double seconds) {
    if (seconds > 0 && seconds < 1e9) {
      limited_ = true;
      end_ = Clock::now() +
             std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    }
  }
  // Reads the clock every kStride calls (a clock read costs ~20 ns; ticks are far cheaper).
  void tick() {
    if (!limited_ || ++count_ % kStride != 0) return;
    check();
  }
  // Reads the clock now (before and after a CAS step whose cost is not counted in ticks).
  void check() {
    if (limited_ && Clock::now() >= end_) throw BudgetExceeded();
  }
  bool expired() const { return limited_ && Clock::now() >= end_; }

 private:
  static constexpr unsigned kStride = 64;
  bool limited_ = false;
  Clock::time_point end_{};
  unsigned count_ = 0;
};

}  // namespace r1kit::rewards

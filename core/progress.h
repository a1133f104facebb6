// A progress display for long loops (training steps, rollouts, dataset passes). On a terminal it
// redraws one line in place ("\r") with count/total, rate and ETA; elsewhere (logs, CI) it prints
// a plain line at most every few seconds and one at finish(). The clock is injectable for tests.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>

namespace r1kit {

struct ProgressOptions {
  double plain_interval_s = 30.0;  // not a terminal: at most one line per interval, plus finish
  double tty_interval_s = 0.1;     // terminal: redraw at most this often
  std::string unit = "it";         // "it/s", "tok/s", ...
  std::function<double()> clock;   // seconds on any monotonic scale; default: steady_clock
};

// Line format (rate = count / elapsed since construction, ETA = (total - count) / rate):
//   "train: 120/1000 (12.0%) | 40.0 it/s | elapsed 0:03 | ETA 0:22 | loss=1.23"
// with total 0 (unknown): "train: 120 | 40.0 it/s | elapsed 0:03 | loss=1.23"; finish() prints
// "done" in place of the ETA. Slower than one unit per second prints "2.50 s/it". A terminal line
// also carries a 20-character bar after the label. Thread-safe.
class Progress {
 public:
  Progress(std::string label, int64_t total, std::ostream& out, bool is_tty,
           ProgressOptions opts = {});
  ~Progress();  // finish() unless already finished
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void tick(int64_t n = 1);
  // Free text shown at the end of the line from the next draw on (e.g. "loss=1.23").
  void set_postfix(std::string postfix);
  // Prints the final line (and a newline on a terminal); later calls and ticks do nothing.
  void finish();

  int64_t count() const;
  // The line as it would be printed now (without "\r"), for logging elsewhere.
  std::string status_line() const;

 private:
  std::string format_line(double now, bool done) const;
  void draw(double now, bool done);
  double now() const { return opts_.clock(); }

  std::string label_;
  int64_t total_;
  std::ostream& out_;
  bool is_tty_;
  ProgressOptions opts_;
  double start_;
  double last_draw_;
  int64_t count_ = 0;
  std::string postfix_;
  size_t last_width_ = 0;
  bool finished_ = false;
  mutable std::mutex mu_;
};

// True when stderr is a terminal (where progress lines normally go).
bool stderr_is_tty();
// "0:05", "12:34", "1:02:03"; "?" for negative or non-finite values.
std::string format_duration(double seconds);

}  // namespace r1kit

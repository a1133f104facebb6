// Progress: formatting of the status line, throttled drawing, terminal and plain modes.
#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>

namespace r1kit {
namespace {
constexpr int kBarWidth = 20;
}  // namespace

Progress::Progress(std::string label, int64_t total, std::ostream& out, bool is_tty,
                   ProgressOptions opts)
    : label_(std::move(label)),
      total_(total < 0 ? 0 : total),
      out_(out),
      is_tty_(is_tty),
      opts_(std::move(opts)) {
  if (!opts_.clock) {
    opts_.clock = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
  }
  start_ = now();
  last_draw_ = start_;
}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {
    // A failing stream must not turn unwinding into termination.
  }
}

void Progress::tick(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  count_ += n;
  double t = now();
  double interval = is_tty_ ? opts_.tty_interval_s : opts_.plain_interval_s;
  // A terminal shows the first tick at once; plain output waits a full interval.
  if (t - last_draw_ >= interval || (is_tty_ && last_width_ == 0)) draw(t, false);
}

void Progress::set_postfix(std::string postfix) {
  std::lock_guard<std::mutex> lock(mu_);
  postfix_ = std::move(postfix);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw(now(), true);
}

int64_t Progress::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

std::string Progress::status_line() const {
  std::lock_guard<std::mutex> lock(mu_);
  return format_line(now(), finished_);
}

std::string Progress::format_line(double t, bool done) const {
  const double elapsed = t - start_;
  const double rate = elapsed > 0 ? static_cast<double>(count_) / elapsed : 0.0;
  std::string s = label_ + ":";
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(count_) / static_cast<double>(total_));
    if (is_tty_) {
      int filled = static_cast<int>(frac * kBarWidth);
      s += " [" + std::string(filled, '#') + std::string(kBarWidth - filled, '.') + "]";
    }
    s += fmt::format(" {}/{} ({:.1f}%)", count_, total_, 100.0 * frac);
  } else {
    s += fmt::format(" {}", count_);
  }
  // rate: units per second, or seconds per unit when slower than one per second.
  if (rate <= 0)
    s += fmt::format(" | ? {}/s", opts_.unit);
  else if (rate >= 1)
    s += fmt::format(" | {:.1f} {}/s", rate, opts_.unit);
  else
    s += fmt::format(" | {:.2f} s/{}", 1.0 / rate, opts_.unit);
  s += " | elapsed " + format_duration(elapsed);
  if (done) {
    s += " | done";
  } else if (total_ > 0) {
    // ETA = remaining / rate
    double remaining = static_cast<double>(std::max<int64_t>(0, total_ - count_));
    s += " | ETA " + (rate > 0 ? format_duration(remaining / rate) : std::string("?"));
  }
  if (!postfix_.empty()) s += " | " + postfix_;
  return s;
}

void Progress::draw(double t, bool done) {
  last_draw_ = t;
  std::string line = format_line(t, done);
  if (is_tty_) {
    size_t width = line.size();
    // Spaces erase what is left of a longer previous line.
    if (width < last_width_) line += std::string(last_width_ - width, ' ');
    last_width_ = std::max<size_t>(width, 1);
    out_ << '\r' << line;
    if (done) out_ << '\n';
  } else {
    out_ << line << '\n';
  }
  out_.flush();
}

bool stderr_is_tty() {
  return ::isatty(STDERR_FILENO) == 1;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds > 1e9) return "?";
  auto s = static_cast<int64_t>(seconds);
  int64_t h = s / 3600, m = (s / 60) % 60, sec = s % 60;
  if (h > 0) return fmt::format("{}:{:02d}:{:02d}", h, m, sec);
  return fmt::format("{}:{:02d}", m, sec);
}

}  // namespace r1kit

// Progress display driven by a fake clock (plain-line throttling, count, rate, ETA, postfix, the
// terminal redraw), plus the logging setup that shares the console with it (core/log.h).
#include "core/progress.h"

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "core/fs.h"
#include "core/log.h"
#include "tests/common/test_util.h"

namespace r1kit {
namespace {

using testing::expect_error_contains;

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A clock the test moves by hand.
struct FakeClock {
  double t = 1000.0;  // any origin: Progress only uses differences
  ProgressOptions options(double plain_interval_s = 10.0) {
    ProgressOptions o;
    o.plain_interval_s = plain_interval_s;
    o.clock = [this] { return t; };
    return o;
  }
};

TEST(Progress, PlainLinesAtMostEveryIntervalWithRateAndEta) {
  FakeClock clock;
  std::ostringstream out;
  Progress p("train", 100, out, /*is_tty=*/false, clock.options(10.0));
  clock.t += 5;
  p.tick(10);
  EXPECT_EQ(out.str(), "");  // not yet 10 s since the start
  clock.t += 5;              // t = 10 s
  p.tick(10);                // 20 done in 10 s: 2.0 it/s, 80 left: ETA 40 s
  clock.t += 5;
  p.tick(5);  // 5 s after the last line: quiet
  clock.t += 5;
  p.set_postfix("loss=1.25");
  p.tick(25);  // t = 20 s, 50 done: 2.5 it/s, ETA 50 / 2.5 = 20 s
  clock.t += 20;
  p.tick(50);  // t = 40 s, 100 done
  clock.t += 2;
  p.finish();  // t = 42 s
  p.finish();  // idempotent
  p.tick(5);   // ignored after finish
  EXPECT_EQ(p.count(), 100);
  EXPECT_EQ(lines_of(out.str()),
            (std::vector<std::string>{
                "train: 20/100 (20.0%) | 2.0 it/s | elapsed 0:10 | ETA 0:40",
                "train: 50/100 (50.0%) | 2.5 it/s | elapsed 0:20 | ETA 0:20 | loss=1.25",
                "train: 100/100 (100.0%) | 2.5 it/s | elapsed 0:40 | ETA 0:00 | loss=1.25",
                "train: 100/100 (100.0%) | 2.4 it/s | elapsed 0:42 | done | loss=1.25",
            }));
}

TEST(Progress, UnknownTotalSlowRatesAndLongDurations) {
  FakeClock clock;
  std::ostringstream out;
  ProgressOptions o = clock.options(30.0);
  o.unit = "batch";
  {
    Progress p("eval", 0, out, false, o);
    clock.t += 40;
    p.tick(16);  // 0.4 batch/s -> shown as seconds per batch
    clock.t += 3600 + 20;
    p.tick(1000);  // 1016 in 3660 s: 3.60 s per batch
  }                // the destructor finishes
  EXPECT_EQ(lines_of(out.str()), (std::vector<std::string>{
                                     "eval: 16 | 2.50 s/batch | elapsed 0:40",
                                     "eval: 1016 | 3.60 s/batch | elapsed 1:01:00",
                                     "eval: 1016 | 3.60 s/batch | elapsed 1:01:00 | done",
                                 }));
}

TEST(Progress, RateUnknownBeforeTimePasses) {
  FakeClock clock;
  std::ostringstream out;
  Progress p("x", 10, out, false, clock.options());
  EXPECT_EQ(p.status_line(), "x: 0/10 (0.0%) | ? it/s | elapsed 0:00 | ETA ?");
  p.tick(3);
  EXPECT_EQ(p.status_line(), "x: 3/10 (30.0%) | ? it/s | elapsed 0:00 | ETA ?");
  clock.t += 3;
  p.tick(0);
  EXPECT_EQ(p.status_line(), "x: 3/10 (30.0%) | 1.0 it/s | elapsed 0:03 | ETA 0:07");
  p.tick(20);  // past the total: clamped percentage, no negative ETA
  EXPECT_EQ(p.status_line(), "x: 23/10 (100.0%) | 7.7 it/s | elapsed 0:03 | ETA 0:00");
  p.finish();
  EXPECT_EQ(lines_of(out.str()).back(), "x: 23/10 (100.0%) | 7.7 it/s | elapsed 0:03 | done");
}

TEST(Progress, TerminalRedrawsOneLine) {
  FakeClock clock;
  std::ostringstream out;
  ProgressOptions o = clock.options();
  o.tty_interval_s = 0.5;
  Progress p("gen", 4, out, /*is_tty=*/true, o);
  clock.t += 1;
  p.set_postfix("a long postfix");
  p.tick();  // first tick draws at once
  clock.t += 0.1;
  p.tick();  // within 0.5 s: no redraw
  clock.t += 1;
  p.set_postfix("");
  p.tick(2);
  clock.t += 1;
  p.finish();
  const std::string s = out.str();
  const std::string first =
      "\rgen: [#####...............] 1/4 (25.0%) | 1.0 it/s | elapsed 0:01 | ETA 0:03 | "
      "a long postfix";
  const std::string second =
      "\rgen: [####################] 4/4 (100.0%) | 1.9 it/s | elapsed 0:02 | ETA 0:00";
  ASSERT_EQ(s.substr(0, first.size()), first);
  // The shorter second line is padded with spaces over the first one's tail.
  size_t second_at = first.size();
  ASSERT_EQ(s.substr(second_at, second.size()), second);
  size_t pad_end = s.find('\r', second_at + 1);
  ASSERT_NE(pad_end, std::string::npos);
  EXPECT_EQ(pad_end - second_at, first.size());  // same width as the first line
  EXPECT_EQ(s.substr(second_at + second.size(), pad_end - second_at - second.size()),
            std::string(pad_end - second_at - second.size(), ' '));
  // The final line is 4 characters shorter than the second ("done" replaces "ETA 0:00").
  EXPECT_EQ(s.substr(pad_end),
            "\rgen: [####################] 4/4 (100.0%) | 1.3 it/s | elapsed 0:03 | done    \n");
}

TEST(Progress, FormatDuration) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(59.9), "0:59");
  EXPECT_EQ(format_duration(61), "1:01");
  EXPECT_EQ(format_duration(3599), "59:59");
  EXPECT_EQ(format_duration(3600), "1:00:00");
  EXPECT_EQ(format_duration(100 * 3600 + 62), "100:01:02");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::infinity()), "?");
  EXPECT_EQ(format_duration(std::nan("")), "?");
}

TEST(Logging, LevelsAndLogFile) {
  EXPECT_EQ(parse_log_level("debug"), LogLevel::debug);
  EXPECT_EQ(parse_log_level("off"), LogLevel::off);
  EXPECT_EQ(log_level_name(LogLevel::warn), "warn");
  expect_error_contains([] { parse_log_level("verbose"); },
                        {"unknown log level 'verbose'", "trace, debug, info, warn, error, off"});

  const std::string dir =
      (std::filesystem::temp_directory_path() / fmt::format("r1kit_log_{}", ::getpid())).string();
  std::filesystem::remove_all(dir);
  const std::string file = dir + "/sub/run.log";  // parent directories are created
  init_logging(LogLevel::debug, file);
  auto log = logger();
  EXPECT_EQ(log->name(), kLoggerName);
  log->debug("debug line {}", 1);
  log->trace("trace line is below the level");
  log->info("info line {}", 2);
  log->flush();
  std::string text = read_file(file);
  EXPECT_NE(text.find("[debug] debug line 1"), std::string::npos) << text;
  EXPECT_NE(text.find("[info] info line 2"), std::string::npos) << text;
  EXPECT_EQ(text.find("trace line"), std::string::npos) << text;

  // Reconfiguring replaces the registered logger; an old handle stays usable.
  init_logging(LogLevel::warn);
  EXPECT_NE(logger().get(), log.get());
  EXPECT_EQ(logger()->level(), spdlog::level::warn);
  log->info("still safe to call");
  expect_error_contains([&] { init_logging(LogLevel::info, "/proc/r1kit/cannot.log"); },
                        {"cannot open log file '/proc/r1kit/cannot.log'"});
  EXPECT_EQ(logger()->level(), spdlog::level::warn);  // a failed init keeps the old logger
  init_logging(LogLevel::info);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace r1kit

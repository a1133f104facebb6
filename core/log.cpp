// The "r1kit" spdlog logger: creation, reconfiguration and level names.
#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <memory>
#include <vector>

#include "core/error.h"

namespace r1kit {
namespace {

constexpr std::string_view kLevelNames[] = {"trace", "debug", "info", "warn", "error", "off"};

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::trace:
      return spdlog::level::trace;
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warn:
      return spdlog::level::warn;
    case LogLevel::error:
      return spdlog::level::err;
    case LogLevel::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::shared_ptr<spdlog::logger> make_logger(LogLevel level, const std::string& log_file) {
  std::vector<spdlog::sink_ptr> sinks;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  sinks.push_back(console);
  if (!log_file.empty()) {
    try {
      auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file, false);
      file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
      sinks.push_back(file);
    } catch (const spdlog::spdlog_ex& e) {
      R1_THROW("cannot open log file '{}': {}", log_file, e.what());
    }
  }
  auto l = std::make_shared<spdlog::logger>(kLoggerName, sinks.begin(), sinks.end());
  l->set_level(to_spdlog(level));
  l->flush_on(spdlog::level::info);
  return l;
}

}  // namespace

LogLevel parse_log_level(std::string_view name) {
  for (size_t i = 0; i < std::size(kLevelNames); ++i)
    if (name == kLevelNames[i]) return static_cast<LogLevel>(i);
  R1_THROW("unknown log level '{}'; expected one of {}", name, fmt::join(kLevelNames, ", "));
}

std::string_view log_level_name(LogLevel level) {
  return kLevelNames[static_cast<size_t>(level)];
}

void init_logging(LogLevel level, const std::string& log_file) {
  auto l = make_logger(level, log_file);  // may throw: keep the old logger until this succeeded
  spdlog::drop(kLoggerName);
  spdlog::register_logger(l);
}

std::shared_ptr<spdlog::logger> logger() {
  while (true) {
    if (auto l = spdlog::get(kLoggerName)) return l;
    auto l = make_logger(LogLevel::info, "");
    try {
      spdlog::register_logger(l);
      return l;
    } catch (const spdlog::spdlog_ex&) {
      // Another thread registered one first: loop and use theirs.
    }
  }
}

}  // namespace r1kit

// Logging for r1kit on spdlog: one named logger ("r1kit") writing to stderr and optionally to a
// log file. The only global state is spdlog's own registry, which holds that logger; r1kit keeps
// no logger pointer of its own, so init_logging() can be called again to reconfigure.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace r1kit {

constexpr const char* kLoggerName = "r1kit";

enum class LogLevel { trace, debug, info, warn, error, off };

// "trace", "debug", "info", "warn", "error", "off"; throws listing them for anything else.
LogLevel parse_log_level(std::string_view name);
std::string_view log_level_name(LogLevel level);

// (Re)creates the "r1kit" logger: stderr (coloured when it is a terminal) and, when `log_file` is
// not empty, that file too (appended, parent directories created, flushed at every info or more
// severe message so a crash loses nothing). Messages below `level` are dropped. Throws naming the
// file when it cannot be opened.
void init_logging(LogLevel level, const std::string& log_file = "");

// The "r1kit" logger; when init_logging() was never called, one is created with the defaults
// (info, stderr only). Thread-safe. A shared_ptr, not a reference: init_logging() replaces the
// registered logger, and a caller holding the old one keeps it alive.
std::shared_ptr<spdlog::logger> logger();

}  // namespace r1kit

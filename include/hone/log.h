// Logging to stderr with a level (HONE_LOG=debug|info|warn|error|off) and a progress line for
// long work: redrawn in place on a terminal, printed every few seconds otherwise.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "hone/error.h"

namespace hone {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

LogLevel log_level();             // from HONE_LOG on first use; info by default
void set_log_level(LogLevel level);
void log_message(LogLevel level, const std::string& message);

template <class... Args> void log_debug(const Args&... a) { if (log_level() <= LogLevel::debug) log_message(LogLevel::debug, cat(a...)); }
template <class... Args> void log_info(const Args&... a) { if (log_level() <= LogLevel::info) log_message(LogLevel::info, cat(a...)); }
template <class... Args> void log_warn(const Args&... a) { if (log_level() <= LogLevel::warn) log_message(LogLevel::warn, cat(a...)); }
template <class... Args> void log_error(const Args&... a) { if (log_level() <= LogLevel::error) log_message(LogLevel::error, cat(a...)); }

// "label  37/200  18.5%  12.1 it/s  eta 13s  loss 2.31". update() is cheap to call often:
// it redraws at most ten times a second on a terminal and every `plain_interval` seconds when
// stderr is not one. finish() prints the final line.
class Progress {
 public:
  Progress(std::string label, std::int64_t total, double plain_interval_s = 5.0);
  ~Progress();
  void update(std::int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  static std::string format_line(const std::string& label, std::int64_t done, std::int64_t total,
                                 double elapsed_s, const std::string& extra);

 private:
  void draw(bool final_line);
  std::string label_;
  std::int64_t total_;
  std::int64_t done_ = 0;
  std::string extra_;
  double plain_interval_s_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace hone

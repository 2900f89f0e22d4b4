// Leveled logging to stderr and the Progress line.
#include "hone/log.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace hone {

namespace {

LogLevel level_from_env() {
  const char* s = std::getenv("HONE_LOG");
  if (s == nullptr) return LogLevel::info;
  if (!std::strcmp(s, "debug")) return LogLevel::debug;
  if (!std::strcmp(s, "info")) return LogLevel::info;
  if (!std::strcmp(s, "warn")) return LogLevel::warn;
  if (!std::strcmp(s, "error")) return LogLevel::error;
  if (!std::strcmp(s, "off")) return LogLevel::off;
  std::fprintf(stderr, "hone: HONE_LOG='%s' is not one of debug, info, warn, error, off; using info\n", s);
  return LogLevel::info;
}

std::atomic<int>& level_slot() {
  static std::atomic<int> level{static_cast<int>(level_from_env())};
  return level;
}

std::mutex& stderr_mutex() {
  static std::mutex m;
  return m;
}

const char* level_tag(LogLevel l) {
  switch (l) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    default: return "";
  }
}

}  // namespace

LogLevel log_level() { return static_cast<LogLevel>(level_slot().load()); }
void set_log_level(LogLevel level) { level_slot().store(static_cast<int>(level)); }

void log_message(LogLevel level, const std::string& message) {
  if (level < log_level()) return;
  std::lock_guard<std::mutex> lock(stderr_mutex());
  std::fprintf(stderr, "[hone %s] %s\n", level_tag(level), message.c_str());
}

Progress::Progress(std::string label, std::int64_t total, double plain_interval_s)
    : label_(std::move(label)),
      total_(total),
      plain_interval_s_(plain_interval_s),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_) {
    std::lock_guard<std::mutex> lock(stderr_mutex());
    std::fputc('\n', stderr);  // leave the cursor on a fresh line
  }
}

std::string Progress::format_line(const std::string& label, std::int64_t done, std::int64_t total,
                                  double elapsed_s, const std::string& extra) {
  char buf[160];
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  std::string line = label;
  if (total > 0) {
    const double pct = 100.0 * static_cast<double>(done) / static_cast<double>(total);
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    std::snprintf(buf, sizeof buf, "  %lld/%lld  %5.1f%%  %.1f it/s  eta %.0fs",
                  static_cast<long long>(done), static_cast<long long>(total), pct, rate, eta);
  } else {
    std::snprintf(buf, sizeof buf, "  %lld  %.1f it/s", static_cast<long long>(done), rate);
  }
  line += buf;
  if (!extra.empty()) line += "  " + extra;
  return line;
}

void Progress::update(std::int64_t done, const std::string& extra) {
  done_ = done;
  extra_ = extra;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.1 : plain_interval_s_)) draw(false);
}

void Progress::finish(const std::string& extra) {
  if (!extra.empty()) extra_ = extra;
  if (total_ > 0) done_ = std::max(done_, total_);
  draw(true);
  finished_ = true;
}

void Progress::draw(bool final_line) {
  if (log_level() > LogLevel::info) return;
  last_draw_ = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(last_draw_ - start_).count();
  const std::string line = format_line(label_, done_, total_, elapsed, extra_);
  std::lock_guard<std::mutex> lock(stderr_mutex());
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace hone

// Progress line formatting and log levels.
#include <catch2/catch.hpp>

#include "hone/log.h"

using namespace hone;

TEST_CASE("progress lines show count rate and eta", "[cpu][core]") {
  const std::string line = Progress::format_line("train", 50, 200, 10.0, "loss 2.31");
  CHECK(line == "train  50/200   25.0%  5.0 it/s  eta 30s  loss 2.31");
  CHECK(Progress::format_line("scan", 7, 0, 2.0, "") == "scan  7  3.5 it/s");
}

TEST_CASE("log level can be set", "[cpu][core]") {
  const LogLevel saved = log_level();
  set_log_level(LogLevel::error);
  CHECK(log_level() == LogLevel::error);
  log_info("not shown");
  set_log_level(saved);
  CHECK(log_level() == saved);
}

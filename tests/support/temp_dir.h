// A fresh folder under the system's temporary directory for one test, removed afterwards.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace hone::test {

struct TempDir {
  std::filesystem::path path;
  // `name` keeps concurrent tests apart; the process id keeps concurrent runs apart.
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("hone_test_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // The folder, or `sub` inside it.
  std::string str(const std::string& sub = "") const { return sub.empty() ? path.string() : (path / sub).string(); }
};

}  // namespace hone::test

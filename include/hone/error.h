// hone::Error: the one exception type the library throws. Messages carry context:
// "[op] argument 'w': shape (5) does not match x (3, 4)".
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hone {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates anything streamable into one string: cat("size ", 3, " of ", name).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// Throws Error("[where] what").
[[noreturn]] void fail(std::string_view where, const std::string& what);

}  // namespace hone

// HONE_CHECK(cond, "op", "message parts", ...): throws hone::Error("[op] message") unless cond.
#define HONE_CHECK(cond, where, ...)                   \
  do {                                                 \
    if (!(cond)) ::hone::fail((where), ::hone::cat(__VA_ARGS__)); \
  } while (0)

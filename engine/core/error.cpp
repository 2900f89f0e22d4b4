// hone::fail and the library version string.
#include "hone/error.h"

#include "hone/hone.h"

namespace hone {

void fail(std::string_view where, const std::string& what) {
  throw Error(cat("[", where, "] ", what));
}

const char* version() { return "0.1.0"; }

}  // namespace hone

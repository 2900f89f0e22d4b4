// Device parsing/printing and the CUDA device count.
#include "hone/device.h"

#include <charconv>

#include "cuda/runtime.h"
#include "hone/error.h"

namespace hone {

Device Device::parse(std::string_view s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.substr(0, 5) == "cuda:" && s.size() > 5) {
    int index = -1;
    const auto [end, ec] = std::from_chars(s.data() + 5, s.data() + s.size(), index);
    if (ec == std::errc() && end == s.data() + s.size() && index >= 0) return cuda(index);
  }
  fail("device", cat("cannot parse device '", s, "' (expected cpu, cuda or cuda:N)"));
}

std::string Device::str() const { return is_cpu() ? "cpu" : cat("cuda:", index); }

int cuda_device_count() { return cuda::device_count(); }
bool cuda_built() { return cuda::built_with_cuda(); }
void synchronize(Device device) {
  if (device.is_cuda()) cuda::device_synchronize(device.index);
}

}  // namespace hone

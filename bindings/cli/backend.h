// --backend cpu|cuda of the commands that run a model: the device it means, checked up front.
#pragma once
#include <string>

#include "hone/device.h"
#include "hone/error.h"

namespace hone::cli {

// cuda → cuda:0 when this process sees a device, else an error naming the command and why.
inline Device backend_device(const std::string& backend, const char* cmd) {
  HONE_CHECK(backend == "cpu" || backend == "cuda", cmd, "--backend ", backend, " is not cpu or cuda");
  if (backend == "cpu") return Device::cpu();
  HONE_CHECK(cuda_device_count() > 0, cmd, "--backend cuda: no CUDA device is visible to this process",
             cuda_built() ? "" : " (this hone was built without CUDA)");
  return Device::cuda(0);
}

}  // namespace hone::cli

// Where a tensor's memory lives: the host ("cpu") or one CUDA device ("cuda:N").
#pragma once
#include <string>
#include <string_view>

namespace hone {

struct Device {
  enum class Kind { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;  // CUDA ordinal; 0 for cpu

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {Kind::cuda, index}; }
  static Device parse(std::string_view s);  // "cpu", "cuda", "cuda:1"
  bool is_cpu() const { return kind == Kind::cpu; }
  bool is_cuda() const { return kind == Kind::cuda; }
  std::string str() const;
  friend bool operator==(Device a, Device b) { return a.kind == b.kind && a.index == b.index; }
  friend bool operator!=(Device a, Device b) { return !(a == b); }
};

// Number of CUDA devices usable by this process: 0 when hone was built without CUDA or no
// device/driver is present.
int cuda_device_count();
// Whether this build of hone has its CUDA backend (kernels, cuBLASLt) compiled in.
bool cuda_built();
// Waits until the work queued on `device` is done (ops return before their kernels finish);
// nothing to wait for on the CPU.
void synchronize(Device device);

}  // namespace hone

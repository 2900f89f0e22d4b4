// The few CUDA runtime services the core needs (device count, raw device memory, copies), in a
// header without CUDA types. Implemented by runtime.cpp when hone is built with CUDA and by
// runtime_stub.cpp otherwise.
#pragma once
#include <cstddef>

namespace hone::cuda {

bool built_with_cuda();
int device_count();                                  // 0 if no driver or device
void* device_malloc(int device, std::size_t bytes);  // nullptr when out of memory
void device_free(int device, void* ptr);
enum class CopyKind { host_to_device, device_to_host, device_to_device };
void copy(void* dst, const void* src, std::size_t bytes, CopyKind kind);  // synchronous
void memset_zero(void* ptr, std::size_t bytes);                          // synchronous
void device_synchronize(int device);  // waits for all work queued on the device

}  // namespace hone::cuda

// CUDA runtime services for the core (built only with the CUDA backend).
#include "cuda/runtime.h"

#include "cuda/check.h"

namespace hone::cuda {

bool built_with_cuda() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: clear the sticky error, report none
    return 0;
  }
  return n;
}

void* device_malloc(int device, std::size_t bytes) {
  CUDA_CHECK(cudaSetDevice(device));
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return p;
}

void device_free(int device, void* ptr) {
  if (cudaSetDevice(device) == cudaSuccess) (void)cudaFree(ptr);
}

void copy(void* dst, const void* src, std::size_t bytes, CopyKind kind) {
  const cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                              : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, k));
}

void memset_zero(void* ptr, std::size_t bytes) { CUDA_CHECK(cudaMemset(ptr, 0, bytes)); }

}  // namespace hone::cuda

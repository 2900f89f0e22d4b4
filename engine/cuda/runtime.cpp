// CUDA runtime services for the core (built only with the CUDA backend).
#include "cuda/runtime.h"

#include "cuda/check.h"

namespace hone::cuda {

namespace {

// Runs f with `device` current and restores the caller's device, so that allocating on one
// device never changes the device the caller's later work goes to. Returns false when the
// device could not be selected.
template <class F>
bool on_device(int device, F&& f) {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  f();
  (void)cudaSetDevice(previous);
  return true;
}

}  // namespace

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
  void* p = nullptr;
  const bool selected = on_device(device, [&] {
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      p = nullptr;
    }
  });
  HONE_CHECK(selected, "cuda", "cannot select device ", device, " to allocate ", bytes, " bytes");
  return p;
}

void device_free(int device, void* ptr) {
  (void)on_device(device, [&] { (void)cudaFree(ptr); });
}

void copy(void* dst, const void* src, std::size_t bytes, CopyKind kind) {
  const cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                              : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, k));
}

void memset_zero(void* ptr, std::size_t bytes) { CUDA_CHECK(cudaMemset(ptr, 0, bytes)); }

void device_synchronize(int device) {
  cudaError_t err = cudaSuccess;
  const bool selected = on_device(device, [&] { err = cudaDeviceSynchronize(); });
  HONE_CHECK(selected, "cuda", "cannot select device ", device, " to wait for it");
  CUDA_CHECK(err);
}

}  // namespace hone::cuda

// Device memory for the [gpu] tests of the kernels (CUDA builds only): a raw buffer, a copy of
// host data (optionally behind `pad` bytes, to misalign it), and a checked synchronisation.
#pragma once
#ifdef HONE_WITH_CUDA
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "cuda/runtime.h"
#include "hone/tensor.h"

namespace hone::test {

// Device memory of one allocation on device 0, freed on scope exit.
struct DeviceBuffer {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  explicit DeviceBuffer(std::size_t n) : ptr(cuda::device_malloc(0, n)), bytes(n) { REQUIRE(ptr != nullptr); }
  ~DeviceBuffer() { cuda::device_free(0, ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(ptr); }
  template <class T>
  void upload(const std::vector<T>& v) {
    cuda::copy(ptr, v.data(), v.size() * sizeof(T), cuda::CopyKind::host_to_device);
  }
  template <class T>
  std::vector<T> download(std::size_t n) const {
    std::vector<T> v(n);
    cuda::copy(v.data(), ptr, n * sizeof(T), cuda::CopyKind::device_to_host);
    return v;
  }
};

// Device memory holding a copy of host bytes or a host tensor, `pad` bytes into the allocation
// (16 spare bytes at the end catch small over-reads).
class DeviceCopy {
 public:
  DeviceCopy(const void* host, std::size_t bytes, std::size_t pad = 0) : bytes_(bytes), pad_(pad) {
    base_ = cuda::device_malloc(0, bytes_ + pad_ + 16);
    REQUIRE(base_ != nullptr);
    cuda::copy(get(), host, bytes_, cuda::CopyKind::host_to_device);
  }
  explicit DeviceCopy(const Tensor& host, std::size_t pad = 0) : DeviceCopy(host.raw(), host.nbytes(), pad) {}
  ~DeviceCopy() { cuda::device_free(0, base_); }
  DeviceCopy(const DeviceCopy&) = delete;
  DeviceCopy& operator=(const DeviceCopy&) = delete;
  void* get() const { return static_cast<char*>(base_) + pad_; }
  float* f32() const { return static_cast<float*>(get()); }
  Tensor to_host(const Shape& shape, DType dtype) const {
    const Tensor t = Tensor::empty(shape, dtype);
    cuda::copy(t.raw(), get(), t.nbytes(), cuda::CopyKind::device_to_host);
    return t;
  }

 private:
  void* base_ = nullptr;
  std::size_t bytes_, pad_;
};

// Device memory sized in bytes or filled from a host vector, read back whole (the GEMM and
// attention tests' form). poison() fills it with 0xff bytes: NaN in bf16 and f32.
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t bytes) : bytes_(bytes) {
    if (bytes_) REQUIRE(cudaMalloc(&ptr_, bytes_) == cudaSuccess);
  }
  template <class T>
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size() * sizeof(T)) {
    if (bytes_) REQUIRE(cudaMemcpy(ptr_, host.data(), bytes_, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~DeviceArray() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  template <class T>
  std::vector<T> to_host() const {
    std::vector<T> v(bytes_ / sizeof(T));
    REQUIRE(cudaMemcpy(v.data(), ptr_, bytes_, cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
  void poison() { REQUIRE(cudaMemset(ptr_, 0xff, bytes_) == cudaSuccess); }
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

inline void sync() {
  const cudaError_t err = cudaDeviceSynchronize();
  INFO(cudaGetErrorString(err));
  REQUIRE(err == cudaSuccess);
}

}  // namespace hone::test
#endif

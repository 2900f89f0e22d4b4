// hone::Tensor: a contiguous, row-major n-d array with a dtype and a device, sharing its storage
// with the views taken from it. Copies of a Tensor are cheap handles onto the same memory.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hone/device.h"
#include "hone/dtype.h"
#include "hone/error.h"

namespace hone {

using Shape = std::vector<std::int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3)"; "()" for a scalar
std::int64_t shape_numel(const Shape& s);

// A block of memory on one device, freed through its allocator when the last owner goes.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;   // [owned] 64-byte aligned on the host
  std::size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false

  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype, Device device = Device::cpu());
  // A host tensor holding a copy of `values` (dtype from T; numel must match the shape).
  template <class T>
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  std::int64_t ndim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t size(std::int64_t dim) const;  // negative dims count from the end
  std::int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const;
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  std::string str() const;  // "Tensor(f32, (2, 3), cpu)"

  void* raw() const;
  // Typed pointer; throws if T does not match dtype().
  template <class T>
  T* data() const;

  // Views sharing storage.
  Tensor view(const Shape& shape) const;  // same numel; one dim may be -1
  Tensor slice(std::int64_t begin, std::int64_t end) const;  // rows [begin, end) of dim 0
  Tensor select(std::int64_t i) const;                       // row i of dim 0, dim 0 dropped
  Tensor flatten_to_2d() const;  // (prod(shape[:-1]), shape[-1])

  // Copies.
  Tensor clone() const;
  Tensor to(DType dtype) const;    // host only; converts element-wise
  Tensor to(Device device) const;  // same dtype on another device (always a copy)
  Tensor host() const;             // this tensor when it is on the host, else a host copy
  void copy_from(const Tensor& src) const;  // same shape and dtype, any devices
  void fill(double value) const;            // host tensors; zero fill also on CUDA

  template <class T>
  std::vector<T> to_vector() const;  // host copy converted to T
  double item() const;               // the single element as double

 private:
  std::shared_ptr<Storage> storage_;
  std::size_t offset_ = 0;  // bytes from storage start
  Shape shape_;
  DType dtype_ = DType::f32;
};

}  // namespace hone

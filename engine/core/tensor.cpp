// Tensor: construction, views, copies between dtypes and devices.
#include "hone/tensor.h"

#include <cmath>
#include <cstring>

#include "core/caching_allocator.h"
#include "cpu/parallel.h"
#include "cuda/runtime.h"

namespace hone {

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}

std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) n *= d;
  return n;
}

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = device.is_cpu() ? host_allocate(bytes) : cuda_allocator(device.index).allocate(bytes);
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    host_free(data_, bytes_);
  } else {
    try {
      cuda_allocator(device_.index).deallocate(data_);
    } catch (...) {
      // Destructors never throw.
    }
  }
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (std::int64_t d : shape)
    HONE_CHECK(d >= 0, "tensor", "negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(t.nbytes(), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill(0.0);
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor host = empty(shape, dtype);
  host.fill(value);
  return device.is_cpu() ? host : host.to(device);
}

template <class T>
Tensor Tensor::from_vector(const Shape& shape, const std::vector<T>& values) {
  HONE_CHECK(shape_numel(shape) == static_cast<std::int64_t>(values.size()), "tensor",
             "from_vector: ", values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  if constexpr (std::is_same_v<T, bool>) {
    for (std::size_t i = 0; i < values.size(); ++i) t.data<bool>()[i] = values[i];
  } else {
    if (!values.empty()) std::memcpy(t.raw(), values.data(), t.nbytes());
  }
  return t;
}

std::int64_t Tensor::size(std::int64_t dim) const {
  const std::int64_t d = dim < 0 ? dim + ndim() : dim;
  HONE_CHECK(d >= 0 && d < ndim(), "tensor", "dim ", dim, " out of range for ", str());
  return shape_[d];
}

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return cat("Tensor(", dtype_name(dtype_), ", ", shape_str(shape_), ", ", device().str(), ")");
}

void* Tensor::raw() const {
  HONE_CHECK(defined(), "tensor", "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_;
}

template <class T>
T* Tensor::data() const {
  HONE_CHECK(dtype_ == dtype_of<T>(), "tensor", "data<", dtype_name(dtype_of<T>()),
             ">() on a tensor of dtype ", dtype_name(dtype_));
  return static_cast<T*>(raw());
}

Tensor Tensor::view(const Shape& shape) const {
  Shape s = shape;
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      HONE_CHECK(infer < 0, "tensor", "view: more than one -1 in ", shape_str(shape));
      infer = static_cast<std::int64_t>(i);
    } else {
      HONE_CHECK(s[i] >= 0, "tensor", "view: bad shape ", shape_str(shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    HONE_CHECK(known > 0 && numel() % known == 0, "tensor", "view: cannot view ", str(), " as ",
               shape_str(shape));
    s[infer] = numel() / known;
  }
  HONE_CHECK(shape_numel(s) == numel(), "tensor", "view: cannot view ", str(), " as ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = s;
  return t;
}

Tensor Tensor::slice(std::int64_t begin, std::int64_t end) const {
  HONE_CHECK(ndim() >= 1, "tensor", "slice of a scalar");
  HONE_CHECK(0 <= begin && begin <= end && end <= shape_[0], "tensor", "slice [", begin, ", ", end,
             ") out of range for ", str());
  Tensor t = *this;
  const std::int64_t row = numel() / (shape_[0] == 0 ? 1 : shape_[0]);
  t.offset_ += static_cast<std::size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::select(std::int64_t i) const {
  Tensor t = slice(i, i + 1);
  t.shape_.erase(t.shape_.begin());
  return t;
}

Tensor Tensor::flatten_to_2d() const {
  HONE_CHECK(ndim() >= 1, "tensor", "flatten_to_2d of a scalar");
  return view({numel() / (shape_.back() == 0 ? 1 : shape_.back()), shape_.back()});
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  HONE_CHECK(device().is_cpu(), "tensor", "dtype conversion of ", str(), " needs a host tensor");
  Tensor t = empty(shape_, dtype);
  convert(raw(), dtype_, t.raw(), dtype, static_cast<std::size_t>(numel()));
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) const {
  HONE_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_, "tensor", "copy_from: ", src.str(),
             " into ", str());
  if (nbytes() == 0) return;
  const bool from_host = src.device().is_cpu(), to_host = device().is_cpu();
  if (from_host && to_host) {
    std::memmove(raw(), src.raw(), nbytes());
  } else {
    const auto kind = from_host ? cuda::CopyKind::host_to_device
                      : to_host ? cuda::CopyKind::device_to_host
                                : cuda::CopyKind::device_to_device;
    cuda::copy(raw(), src.raw(), nbytes(), kind);
  }
}

void Tensor::fill(double value) const {
  if (!device().is_cpu()) {
    HONE_CHECK(value == 0.0, "tensor", "fill(", value, ") on ", str(), ": only zero fill on a device");
    cuda::memset_zero(raw(), nbytes());
    return;
  }
  const std::size_t n = static_cast<std::size_t>(numel());
  if (n == 0) return;
  if (value == 0.0 && !std::signbit(value)) {
    // +0 is all zero bits in every dtype: memset, in 1 MiB pieces over the threads (a gradient
    // slab is cleared every step).
    constexpr std::int64_t kPiece = std::int64_t{1} << 20;
    char* bytes = static_cast<char*>(raw());
    cpu::parallel_for(static_cast<std::int64_t>(nbytes()), kPiece, [&](std::int64_t b, std::int64_t e) {
      std::memset(bytes + b, 0, static_cast<std::size_t>(e - b));
    });
    return;
  }
  convert(&value, DType::f64, raw(), dtype_, 1);  // first element, then doubling copies
  const std::size_t es = dtype_size(dtype_);
  char* p = static_cast<char*>(raw());
  for (std::size_t done = 1; done < n;) {
    const std::size_t k = std::min(done, n - done);
    std::memcpy(p + done * es, p, k * es);
    done += k;
  }
}

Tensor Tensor::host() const { return device().is_cpu() ? *this : to(Device::cpu()); }

template <class T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = this->host();
  std::vector<T> out(static_cast<std::size_t>(numel()));
  if constexpr (std::is_same_v<T, bool>) {
    const Tensor b = host.to(DType::boolean);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = b.data<bool>()[i];
  } else {
    convert(host.raw(), dtype_, out.data(), dtype_of<T>(), out.size());
  }
  return out;
}

double Tensor::item() const {
  HONE_CHECK(numel() == 1, "tensor", "item() on ", str(), " with ", numel(), " elements");
  return to_vector<double>()[0];
}

#define HONE_TENSOR_INSTANTIATE(T)                                                   \
  template Tensor Tensor::from_vector<T>(const Shape&, const std::vector<T>&);       \
  template T* Tensor::data<T>() const;                                               \
  template std::vector<T> Tensor::to_vector<T>() const;
HONE_TENSOR_INSTANTIATE(float)
HONE_TENSOR_INSTANTIATE(double)
HONE_TENSOR_INSTANTIATE(bf16)
HONE_TENSOR_INSTANTIATE(f16)
HONE_TENSOR_INSTANTIATE(std::int32_t)
HONE_TENSOR_INSTANTIATE(std::int64_t)
HONE_TENSOR_INSTANTIATE(std::uint8_t)
HONE_TENSOR_INSTANTIATE(bool)
#undef HONE_TENSOR_INSTANTIATE

}  // namespace hone

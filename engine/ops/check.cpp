// Argument validation helpers for the op dispatchers.
#include "ops/check.h"

#include "core/caching_allocator.h"

namespace hone::ops {

void expect_defined(std::string_view op, std::string_view name, const Tensor& t) {
  HONE_CHECK(t.defined(), op, "argument '", name, "' is undefined");
}

void expect_float(std::string_view op, std::string_view name, const Tensor& t) {
  expect_defined(op, name, t);
  HONE_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, op, "argument '", name,
             "' has dtype ", dtype_name(t.dtype()), "; expected f32 or f64");
}

void expect_index(std::string_view op, std::string_view name, const Tensor& t) {
  expect_defined(op, name, t);
  HONE_CHECK(t.dtype() == DType::i32 || t.dtype() == DType::i64, op, "argument '", name,
             "' has dtype ", dtype_name(t.dtype()), "; expected i32 or i64");
}

void expect_dtype(std::string_view op, std::string_view name, const Tensor& t,
                  std::string_view ref_name, const Tensor& ref) {
  expect_defined(op, name, t);
  HONE_CHECK(t.dtype() == ref.dtype(), op, "argument '", name, "' has dtype ", dtype_name(t.dtype()),
             "; expected ", dtype_name(ref.dtype()), " like ", ref_name);
}

void expect_shape(std::string_view op, std::string_view name, const Tensor& t, const Shape& expected,
                  const std::string& from) {
  expect_defined(op, name, t);
  HONE_CHECK(t.shape() == expected, op, "argument '", name, "' has shape ", shape_str(t.shape()),
             "; expected ", shape_str(expected), from.empty() ? "" : " from ", from);
}

void expect_ndim(std::string_view op, std::string_view name, const Tensor& t, std::int64_t ndim) {
  expect_defined(op, name, t);
  HONE_CHECK(t.ndim() == ndim, op, "argument '", name, "' has shape ", shape_str(t.shape()),
             "; expected ", ndim, " dimensions");
}

void expect_device(std::string_view op, std::string_view name, const Tensor& t,
                   std::string_view ref_name, const Tensor& ref) {
  expect_defined(op, name, t);
  HONE_CHECK(t.device() == ref.device(), op, "argument '", name, "' is on ", t.device().str(),
             " but ", ref_name, " is on ", ref.device().str());
}

void expect_same_or_apart(std::string_view op, std::string_view name, const Tensor& t,
                          std::string_view ref_name, const Tensor& ref) {
  if (ref.numel() == 0 || ref.raw() == t.raw()) return;
  const auto* r0 = static_cast<const char*>(ref.raw());
  const auto* t0 = static_cast<const char*>(t.raw());
  HONE_CHECK(!(r0 < t0 + t.nbytes() && t0 < r0 + ref.nbytes()), op, "argument '", name, "' ",
             shape_str(t.shape()), " partly overlaps ", ref_name, " ", shape_str(ref.shape()));
}

std::string described(std::string_view name, const Tensor& t) {
  return cat(name, " ", shape_str(t.shape()));
}

void no_cuda_kernel(std::string_view op) {
  fail(op, "no CUDA kernel for this op yet; run it on the cpu device");
}

void cuda_unavailable(std::string_view op, std::string_view family) {
#ifdef HONE_WITH_CUDA
  fail(op, cat("got a CUDA tensor but the '", family,
               "' kernels are not compiled into this build (HONE_KERNEL_FAMILIES)"));
#else
  (void)family;
  fail(op, "got a CUDA tensor but hone was built without CUDA; run it on the cpu device");
#endif
}

void expect_cuda_dtype(std::string_view op, std::string_view name, const Tensor& t,
                       std::initializer_list<DType> allowed) {
  expect_defined(op, name, t);
  for (DType d : allowed)
    if (t.dtype() == d) return;
  std::string list;
  std::size_t i = 0;
  for (DType d : allowed) {
    if (i > 0) list += i + 1 == allowed.size() ? " or " : ", ";
    list += dtype_name(d);
    ++i;
  }
  fail(op, cat("argument '", name, "' has dtype ", dtype_name(t.dtype()), "; expected ", list,
               " on ", t.device().str()));
}

DeviceScratch::DeviceScratch(int device, std::size_t bytes) : device_(device), bytes_(bytes) {
  if (bytes > 0) ptr_ = cuda_allocator(device).allocate(bytes);
}

DeviceScratch::~DeviceScratch() {
  if (!ptr_) return;
  try {
    cuda_allocator(device_).deallocate(ptr_);
  } catch (...) {
    // Destructors never throw; the allocator existed when the block was taken from it.
  }
}

}  // namespace hone::ops

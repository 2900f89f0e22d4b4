// Argument validation shared by the op dispatchers: every failure names the op, the argument
// and the offending value (shape, dtype or device); and what the CUDA branches share (dtype
// rules of the kernels, workspace from the device's caching allocator). No CUDA types here.
#pragma once
#include <cstddef>
#include <initializer_list>
#include <string_view>

#include "hone/tensor.h"

namespace hone::ops {

void expect_defined(std::string_view op, std::string_view name, const Tensor& t);
// f32 or f64 (what the CPU reference computes in).
void expect_float(std::string_view op, std::string_view name, const Tensor& t);
// i32 or i64.
void expect_index(std::string_view op, std::string_view name, const Tensor& t);
void expect_dtype(std::string_view op, std::string_view name, const Tensor& t,
                  std::string_view ref_name, const Tensor& ref);
// "[op] argument 'w' has shape (5); expected (4) from x (3, 4)". `from` names what the
// expectation was derived from (e.g. "x (3, 4)"); may be empty.
void expect_shape(std::string_view op, std::string_view name, const Tensor& t, const Shape& expected,
                  const std::string& from);
void expect_ndim(std::string_view op, std::string_view name, const Tensor& t, std::int64_t ndim);
void expect_device(std::string_view op, std::string_view name, const Tensor& t,
                   std::string_view ref_name, const Tensor& ref);
// An output that overlaps an input must be the same tensor (in place): a partial overlap would
// make the result depend on the order rows or chunks run in.
void expect_same_or_apart(std::string_view op, std::string_view name, const Tensor& t,
                          std::string_view ref_name, const Tensor& ref);
// "x (3, 4)": a tensor's name with its shape, for `from` strings.
std::string described(std::string_view name, const Tensor& t);

// Where an op runs: the CPU reference, or CUDA (which throws until the family's kernels exist).
[[noreturn]] void no_cuda_kernel(std::string_view op);
// A CUDA tensor reached `op` but its kernels are not in this build: hone was built without
// CUDA, or HONE_KERNEL_FAMILIES left `family` (a folder of kernels/) out.
[[noreturn]] void cuda_unavailable(std::string_view op, std::string_view family);

// ---------------------------------------------------------------- CUDA branches
// The dtypes a kernel takes for an argument on a CUDA device:
// "[rmsnorm_fwd] argument 'x' has dtype f32; expected bf16 on cuda:0".
void expect_cuda_dtype(std::string_view op, std::string_view name, const Tensor& t,
                       std::initializer_list<DType> allowed);

// Scratch device memory for one op's kernels (a workspace), from the device's caching allocator
// and handed back when the op returns. The allocator is not stream-aware, so the block may go to
// the next request at once: that is safe because ops enqueue on the device's current stream and
// the next user's kernels queue behind these. Zero bytes allocates nothing (get() is null).
class DeviceScratch {
 public:
  DeviceScratch(int device, std::size_t bytes);
  ~DeviceScratch();
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  int device_;
  std::size_t bytes_;
  void* ptr_ = nullptr;
};

// Calls f(float{}) or f(double{}) for an f32/f64 dtype.
template <class F>
void dispatch_float(std::string_view op, DType t, F&& f) {
  if (t == DType::f32) return f(float{});
  if (t == DType::f64) return f(double{});
  fail(op, cat("dtype ", dtype_name(t), " is not supported by the CPU reference (f32, f64)"));
}

// Calls f(std::int32_t{}) or f(std::int64_t{}) for an index dtype checked by expect_index.
template <class F>
void dispatch_index(DType t, F&& f) {
  if (t == DType::i32) return f(std::int32_t{});
  return f(std::int64_t{});
}

}  // namespace hone::ops

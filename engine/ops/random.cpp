// ops::uniform_: Philox uniforms on the host or through the CUDA kernel, enqueued on the
// device's current stream (cuda/context.h) like every op: asynchronous, and ordered before any
// later op or copy of the tensor.
#include "hone/random.h"

#include "ops/check.h"
#include "ops/ops.h"

#ifdef HONE_WITH_CUDA
#include "cuda/context.h"
#include "kernels/random/random.h"
#endif

namespace hone::ops {

void uniform_(const Tensor& x, std::uint64_t seed, std::uint64_t offset) {
  constexpr const char* kOp = "uniform_";
  expect_defined(kOp, "x", x);
  if (x.device().is_cuda()) {
#ifdef HONE_WITH_CUDA
    HONE_CHECK(x.dtype() == DType::f32, kOp, "argument 'x' has dtype ", dtype_name(x.dtype()),
               "; expected f32 on cuda");
    kernels::PhiloxUniformParams p;
    p.out = x.data<float>();
    p.n = x.numel();
    p.seed = seed;
    p.offset = offset;
    cuda::DeviceGuard device(x.device().index);
    kernels::philox_uniform(p, cuda::current_stream());
    return;
#else
    no_cuda_kernel(kOp);
#endif
  }
  expect_float(kOp, "x", x);
  dispatch_float(kOp, x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = x.data<T>();
    const std::int64_t n = x.numel();
    for (std::int64_t b = 0; b * 4 < n; ++b) {
      const Philox4 r = philox_block(seed, offset + static_cast<std::uint64_t>(b));
      for (std::int64_t j = 0; j < 4 && b * 4 + j < n; ++j) p[b * 4 + j] = philox_uniform(r.x[j]);
    }
  });
}

}  // namespace hone::ops

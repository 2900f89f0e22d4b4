// What can be checked of the ops' CUDA dispatch without a device: the error a CUDA tensor gets
// where its kernels are not built, the dtype-rule messages of the CUDA branches, device scratch,
// and that the CPU path still takes only its own dtypes (bf16 host tensors are refused by name).
// The CUDA branches themselves run in tests/gpu/test_gpu_ops.cpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/caching_allocator.h"
#include "hone/device.h"
#include "ops/check.h"
#include "ops/ops.h"
#include "support/random.h"

using namespace hone;
using Catch::Matchers::Contains;

TEST_CASE("a CUDA tensor whose kernels are not built gets an error naming the op", "[cpu]") {
#ifdef HONE_WITH_CUDA
  CHECK_THROWS_WITH(ops::cuda_unavailable("rmsnorm_fwd", "norm"),
                    Contains("[rmsnorm_fwd]") && Contains("'norm' kernels are not compiled") &&
                        Contains("HONE_KERNEL_FAMILIES"));
#else
  CHECK_THROWS_WITH(ops::cuda_unavailable("rmsnorm_fwd", "norm"),
                    Contains("[rmsnorm_fwd]") && Contains("hone was built without CUDA"));
  // Without CUDA no device tensor can even be made: the allocator says why.
  CHECK_THROWS_WITH(Tensor::empty({4}, DType::bf16, Device::cuda(0)),
                    Contains("built without CUDA"));
#endif
  CHECK_THROWS_WITH(ops::cuda_unavailable("sample", "sampling"), Contains("[sample]"));
}

TEST_CASE("CUDA dtype rules name the op, the argument, the dtype and the device", "[cpu]") {
  const Tensor f = Tensor::zeros({2}, DType::f32);
  const Tensor b = Tensor::zeros({2}, DType::bf16);
  const Tensor d = Tensor::zeros({2}, DType::f64);
  CHECK_NOTHROW(ops::expect_cuda_dtype("op", "x", b, {DType::bf16}));
  CHECK_NOTHROW(ops::expect_cuda_dtype("op", "x", f, {DType::bf16, DType::f32}));
  CHECK_THROWS_WITH(ops::expect_cuda_dtype("rmsnorm_fwd", "x", f, {DType::bf16}),
                    Contains("[rmsnorm_fwd] argument 'x' has dtype f32; expected bf16 on cpu"));
  CHECK_THROWS_WITH(ops::expect_cuda_dtype("add_", "dst", d, {DType::f32, DType::bf16}),
                    Contains("argument 'dst' has dtype f64; expected f32 or bf16"));
  CHECK_THROWS_WITH(ops::expect_cuda_dtype("op", "t", d, {DType::f32, DType::bf16, DType::i64}),
                    Contains("expected f32, bf16 or i64"));
  CHECK_THROWS_WITH(ops::expect_cuda_dtype("op", "w", Tensor{}, {DType::bf16}),
                    Contains("[op] argument 'w' is undefined"));
}

TEST_CASE("device scratch of zero bytes allocates nothing; otherwise it needs a device", "[cpu]") {
  {
    const ops::DeviceScratch none(0, 0);
    CHECK(none.get() == nullptr);
    CHECK(none.bytes() == 0);
  }
  if (cuda_device_count() == 0) {
    CHECK_THROWS_WITH(ops::DeviceScratch(0, 256), Contains("CUDA device 0 does not exist"));
  } else {
    const std::size_t before = cuda_allocator(0).stats().allocated;
    {
      const ops::DeviceScratch s(0, 256);
      CHECK(s.get() != nullptr);
      CHECK(cuda_allocator(0).stats().allocated > before);
    }
    CHECK(cuda_allocator(0).stats().allocated == before);  // handed back at scope end
  }
}

TEST_CASE("the CPU path of every wired op still refuses bf16 host tensors by name", "[cpu]") {
  // bf16 is a CUDA dtype: on the host the reference takes f32/f64 only, with the same messages
  // as before the CUDA branches existed.
  const Tensor x = test::random_tensor({3, 4}, DType::bf16, 1);
  const Tensor w = test::random_tensor({4}, DType::bf16, 2);
  const Tensor r = Tensor::empty({3}, DType::bf16);
  const std::string expected = "has dtype bf16; expected f32 or f64";
  CHECK_THROWS_WITH(ops::rmsnorm_fwd(x, w, 1e-5, x.clone(), r),
                    Contains("[rmsnorm_fwd] argument 'x'") && Contains(expected));
  CHECK_THROWS_WITH(ops::layernorm_bwd(x, x, w, r, r, x.clone(), w.clone(), w.clone()),
                    Contains("[layernorm_bwd] argument 'x'") && Contains(expected));
  const Tensor q = test::random_tensor({2, 1, 4}, DType::bf16, 3);
  CHECK_THROWS_WITH(ops::rope_fwd(q, Tensor::zeros({2}, DType::i64), {}, q),
                    Contains("[rope_fwd] argument 'x'") && Contains(expected));
  CHECK_THROWS_WITH(ops::swiglu_fwd(x, x, x.clone()), Contains("[swiglu_fwd] argument 'gate'") && Contains(expected));
  CHECK_THROWS_WITH(ops::gelu_bwd(x, x, x.clone()), Contains("[gelu_bwd] argument 'x'") && Contains(expected));
  CHECK_THROWS_WITH(ops::add_(x, x), Contains("[add_] argument 'dst'") && Contains(expected));
  CHECK_THROWS_WITH(ops::scale_(x, 2.0), Contains("[scale_] argument 'x'") && Contains(expected));
  CHECK_THROWS_WITH(ops::bias_add_(x, w), Contains("[bias_add_] argument 'x'") && Contains(expected));
  CHECK_THROWS_WITH(ops::bias_bwd(x, w.clone()), Contains("[bias_bwd] argument 'dy'") && Contains(expected));
  const Tensor ids = Tensor::zeros({3}, DType::i64);
  CHECK_THROWS_WITH(ops::embedding_fwd(ids, x, x.clone()),
                    Contains("[embedding_fwd] argument 'table'") && Contains(expected));
  CHECK_THROWS_WITH(ops::embedding_bwd(ids, x, x.clone()),
                    Contains("[embedding_bwd] argument 'dout'") && Contains(expected));
  CHECK_THROWS_WITH(ops::cross_entropy_fwd(x, ids, {}, r, r.clone()),
                    Contains("[cross_entropy_fwd] argument 'logits'") && Contains(expected));
  CHECK_THROWS_WITH(ops::adamw_step(w, w, w, w, {}),
                    Contains("[adamw_step] argument 'param'") && Contains(expected));
  CHECK_THROWS_WITH(ops::grad_norm({Tensor::zeros({2}, DType::f32), w}),
                    Contains("[grad_norm] argument 'grads[1]'") && Contains(expected));
  CHECK_THROWS_WITH(ops::clip_grad_norm({w}, 1.0),
                    Contains("[clip_grad_norm] argument 'grads[0]'") && Contains(expected));
  CHECK_THROWS_WITH(ops::sample(x, {}, Tensor::empty({3}, DType::i64)),
                    Contains("[sample] argument 'logits'") && Contains(expected));
  CHECK_THROWS_WITH(ops::argmax(x, Tensor::empty({3}, DType::i64)),
                    Contains("[argmax] argument 'logits'") && Contains(expected));
}

TEST_CASE("an empty gradient list has norm 0 on any build", "[cpu]") {
  CHECK(ops::grad_norm({}) == 0.0);
  CHECK(ops::clip_grad_norm({}, 1.0) == 0.0);
}

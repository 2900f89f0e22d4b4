// CUDA device tests: the caching allocator on a real device and tensor round trips. Built into
// a binary that exits with the skip code when no device is present.
#include <catch2/catch.hpp>

#include "core/caching_allocator.h"
#include "hone/tensor.h"
#include "support/device_tag.h"

using namespace hone;

TEST_CASE("device tensors round-trip through the caching allocator", HONE_DEVICE_TAG) {
  const Tensor h = Tensor::from_vector<float>({3}, {1.0f, -2.0f, 3.5f});
  const std::size_t before = cuda_allocator(0).stats().allocated;
  {
    const Tensor d = h.to(Device::cuda(0));
    CHECK(d.device() == Device::cuda(0));
    CHECK(cuda_allocator(0).stats().allocated > before);
    CHECK(d.to(Device::cpu()).to_vector<float>() == std::vector<float>{1.0f, -2.0f, 3.5f});
    const Tensor z = Tensor::zeros({129}, DType::f32, Device::cuda(0));
    CHECK(z.to_vector<float>()[128] == 0.0f);
  }
  CHECK(cuda_allocator(0).stats().allocated == before);
  const std::size_t raw = cuda_allocator(0).stats().raw_allocs;
  const Tensor again = h.to(Device::cuda(0));  // served from the cache
  CHECK(cuda_allocator(0).stats().raw_allocs == raw);
}

#include "ops/ops.h"

TEST_CASE("philox uniforms on the device equal the host values", HONE_DEVICE_TAG) {
  for (std::int64_t n : {1, 31, 32, 33, 127, 128, 129, 100003}) {
    const Tensor host = Tensor::empty({n}, DType::f32);
    const Tensor dev = Tensor::empty({n}, DType::f32, Device::cuda(0));
    ops::uniform_(host, 1234, 77);
    ops::uniform_(dev, 1234, 77);
    REQUIRE(dev.to_vector<float>() == host.to_vector<float>());
  }
}

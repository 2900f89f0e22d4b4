// The activation kernels on a CUDA device against engine/cpu: ragged and large sizes, the
// scalar path for unaligned pointers, two runs bitwise identical. Skipped without a device.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/activation.h"
#include "cuda/runtime.h"
#include "support/device.h"
#include "kernels/activation/activation.h"
#include "support/random.h"
#include "support/tolerance.h"

#ifdef HONE_WITH_CUDA
#include <cuda_runtime.h>

using namespace hone;
using test::DeviceBuffer;
using test::DeviceCopy;
using test::sync;

namespace {

std::vector<std::uint16_t> bits(const Tensor& t) {
  std::vector<std::uint16_t> b(static_cast<std::size_t>(t.numel()));
  std::memcpy(b.data(), t.raw(), b.size() * 2);
  return b;
}

// Within the bf16 tolerance and at most one bf16 ulp from the f32 reference rounded to bf16.
void check_close(const Tensor& actual, const std::vector<float>& reference,
                 const std::string& what) {
  const Tensor ref = Tensor::from_vector<float>(actual.shape(), reference).to(DType::bf16);
  INFO(what);
  REQUIRE(test::compare(actual, ref) == "");
  const auto a = bits(actual), r = bits(ref);
  int worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto ordered = [](std::uint16_t v) { return v & 0x8000 ? -(v & 0x7fff) : (v & 0x7fff); };
    worst = std::max(worst, std::abs(ordered(a[i]) - ordered(r[i])));
  }
  CHECK(worst <= 1);
}

const std::vector<std::int64_t> kSizes = {1, 31, 32, 33, 127, 128, 129, 4109, (1 << 20) + 3};

}  // namespace

TEST_CASE("swiglu kernels on the device match engine/cpu", "[gpu]") {
  for (std::int64_t n : kSizes) {
    for (std::size_t pad : {0, 2}) {  // 2 bytes: nothing 16-byte aligned, the scalar path
      const std::string what = "n = " + std::to_string(n) + " pad " + std::to_string(pad);
      const Tensor gate = test::random_tensor({n}, DType::bf16, 1 + n, -6, 6);
      const Tensor up = test::random_tensor({n}, DType::bf16, 2 + n, -2, 2);
      const Tensor dout = test::random_tensor({n}, DType::bf16, 3 + n);
      const auto g = gate.to_vector<float>(), u = up.to_vector<float>();
      const auto d = dout.to_vector<float>();
      std::vector<float> ref(n), ref_dg(n), ref_du(n);
      cpu::swiglu_fwd<float>(g.data(), u.data(), n, ref.data());
      cpu::swiglu_bwd<float>(d.data(), g.data(), u.data(), n, ref_dg.data(), ref_du.data());

      const DeviceCopy dg_(gate, pad), du_(up, pad), dd_(dout, pad);
      const Tensor nan = test::poisoned({n}, DType::bf16);
      const DeviceCopy out(nan, pad), dgate(nan, pad), dup(nan, pad);
      std::vector<std::uint16_t> first;
      for (int run = 0; run < 2; ++run) {
        kernels::swiglu_fwd({dg_.get(), du_.get(), out.get(), n}, nullptr);
        kernels::swiglu_bwd({dd_.get(), dg_.get(), du_.get(), dgate.get(), dup.get(), n}, nullptr);
        sync();
        std::vector<std::uint16_t> all = bits(out.to_host({n}, DType::bf16));
        for (const DeviceCopy* b : {&dgate, &dup}) {
          const auto v = bits(b->to_host({n}, DType::bf16));
          all.insert(all.end(), v.begin(), v.end());
        }
        if (run == 0) first = all;
        CHECK(all == first);
      }
      check_close(out.to_host({n}, DType::bf16), ref, "swiglu_fwd " + what);
      check_close(dgate.to_host({n}, DType::bf16), ref_dg, "swiglu_bwd dgate " + what);
      check_close(dup.to_host({n}, DType::bf16), ref_du, "swiglu_bwd dup " + what);
    }
  }
}

TEST_CASE("gelu kernels on the device match engine/cpu", "[gpu]") {
  for (std::int64_t n : kSizes) {
    for (std::size_t pad : {0, 2}) {
      const std::string what = "n = " + std::to_string(n) + " pad " + std::to_string(pad);
      const Tensor x = test::random_tensor({n}, DType::bf16, 5 + n, -5, 5);
      const Tensor dy = test::random_tensor({n}, DType::bf16, 6 + n);
      const auto xv = x.to_vector<float>(), dv = dy.to_vector<float>();
      std::vector<float> ref(n), ref_dx(n);
      cpu::gelu_fwd<float>(xv.data(), n, ref.data());
      cpu::gelu_bwd<float>(dv.data(), xv.data(), n, ref_dx.data());

      const DeviceCopy dx_in(x, pad), ddy(dy, pad);
      const Tensor nan = test::poisoned({n}, DType::bf16);
      const DeviceCopy y(nan, pad), dx(nan, pad);
      kernels::gelu_fwd({dx_in.get(), y.get(), n}, nullptr);
      kernels::gelu_bwd({ddy.get(), dx_in.get(), dx.get(), n}, nullptr);
      sync();
      const Tensor y1 = y.to_host({n}, DType::bf16), dx1 = dx.to_host({n}, DType::bf16);
      kernels::gelu_fwd({dx_in.get(), y.get(), n}, nullptr);
      kernels::gelu_bwd({ddy.get(), dx_in.get(), dx.get(), n}, nullptr);
      sync();
      CHECK(bits(y.to_host({n}, DType::bf16)) == bits(y1));
      CHECK(bits(dx.to_host({n}, DType::bf16)) == bits(dx1));
      check_close(y1, ref, "gelu_fwd " + what);
      check_close(dx1, ref_dx, "gelu_bwd " + what);
    }
  }
}

#endif  // HONE_WITH_CUDA

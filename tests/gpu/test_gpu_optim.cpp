// Optimizer kernels on a CUDA device against engine/cpu/optim: the gradient norm, the clip
// factor and fused AdamW over large and misaligned tensors with bf16 gradients, and bitwise
// repeatability of the norm. Skipped without a device.
#include <catch2/catch.hpp>

#ifdef HONE_WITH_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/runtime.h"
#include "support/device.h"
#include "hone/dtype.h"

#include "cpu/optim.h"
#include "kernels/optim/optim.h"
#include "support/tolerance.h"

using namespace hone;
using test::DeviceBuffer;
using test::DeviceCopy;
using test::sync;

namespace {

}  // namespace

TEST_CASE("grad norm, clip and fused AdamW on the device match the CPU reference", "[gpu][optim]") {
  const std::vector<std::int64_t> sizes = {1, 4097, (1 << 20) + 3, 3000000, 129};
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  struct Host {
    std::vector<float> p, m, v, g;
    std::vector<std::uint16_t> gb;
  };
  std::vector<Host> host(sizes.size());
  std::vector<DeviceBuffer*> owned;
  std::vector<kernels::AdamWTensor> tensors(sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::int64_t n = sizes[i];
    const std::int64_t shift = i == 2 ? 1 : 0;  // one misaligned tensor: the scalar path
    Host& h = host[i];
    h.p.resize(n), h.m.resize(n), h.v.resize(n), h.g.resize(n), h.gb.resize(n);
    for (std::int64_t e = 0; e < n; ++e) {
      h.p[e] = val(rng), h.m[e] = 0.1f * val(rng), h.v[e] = 0.01f * std::fabs(val(rng));
      h.gb[e] = to_bf16(2.0f * val(rng)).bits;
      h.g[e] = from_bf16(bf16{h.gb[e]});
    }
    auto upload = [&](const auto& v, std::size_t elem) {
      owned.push_back(new DeviceBuffer((n + shift) * elem));
      cuda::copy(static_cast<char*>(owned.back()->ptr) + shift * elem, v.data(), n * elem,
                 cuda::CopyKind::host_to_device);
      return static_cast<char*>(owned.back()->ptr) + shift * elem;
    };
    tensors[i].param = reinterpret_cast<float*>(upload(h.p, 4));
    tensors[i].m = reinterpret_cast<float*>(upload(h.m, 4));
    tensors[i].v = reinterpret_cast<float*>(upload(h.v, 4));
    tensors[i].grad = upload(h.gb, 2);
    owned.push_back(new DeviceBuffer((n + shift) * 2));
    tensors[i].param_bf16 = static_cast<char*>(owned.back()->ptr) + shift * 2;
    tensors[i].n = n;
  }
  const int count = static_cast<int>(tensors.size());
  DeviceBuffer ws(kernels::grad_norm_workspace_bytes(tensors.data(), count)), scalars(8);
  kernels::GradNormParams np;
  np.tensors = tensors.data();
  np.count = count;
  np.workspace = ws.ptr;
  np.norm = scalars.as<float>();
  np.clip_scale = scalars.as<float>() + 1;
  np.max_norm = 1.0;
  kernels::grad_norm(np, nullptr);
  kernels::AdamWParams ap;
  ap.tensors = tensors.data();
  ap.count = count;
  ap.lr = 1e-3;
  ap.weight_decay = 0.01;
  ap.step = 7;
  ap.grad_scale = scalars.as<float>() + 1;
  kernels::adamw_step(ap, nullptr);
  sync();
  const std::vector<float> s = scalars.download<float>(2);

  double sum = 0;
  for (const Host& h : host) sum += cpu::grad_sum_squares<float>(h.g.data(), h.g.size());
  const double norm = std::sqrt(sum), clip = 1.0 / (norm + 1e-6);
  CHECK(std::fabs(s[0] - norm) <= 1e-6 * norm);
  CHECK(std::fabs(s[1] - clip) <= 1e-6 * clip);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    CAPTURE(i);
    Host& h = host[i];
    std::vector<float> g = h.g;
    for (float& x : g) x *= s[1];
    cpu::adamw_step<float>(h.p.data(), g.data(), h.m.data(), h.v.data(), sizes[i],
                           {ap.lr, ap.beta1, ap.beta2, ap.eps, ap.weight_decay, ap.step});
    std::vector<float> p(sizes[i]);
    std::vector<std::uint16_t> pb(sizes[i]);
    cuda::copy(p.data(), tensors[i].param, p.size() * 4, cuda::CopyKind::device_to_host);
    cuda::copy(pb.data(), tensors[i].param_bf16, pb.size() * 2, cuda::CopyKind::device_to_host);
    CHECK(test::compare(std::vector<double>(p.begin(), p.end()),
                        std::vector<double>(h.p.begin(), h.p.end()), {1e-6, 1e-5}) == "");
    std::int64_t copy_mismatch = 0;
    for (std::size_t e = 0; e < p.size(); ++e) copy_mismatch += pb[e] != to_bf16(p[e]).bits;
    CHECK(copy_mismatch == 0);
  }
  // The norm is the same bits on a second run.
  kernels::grad_norm(np, nullptr);
  sync();
  CHECK(scalars.download<float>(1)[0] == s[0]);
  for (DeviceBuffer* b : owned) delete b;
}
#endif

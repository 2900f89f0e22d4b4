// The RoPE kernels on a CUDA device against engine/cpu: ragged and model-sized shapes, packed
// positions with large offsets, llama3 scaling, in place, two runs bitwise identical. Skipped
// without a device.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/runtime.h"
#include "support/device.h"
#include "kernels/rope/rope.h"
#include "ops/ops.h"
#include "support/random.h"
#include "support/tolerance.h"

#ifdef HONE_WITH_CUDA
#include <cuda_runtime.h>

using namespace hone;
using test::DeviceBuffer;
using test::DeviceCopy;
using test::sync;
using kernels::RopeIndexType;
using kernels::RopeParams;

namespace {

std::vector<unsigned char> bytes(const Tensor& t) {
  std::vector<unsigned char> b(t.nbytes());
  std::memcpy(b.data(), t.raw(), b.size());
  return b;
}

using test::bf16_close;

}  // namespace

TEST_CASE("rope kernels on the device match engine/cpu", "[gpu]") {
  struct Case {
    std::int64_t tokens, heads, head_dim;
    bool llama3;
    DType pos_type;
    std::int64_t seq, offset;
  };
  const std::vector<Case> cases = {
      {1, 1, 2, false, DType::i64, 1, 0},          {33, 1, 6, true, DType::i64, 7, 9000},
      {129, 2, 34, false, DType::i32, 40, 5},      {130, 8, 128, true, DType::i32, 100, 131000},
      {4096, 32, 128, true, DType::i64, 1024, 7},  {2048, 8, 64, false, DType::i32, 2048, 0},
      {1000, 16, 256, true, DType::i64, 300, 60000}, {777, 3, 96, false, DType::i64, 100, 100000},
  };
  for (const Case& c : cases) {
    INFO("tokens " << c.tokens << " heads " << c.heads << " head_dim " << c.head_dim);
    ops::RopeArgs args;
    if (c.llama3) {
      args.theta = 500000.0;
      args.scaling.kind = ops::RopeScaling::Kind::llama3;
    }
    const std::vector<double> inv = ops::rope_inv_freq(c.head_dim, args);
    const Shape shape = {c.tokens, c.heads, c.head_dim};
    const Tensor x = test::random_tensor(shape, DType::bf16, 10 + c.tokens);
    std::vector<std::int64_t> pv(static_cast<std::size_t>(c.tokens));
    for (std::int64_t t = 0; t < c.tokens; ++t) pv[t] = (t / c.seq) * c.offset + t % c.seq;
    const Tensor pos = Tensor::from_vector<std::int64_t>({c.tokens}, pv).to(c.pos_type);

    const DeviceCopy dx(x), dpos(pos), dinv(inv.data(), inv.size() * sizeof(double));
    const DeviceCopy dy(test::poisoned(shape, DType::bf16));
    for (bool backward : {false, true}) {
      INFO((backward ? "backward" : "forward"));
      const Tensor ref = Tensor::empty(shape, DType::f32);
      if (backward)
        ops::rope_bwd(x.to(DType::f32), pos, args, ref);
      else
        ops::rope_fwd(x.to(DType::f32), pos, args, ref);
      RopeParams p;
      p.x = dx.get();
      p.y = dy.get();
      p.positions = dpos.get();
      p.positions_type = c.pos_type == DType::i32 ? RopeIndexType::i32 : RopeIndexType::i64;
      p.inv_freq = static_cast<const double*>(dinv.get());
      p.tokens = c.tokens, p.heads = c.heads, p.head_dim = c.head_dim;
      backward ? kernels::rope_bwd(p, nullptr) : kernels::rope_fwd(p, nullptr);
      sync();
      const Tensor y1 = dy.to_host(shape, DType::bf16);
      CHECK(bf16_close(y1, ref, 1e-6) == "");
      backward ? kernels::rope_bwd(p, nullptr) : kernels::rope_fwd(p, nullptr);
      sync();
      CHECK(bytes(dy.to_host(shape, DType::bf16)) == bytes(y1));
      // In place: y = x on a fresh copy gives the same bits.
      const DeviceCopy inplace(x);
      p.x = p.y = inplace.get();
      backward ? kernels::rope_bwd(p, nullptr) : kernels::rope_fwd(p, nullptr);
      sync();
      CHECK(bytes(inplace.to_host(shape, DType::bf16)) == bytes(y1));
    }
  }
}

#endif  // HONE_WITH_CUDA

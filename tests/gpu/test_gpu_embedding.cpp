// Embedding kernels on a CUDA device against engine/cpu/embedding: a large vocabulary, hot ids,
// the gather bit for bit and the sorted scatter-add backward bit for bit (f32 gradient), and
// repeatability. Skipped without a device.
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

#include "cpu/embedding.h"
#include "kernels/embedding/embedding.h"

using namespace hone;
using test::DeviceBuffer;
using test::DeviceCopy;
using test::sync;

namespace {

}  // namespace

TEST_CASE("embedding kernels on the device match the CPU reference bit for bit", "[gpu][embedding]") {
  const std::int64_t tokens = 8191, vocab = 128256, dim = 256;
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<std::int64_t> id(0, vocab - 1), hot(0, 15);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  std::vector<std::int64_t> ids(tokens);
  for (auto& v : ids) v = rng() % 3 == 0 ? hot(rng) : id(rng);  // a third are 16 hot ids
  std::vector<std::uint16_t> table(vocab * dim), dout(tokens * dim);
  for (auto& b : table) b = to_bf16(val(rng)).bits;
  for (auto& b : dout) b = to_bf16(val(rng)).bits;
  std::vector<float> grad0(vocab * dim);
  for (auto& g : grad0) g = val(rng);

  DeviceBuffer d_ids(tokens * 8), d_table(table.size() * 2), d_out(dout.size() * 2),
      d_dout(dout.size() * 2), d_grad(grad0.size() * 4),
      d_ws(kernels::embedding_bwd_workspace_bytes(tokens, vocab));
  d_ids.upload(ids);
  d_table.upload(table);
  d_dout.upload(dout);
  d_grad.upload(grad0);

  kernels::EmbeddingFwdParams f;
  f.tokens = tokens;
  f.vocab = vocab;
  f.dim = dim;
  f.ids = d_ids.ptr;
  f.table = d_table.ptr;
  f.out = d_out.ptr;
  kernels::embedding_fwd(f, nullptr);
  sync();
  const std::vector<std::uint16_t> out = d_out.download<std::uint16_t>(dout.size());
  for (std::int64_t n = 0; n < tokens; ++n)
    REQUIRE(std::memcmp(out.data() + n * dim, table.data() + ids[n] * dim, dim * 2) == 0);

  kernels::EmbeddingBwdParams b;
  b.tokens = tokens;
  b.vocab = vocab;
  b.dim = dim;
  b.ids = d_ids.ptr;
  b.dout = d_dout.ptr;
  b.dtable = d_grad.ptr;
  b.grad_type = kernels::EmbeddingType::f32;
  b.workspace = d_ws.ptr;
  kernels::embedding_bwd(b, nullptr);
  sync();
  const std::vector<float> got = d_grad.download<float>(grad0.size());
  std::vector<float> want = grad0, dout_f(dout.size());
  for (std::size_t i = 0; i < dout.size(); ++i) dout_f[i] = from_bf16(bf16{dout[i]});
  cpu::embedding_bwd<float, std::int64_t>(ids.data(), dout_f.data(), tokens, vocab, dim,
                                          want.data());
  std::int64_t mismatches = 0;
  for (std::size_t i = 0; i < want.size(); ++i) mismatches += got[i] != want[i];
  CHECK(mismatches == 0);

  // Again from the same start: the same bits.
  d_grad.upload(grad0);
  kernels::embedding_bwd(b, nullptr);
  sync();
  CHECK(d_grad.download<float>(grad0.size()) == got);
}
#endif

// The norm kernels on a CUDA device against engine/cpu: RMSNorm and LayerNorm, plain and fused
// with the residual add, ragged and model-sized shapes (more rows than reduction slots), two
// runs bitwise identical. Skipped without a device.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/norm.h"
#include "cuda/runtime.h"
#include "support/device.h"
#include "kernels/norm/norm.h"
#include "support/random.h"
#include "support/tolerance.h"

#ifdef HONE_WITH_CUDA
#include <cuda_runtime.h>

using namespace hone;
using test::DeviceBuffer;
using test::DeviceCopy;
using test::sync;
using kernels::NormBwdParams;
using kernels::NormFwdParams;
using kernels::NormGradType;
using kernels::NormKind;

namespace {

constexpr double kEps = 1e-5;
// fp32 sums of up to a few thousand O(1) terms (dw, db) and of one row (the statistics).
constexpr test::Tolerance kSumTolerance{1e-3, 1e-3};
constexpr test::Tolerance kStatTolerance{1e-5, 1e-5};

std::vector<unsigned char> bytes(const Tensor& t) {
  std::vector<unsigned char> b(t.nbytes());
  std::memcpy(b.data(), t.raw(), b.size());
  return b;
}

using test::bf16_close;

std::vector<double> as_doubles(const std::vector<float>& v) { return {v.begin(), v.end()}; }

struct Results {
  Tensor y, residual_out, mean, rstd, dx, dw, db;
  std::vector<unsigned char> all() const {
    std::vector<unsigned char> out;
    for (const Tensor* t : {&y, &residual_out, &mean, &rstd, &dx, &dw, &db}) {
      const auto b = bytes(*t);
      out.insert(out.end(), b.begin(), b.end());
    }
    return out;
  }
};

void run_case(NormKind kind, std::int64_t rows, std::int64_t dim, bool fused, NormGradType gt,
              std::uint64_t seed) {
  const bool layer = kind == NormKind::layer;
  const DType gdt = gt == NormGradType::f32 ? DType::f32 : DType::bf16;
  INFO((layer ? "layer" : "rms") << " rows " << rows << " dim " << dim << (fused ? " fused" : ""));
  const Shape rd = {rows, dim};
  const Tensor x = test::random_tensor(rd, DType::bf16, seed + 1, -2, 2);
  const Tensor res = test::random_tensor(rd, DType::bf16, seed + 2);
  const Tensor w = test::random_tensor({dim}, DType::bf16, seed + 3, 0.5, 1.5);
  const Tensor b = test::random_tensor({dim}, DType::bf16, seed + 4, -0.5, 0.5);
  const Tensor dy = test::random_tensor(rd, DType::bf16, seed + 5);
  const Tensor dres = test::random_tensor(rd, DType::bf16, seed + 6);
  const Tensor dw0 = test::random_tensor({dim}, gdt, seed + 7);
  const Tensor db0 = test::random_tensor({dim}, gdt, seed + 8);

  const DeviceCopy d_x(x), d_res(res), d_w(w), d_b(b), d_dy(dy), d_dres(dres);
  const DeviceCopy d_y(test::poisoned(rd, DType::bf16)), d_rout(test::poisoned(rd, DType::bf16));
  const DeviceCopy d_mean(test::poisoned({rows}, DType::f32));
  const DeviceCopy d_rstd(test::poisoned({rows}, DType::f32));
  const DeviceCopy d_dx(test::poisoned(rd, DType::bf16));

  auto run = [&]() {
    NormFwdParams f;
    f.kind = kind;
    f.x = d_x.get();
    f.residual = fused ? d_res.get() : nullptr;
    f.residual_out = fused ? d_rout.get() : nullptr;
    f.w = d_w.get();
    f.b = layer ? d_b.get() : nullptr;
    f.y = d_y.get();
    f.mean = layer ? d_mean.f32() : nullptr;
    f.rstd = d_rstd.f32();
    f.rows = rows, f.dim = dim, f.eps = static_cast<float>(kEps);
    kernels::norm_fwd(f, nullptr);

    const DeviceCopy d_dw(dw0), d_db(db0);
    NormBwdParams p;
    p.kind = kind;
    p.dy = d_dy.get();
    p.x = fused ? d_rout.get() : d_x.get();
    p.w = d_w.get();
    p.mean = f.mean;
    p.rstd = f.rstd;
    p.dresidual = fused ? d_dres.get() : nullptr;
    p.dx = d_dx.get();
    p.dw = d_dw.get();
    p.db = layer ? d_db.get() : nullptr;
    p.grad_type = gt;
    p.rows = rows, p.dim = dim;
    const std::size_t ws_bytes = kernels::norm_bwd_workspace_bytes(p);
    const DeviceCopy ws(test::poisoned({static_cast<std::int64_t>(ws_bytes / 4)}, DType::f32));
    p.workspace = ws.get();
    kernels::norm_bwd(p, nullptr);
    sync();
    Results r;
    r.y = d_y.to_host(rd, DType::bf16);
    r.residual_out = d_rout.to_host(rd, DType::bf16);
    r.mean = d_mean.to_host({rows}, DType::f32);
    r.rstd = d_rstd.to_host({rows}, DType::f32);
    r.dx = d_dx.to_host(rd, DType::bf16);
    r.dw = d_dw.to_host({dim}, gdt);
    r.db = d_db.to_host({dim}, gdt);
    return r;
  };
  const Results k = run();
  CHECK(run().all() == k.all());  // bitwise identical, dw/db included

  Tensor r = x;
  if (fused) {
    const auto xv = x.to_vector<float>(), rv = res.to_vector<float>();
    std::vector<float> sum(xv.size());
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] = xv[i] + rv[i];
    r = Tensor::from_vector<float>(rd, sum).to(DType::bf16);
    CHECK(bytes(k.residual_out) == bytes(r));
  }
  const std::int64_t n = rows * dim;
  const auto r32 = r.to_vector<float>(), w32 = w.to_vector<float>(), b32 = b.to_vector<float>(),
             dy32 = dy.to_vector<float>();
  std::vector<float> y(n), mean(rows), rstd(rows), dx(n);
  std::vector<float> dw = dw0.to_vector<float>(), db = db0.to_vector<float>();
  if (layer) {
    cpu::layernorm_fwd<float>(r32.data(), w32.data(), b32.data(), rows, dim, kEps, y.data(),
                              mean.data(), rstd.data());
    cpu::layernorm_bwd<float>(dy32.data(), r32.data(), w32.data(), mean.data(), rstd.data(), rows,
                              dim, dx.data(), dw.data(), db.data());
  } else {
    cpu::rmsnorm_fwd<float>(r32.data(), w32.data(), rows, dim, kEps, y.data(), rstd.data());
    cpu::rmsnorm_bwd<float>(dy32.data(), r32.data(), w32.data(), rstd.data(), rows, dim, dx.data(),
                            dw.data());
  }
  std::vector<double> dx_ref = as_doubles(dx);
  if (fused) {
    const auto dr = dres.to_vector<double>();
    for (std::int64_t i = 0; i < n; ++i) dx_ref[i] += dr[i];
  }
  CHECK(bf16_close(k.y, as_doubles(y), 1e-5) == "");
  CHECK(test::compare(k.rstd.to_vector<double>(), as_doubles(rstd), kStatTolerance) == "");
  if (layer)
    CHECK(test::compare(k.mean.to_vector<double>(), as_doubles(mean), kStatTolerance) == "");
  CHECK(bf16_close(k.dx, dx_ref, 1e-5) == "");
  if (gt == NormGradType::f32) {
    CHECK(test::compare(k.dw.to_vector<double>(), as_doubles(dw), kSumTolerance) == "");
    if (layer) CHECK(test::compare(k.db.to_vector<double>(), as_doubles(db), kSumTolerance) == "");
  } else {
    CHECK(bf16_close(k.dw, as_doubles(dw), 1e-3) == "");
    if (layer) CHECK(bf16_close(k.db, as_doubles(db), 1e-3) == "");
  }
}

}  // namespace

TEST_CASE("norm kernels on the device match engine/cpu", "[gpu]") {
  struct Shape2 {
    std::int64_t rows, dim;
  };
  // Ragged shapes, a q/k-norm shape (many rows of 128), hidden sizes up to 16384, a ragged dim
  // on the scalar path, and more rows than the default slots (slots of several rows).
  const std::vector<Shape2> shapes = {{1, 1},       {33, 31},    {129, 129},  {130, 512},
                                      {4096, 128},  {20000, 128}, {1024, 4096}, {300, 8192},
                                      {7, 16384},   {64, 2053},  {2000, 4096}, {3001, 1000}};
  std::uint64_t seed = 100;
  for (NormKind kind : {NormKind::rms, NormKind::layer})
    for (const Shape2& s : shapes)
      for (bool fused : {false, true})
        run_case(kind, s.rows, s.dim, fused, fused ? NormGradType::bf16 : NormGradType::f32,
                 seed += 10);
}

#endif  // HONE_WITH_CUDA

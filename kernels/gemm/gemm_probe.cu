// The GEMM's fragment probe (gemm_probe.h): the GEMM's tile loader and ldmatrix addressing on
// one block, with the fragments written out instead of multiplied.
#include "kernels/gemm/gemm_kernel.cuh"
#include "kernels/gemm/gemm_probe.h"

#include "hone/error.h"
#include "kernels/common/check_launch.cuh"

HONE_KERNELS_BEGIN
namespace {

using namespace gemm_detail;
using Cfg = LargeTile;
using D = GemmFragmentDump;
static_assert(D::kM == Cfg::kM && D::kN == Cfg::kN && D::kK == Cfg::kK &&
              D::kWarps * 32 == Cfg::kThreads && D::kSteps == Cfg::kSteps &&
              D::kFragM == Cfg::kFragM && D::kFragN == Cfg::kFragN,
              "the probe describes the large tile configuration");

template <bool kATrans, bool kBTrans>
__global__ void __launch_bounds__(Cfg::kThreads) gemm_fragment_dump_kernel(GemmArgs p,
                                                                           std::uint32_t* out) {
  using S = SharedStorage<Cfg, kATrans, kBTrans>;
  HONE_DYNAMIC_SMEM(S, s);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int wm0 = (warp / Cfg::kWarpsN) * Cfg::kWarpM, wn0 = (warp % Cfg::kWarpsN) * Cfg::kWarpN;
  load_stage<Cfg, kATrans, kBTrans>(s, 0, p, p.a, p.b, 0, 0, 0);
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  HONE_SYNC("gemm_probe_loaded");
  for (int step = 0; step < Cfg::kSteps; ++step) {
    std::uint32_t fa[Cfg::kFragM][4], fb[Cfg::kFragN][4];
    load_fragments<Cfg, kATrans, kBTrans>(fa, fb, s, 0, step, wm0, wn0, lane);
    std::uint32_t* o = out + ((warp * Cfg::kSteps + step) * 32 + lane) * D::kWords;
    for (int i = 0; i < Cfg::kFragM; ++i)
      for (int r = 0; r < 4; ++r) o[4 * i + r] = fa[i][r];
    for (int j = 0; j < Cfg::kFragN; ++j)
      for (int r = 0; r < 4; ++r) o[4 * Cfg::kFragM + 4 * j + r] = fb[j][r];
  }
}

template <bool kATrans, bool kBTrans>
void run(const GemmArgs& p, std::uint32_t* out, cudaStream_t stream) {
  launch(gemm_fragment_dump_kernel<kATrans, kBTrans>, dim3(1), dim3(Cfg::kThreads),
         sizeof(SharedStorage<Cfg, kATrans, kBTrans>), stream, p, out);
  check_launch("gemm_dump_fragments");
}

}  // namespace

void gemm_dump_fragments(const void* a, bool a_trans, const void* b, bool b_trans,
                         std::uint32_t* out, cudaStream_t stream) {
  HONE_CHECK(a && b && out, "gemm_dump_fragments", "a, b and out must not be null");
  GemmArgs p{};
  p.a = static_cast<const std::uint16_t*>(a);
  p.b = static_cast<const std::uint16_t*>(b);
  p.m = D::kM, p.n = D::kN, p.k = D::kK, p.batch = 1;
  p.lda = a_trans ? D::kM : D::kK;
  p.ldb = b_trans ? D::kK : D::kN;
  p.a_vec = reinterpret_cast<std::uintptr_t>(a) % 16 == 0;
  p.b_vec = reinterpret_cast<std::uintptr_t>(b) % 16 == 0;
  if (!a_trans && !b_trans) run<false, false>(p, out, stream);
  if (!a_trans && b_trans) run<false, true>(p, out, stream);
  if (a_trans && !b_trans) run<true, false>(p, out, stream);
  if (a_trans && b_trans) run<true, true>(p, out, stream);
}

HONE_KERNELS_END

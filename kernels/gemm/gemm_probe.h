// The GEMM's "golden layout" probe: one block of the large tile configuration loads a full
// 128×32 A tile and 32×128 B tile through the GEMM's own loaders (cp.async, then ldmatrix)
// and every warp writes out the mma fragments it would multiply. Comparing them with the PTX
// ISA layouts (expected_gemm_fragments) checks, on a device and under the emulator alike, that
// each layout's addressing hands mma.sync the right elements.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

struct GemmFragmentDump {
  static constexpr int kM = 128, kN = 128, kK = 32;  // the tile
  static constexpr int kWarps = 8, kSteps = 2;        // warps of 64×32; k16 steps
  static constexpr int kFragM = 4, kFragN = 2;        // A fragments, B fragment pairs per warp
  static constexpr int kWords = 4 * kFragM + 4 * kFragN;  // per lane and step
  static constexpr int kTotal = kWarps * kSteps * 32 * kWords;
};

// a: op(A) 128×32 stored m×k (or k×m with a_trans), b: op(B) 32×128 stored k×n (or n×k with
// b_trans), bf16 bits, dense. out: GemmFragmentDump::kTotal words, ordered
// [warp][step][lane][word]: words 0-15 are A fragment i's registers at 4i + r, words 16-23 B
// fragment pair j's at 16 + 4j + r (registers 0-1 for n8 tile 2j, 2-3 for 2j + 1).
void gemm_dump_fragments(const void* a, bool a_trans, const void* b, bool b_trans,
                         std::uint32_t* out, cudaStream_t stream);

// The same words from the fragment layouts of mma.m16n8k16 in the PTX ISA, for
// logical op(A) (m-major, 128×32) and op(B) (k-major, 32×128) given as bf16 bits. Warp w
// covers rows 64·(w / 4) and columns 32·(w % 4); lane = 4g + t.
inline std::vector<std::uint32_t> expected_gemm_fragments(const std::vector<std::uint16_t>& a,
                                                          const std::vector<std::uint16_t>& b) {
  using D = GemmFragmentDump;
  std::vector<std::uint32_t> out(D::kTotal);
  auto A = [&](int m, int k) -> std::uint32_t { return a[m * D::kK + k]; };
  auto B = [&](int k, int n) -> std::uint32_t { return b[k * D::kN + n]; };
  for (int w = 0; w < D::kWarps; ++w)
    for (int s = 0; s < D::kSteps; ++s)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, t = lane & 3, m0 = 64 * (w / 4), n0 = 32 * (w % 4);
        std::uint32_t* o = &out[((w * D::kSteps + s) * 32 + lane) * D::kWords];
        for (int i = 0; i < D::kFragM; ++i)
          for (int r = 0; r < 4; ++r) {  // A[g + 8(r & 1)][2t + 8(r >> 1) + {0, 1}]
            const int m = m0 + 16 * i + g + 8 * (r & 1), k = 16 * s + 2 * t + 8 * (r >> 1);
            o[4 * i + r] = A(m, k) | A(m, k + 1) << 16;
          }
        for (int j = 0; j < D::kFragN; ++j)
          for (int r = 0; r < 4; ++r) {  // n8 tile 2j + (r >> 1): B[2t + 8(r & 1) + {0, 1}][g]
            const int n = n0 + 16 * j + 8 * (r >> 1) + g, k = 16 * s + 2 * t + 8 * (r & 1);
            o[16 + 4 * j + r] = B(k, n) | B(k + 1, n) << 16;
          }
      }
  return out;
}

HONE_KERNELS_END

// Tensor-core test kernels: raw ldmatrix fragments, and a 16x8x16 product through
// ldmatrix + mma.sync (bf16 and f16), for comparison with the PTX ISA layouts.
#include <cstdint>

#include "kernels/common/compat.cuh"
#include "kernels/common/ptx.cuh"

namespace hone::kernels::emu_test {

// m: four 8x8 b16 matrices stored as 32 rows of 8; out[lane][14]: x1, x2, x4, x1t, x2t, x4t.
__global__ void ldmatrix_dump_kernel(const std::uint16_t* m, std::uint32_t* out) {
  struct Smem {
    alignas(16) std::uint16_t rows[32][8];
  };
  HONE_DYNAMIC_SMEM(Smem, s);
  const int lane = threadIdx.x;
  for (int j = 0; j < 8; ++j) s->rows[lane][j] = m[lane * 8 + j];
  __syncwarp();
  std::uint32_t r1[1], r2[2], r4[4], t1[1], t2[2], t4[4];
  ptx::ldmatrix_x1(r1, s->rows[lane]);
  ptx::ldmatrix_x2(r2, s->rows[lane]);
  ptx::ldmatrix_x4(r4, s->rows[lane]);
  ptx::ldmatrix_x1_trans(t1, s->rows[lane]);
  ptx::ldmatrix_x2_trans(t2, s->rows[lane]);
  ptx::ldmatrix_x4_trans(t4, s->rows[lane]);
  std::uint32_t* o = out + lane * 14;
  o[0] = r1[0];
  for (int j = 0; j < 2; ++j) o[1 + j] = r2[j];
  for (int j = 0; j < 4; ++j) o[3 + j] = r4[j];
  o[7] = t1[0];
  for (int j = 0; j < 2; ++j) o[8 + j] = t2[j];
  for (int j = 0; j < 4; ++j) o[10 + j] = t4[j];
}

// d (16x8, row-major) = a (16x16 row-major) · b (16x8, K×N row-major), b16 inputs as bits.
template <bool kBf16>
__global__ void mma_kernel(const std::uint16_t* a, const std::uint16_t* b, float* d) {
  struct Smem {
    alignas(16) std::uint16_t a[16][16];
    alignas(16) std::uint16_t b[16][8];
  };
  HONE_DYNAMIC_SMEM(Smem, s);
  const int lane = threadIdx.x;
  for (int j = 0; j < 8; ++j) s->a[lane % 16][(lane / 16) * 8 + j] = a[(lane % 16) * 16 + (lane / 16) * 8 + j];
  if (lane < 16)
    for (int j = 0; j < 8; ++j) s->b[lane][j] = b[lane * 8 + j];
  __syncthreads();
  std::uint32_t fa[4], fb[2];
  ptx::ldmatrix_x4(fa, &s->a[lane % 16][(lane / 16) * 8]);
  ptx::ldmatrix_x2_trans(fb, &s->b[lane % 16][0]);
  const float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  float acc[4];
  if constexpr (kBf16)
    ptx::mma_m16n8k16_bf16(acc, fa, fb, c);
  else
    ptx::mma_m16n8k16_f16(acc, fa, fb, c);
  const int g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) d[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = acc[i];
}

void run_ldmatrix_dump(const std::uint16_t* m, std::uint32_t* out) {
  launch(ldmatrix_dump_kernel, dim3(1), dim3(32), 32 * 8 * sizeof(std::uint16_t), nullptr, m,
         out);
}
void run_mma(const std::uint16_t* a, const std::uint16_t* b, float* d, bool bf16) {
  const std::size_t smem = (16 * 16 + 16 * 8) * sizeof(std::uint16_t);
  if (bf16)
    launch(mma_kernel<true>, dim3(1), dim3(32), smem, nullptr, a, b, d);
  else
    launch(mma_kernel<false>, dim3(1), dim3(32), smem, nullptr, a, b, d);
}

}  // namespace hone::kernels::emu_test

// Every inline-PTX instruction the kernels use, each with a CUDA body (nvcc) and an emulated
// body (kernels/emu): mma.sync m16n8k16 (bf16/f16 -> f32), ldmatrix x1/x2/x4 (.trans) and
// cp.async (4/8/16 bytes, commit_group, wait_group). No raw `asm` anywhere else.
// Fragment layouts: as the PTX ISA documents them for mma.m16n8k16 and ldmatrix (restated in
// tests/emu/test_emu_tensorcore.cpp, which checks them).
#pragma once
#include <cstdint>

#include "kernels/common/compat.cuh"

#if defined(__CUDACC__)
#define HONE_PTX __device__ __forceinline__
#else
#define HONE_PTX inline
#include <cstring>
#endif

namespace hone::kernels::ptx {

#if !defined(__CUDACC__)
namespace detail {

struct LdmatrixCtx {
  int count;
  bool trans;
};
inline void ldmatrix_fn(::hone::emu::LaneRequest* const* lanes, unsigned present,
                        const void* c) {
  const auto& ctx = *static_cast<const LdmatrixCtx*>(c);
  auto row = [&](int lane) -> const unsigned char* {
    if (!(present >> lane & 1)) return nullptr;
    return *static_cast<const unsigned char* const*>(lanes[lane]->in);
  };
  for (int l = 0; l < 32; ++l) {
    if (!(present >> l & 1)) continue;
    const int g = l >> 2, t = l & 3;
    auto* out = static_cast<std::uint32_t*>(lanes[l]->out);
    for (int j = 0; j < ctx.count; ++j) {
      std::uint16_t lo = 0, hi = 0;
      if (!ctx.trans) {  // M_j[g][2t], M_j[g][2t+1]
        if (const unsigned char* p = row(8 * j + g)) {
          std::memcpy(&lo, p + 4 * t, 2);
          std::memcpy(&hi, p + 4 * t + 2, 2);
        }
      } else {  // M_j[2t][g], M_j[2t+1][g]
        if (const unsigned char* p = row(8 * j + 2 * t)) std::memcpy(&lo, p + 2 * g, 2);
        if (const unsigned char* p = row(8 * j + 2 * t + 1)) std::memcpy(&hi, p + 2 * g, 2);
      }
      out[j] = static_cast<std::uint32_t>(lo) | static_cast<std::uint32_t>(hi) << 16;
    }
  }
}
inline constexpr LdmatrixCtx kLdmatrix[2][3] = {{{1, false}, {2, false}, {4, false}},
                                               {{1, true}, {2, true}, {4, true}}};
inline void ldmatrix_emu(std::uint32_t* out, const void* row, int count, bool trans,
                         const char* kind, const ::hone::emu::Site& s) {
  ::hone::emu::LaneRequest req{&row, out};
  ::hone::emu::warp_collective(kind, 0xffffffffu, &req, &ldmatrix_fn,
                               &kLdmatrix[trans][count == 1 ? 0 : count == 2 ? 1 : 2], s);
}

struct MmaIn {
  const std::uint32_t* a;
  const std::uint32_t* b;
  const float* c;
};
inline float bf16_bits_to_float(std::uint16_t v) {
  const std::uint32_t u = static_cast<std::uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float f16_bits_to_float(std::uint16_t v) {
  __half_raw r;
  r.x = v;
  return __half2float(__half(r));
}
template <bool kBf16>
void mma_fn(::hone::emu::LaneRequest* const* lanes, unsigned present, const void*) {
  float A[16][16] = {}, B[16][8] = {}, C[16][8] = {};
  auto cvt = [](std::uint32_t r, int half) {
    const auto v = static_cast<std::uint16_t>(half ? r >> 16 : r & 0xffffu);
    return kBf16 ? bf16_bits_to_float(v) : f16_bits_to_float(v);
  };
  for (int l = 0; l < 32; ++l) {
    if (!(present >> l & 1)) continue;
    const auto& in = *static_cast<const MmaIn*>(lanes[l]->in);
    const int g = l >> 2, t = l & 3;
    for (int r = 0; r < 4; ++r)
      for (int h = 0; h < 2; ++h) A[g + 8 * (r & 1)][2 * t + 8 * (r >> 1) + h] = cvt(in.a[r], h);
    for (int r = 0; r < 2; ++r)
      for (int h = 0; h < 2; ++h) B[2 * t + 8 * r + h][g] = cvt(in.b[r], h);
    for (int i = 0; i < 4; ++i) C[g + 8 * (i >> 1)][2 * t + (i & 1)] = in.c[i];
  }
  for (int l = 0; l < 32; ++l) {
    if (!(present >> l & 1)) continue;
    const int g = l >> 2, t = l & 3;
    auto* d = static_cast<float*>(lanes[l]->out);
    for (int i = 0; i < 4; ++i) {
      const int m = g + 8 * (i >> 1), n = 2 * t + (i & 1);
      float acc = C[m][n];
      for (int k = 0; k < 16; ++k) acc += A[m][k] * B[k][n];
      d[i] = acc;
    }
  }
}
template <bool kBf16>
void mma_emu(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
             const float (&c)[4], const ::hone::emu::Site& s) {
  MmaIn in{a, b, c};
  float out[4];
  ::hone::emu::LaneRequest req{&in, out};
  ::hone::emu::warp_collective(kBf16 ? "mma.m16n8k16.bf16" : "mma.m16n8k16.f16", 0xffffffffu,
                               &req, &mma_fn<kBf16>, nullptr, s);
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

}  // namespace detail
#define HONE_PTX_SITE_ARGS , const char *file = __builtin_FILE(), int line = __builtin_LINE()
#define HONE_PTX_SITE ::hone::emu::Site{file, line, nullptr}
#else
#define HONE_PTX_SITE_ARGS
#endif

// D = A·B + C, m16n8k16, A row-major 16×16 (4 regs), B col 16×8 (2 regs), fp32 accumulate.
HONE_PTX void mma_m16n8k16_bf16(float (&d)[4], const std::uint32_t (&a)[4],
                                const std::uint32_t (&b)[2], const float (&c)[4] HONE_PTX_SITE_ARGS) {
#if defined(__CUDACC__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#else
  detail::mma_emu<true>(d, a, b, c, HONE_PTX_SITE);
#endif
}

HONE_PTX void mma_m16n8k16_f16(float (&d)[4], const std::uint32_t (&a)[4],
                               const std::uint32_t (&b)[2], const float (&c)[4] HONE_PTX_SITE_ARGS) {
#if defined(__CUDACC__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#else
  detail::mma_emu<false>(d, a, b, c, HONE_PTX_SITE);
#endif
}

// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lane 8j+r passes the address of row
// r of matrix j (16-byte aligned, shared memory); register j receives matrix j's fragment.
#if defined(__CUDACC__)
#define HONE_LDMATRIX(fn, count, trans_sfx, regs, outs)                                    \
  HONE_PTX void fn(std::uint32_t (&r)[count], const void* row) {                           \
    const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));            \
    asm volatile("ldmatrix.sync.aligned.m8n8.x" #count trans_sfx ".shared.b16 " regs       \
                 ", [%" #count "];\n"                                                      \
                 : outs                                                                    \
                 : "r"(addr));                                                             \
  }
#define HONE_COMMA ,
HONE_LDMATRIX(ldmatrix_x1, 1, "", "{%0}", "=r"(r[0]))
HONE_LDMATRIX(ldmatrix_x2, 2, "", "{%0,%1}", "=r"(r[0]) HONE_COMMA "=r"(r[1]))
HONE_LDMATRIX(ldmatrix_x4, 4, "", "{%0,%1,%2,%3}",
              "=r"(r[0]) HONE_COMMA "=r"(r[1]) HONE_COMMA "=r"(r[2]) HONE_COMMA "=r"(r[3]))
HONE_LDMATRIX(ldmatrix_x1_trans, 1, ".trans", "{%0}", "=r"(r[0]))
HONE_LDMATRIX(ldmatrix_x2_trans, 2, ".trans", "{%0,%1}", "=r"(r[0]) HONE_COMMA "=r"(r[1]))
HONE_LDMATRIX(ldmatrix_x4_trans, 4, ".trans", "{%0,%1,%2,%3}",
              "=r"(r[0]) HONE_COMMA "=r"(r[1]) HONE_COMMA "=r"(r[2]) HONE_COMMA "=r"(r[3]))
#undef HONE_COMMA
#undef HONE_LDMATRIX
#else
#define HONE_LDMATRIX(fn, count, trans)                                                  \
  inline void fn(std::uint32_t (&r)[count], const void* row HONE_PTX_SITE_ARGS) {        \
    detail::ldmatrix_emu(r, row, count, trans, #fn, HONE_PTX_SITE);                      \
  }
HONE_LDMATRIX(ldmatrix_x1, 1, false)
HONE_LDMATRIX(ldmatrix_x2, 2, false)
HONE_LDMATRIX(ldmatrix_x4, 4, false)
HONE_LDMATRIX(ldmatrix_x1_trans, 1, true)
HONE_LDMATRIX(ldmatrix_x2_trans, 2, true)
HONE_LDMATRIX(ldmatrix_x4_trans, 4, true)
#undef HONE_LDMATRIX
#endif

// cp.async of kBytes (4, 8 or 16) from global to shared memory, asynchronous until waited for.
template <int kBytes>
HONE_PTX void cp_async(void* smem_dst, const void* gmem_src) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(__CUDACC__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  if constexpr (kBytes == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(addr), "l"(gmem_src));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(addr), "l"(gmem_src),
                 "n"(kBytes));
#else
  ::hone::emu::async_queue().open.push_back({smem_dst, gmem_src, kBytes, kBytes});
#endif
}

// 16-byte cp.async that zero-fills the destination instead of reading when !pred.
HONE_PTX void cp_async_zfill16(void* smem_dst, const void* gmem_src, bool pred) {
#if defined(__CUDACC__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  const int src_bytes = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem_src),
               "r"(src_bytes));
#else
  ::hone::emu::async_queue().open.push_back({smem_dst, gmem_src, 16, pred ? 16 : 0});
#endif
}

// Closes the current group of cp.async operations.
HONE_PTX void cp_async_commit() {
#if defined(__CUDACC__)
  asm volatile("cp.async.commit_group;\n" ::);
#else
  auto& q = ::hone::emu::async_queue();
  q.groups.push_back(std::move(q.open));
  q.open.clear();
#endif
}

// Waits until at most kPending committed groups (the newest) are still in flight.
template <int kPending>
HONE_PTX void cp_async_wait() {
#if defined(__CUDACC__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
#else
  ::hone::emu::async_wait(kPending);
#endif
}

}  // namespace hone::kernels::ptx

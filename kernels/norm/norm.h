// Launchers of RMSNorm and LayerNorm, forward and backward, optionally fused with the residual
// add (norm_fwd.cu, norm_bwd.cu). Host header without CUDA types.
//
// Rows are contiguous (rows, dim) bf16 in device memory; statistics and math are fp32; the
// functions are those of engine/cpu/norm.h:
//   rms:    y = r · rstd · w,               rstd = 1 / sqrt(mean(r²) + eps)
//   layer:  y = (r − mean) · rstd · w + b,  rstd = 1 / sqrt(var(r) + eps)  (biased variance)
// where r = x, or r = x + residual (rounded to bf16 and written to residual_out) when fused.
// Outputs may alias inputs of the same call: each element is read before it is written, by the
// thread that writes it. With dim a multiple of 8 and every bf16 row pointer 16-byte aligned,
// rows move in 16-byte vectors; otherwise a scalar path handles any dim.
//
// The backward reduces dw and db without atomics: each of norm_bwd_slots(p) row slots sums its
// rows' contributions in order into a workspace row (fp32), and one or two more passes add the
// slots to dw/db in a fixed order. The result depends on rows, dim and partials only.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

enum class NormKind : std::uint8_t { rms, layer };
enum class NormGradType : std::uint8_t { f32, bf16 };

// The largest dim the kernels keep in registers: 16384 on the 16-byte vector path (dim % 8 == 0,
// aligned rows), 8192 on the scalar path.
inline constexpr std::int64_t kNormMaxDim = 16384;
// Threads the default number of dw/db row slots aims at: about what a large GPU keeps resident
// (an H200: 132 SMs × 2048), so short rows (one warp each) still fill the device.
inline constexpr std::int64_t kNormSlotThreads = std::int64_t{1} << 18;

struct NormFwdParams {
  NormKind kind = NormKind::rms;
  const void* x = nullptr;         // (rows, dim) bf16
  const void* residual = nullptr;  // (rows, dim) bf16 or null; set: the norm's input is x + it
  void* residual_out = nullptr;    // (rows, dim) bf16, =: x + residual; required with residual
  const void* w = nullptr;         // (dim) bf16
  const void* b = nullptr;         // (dim) bf16 or null (no bias); layer only
  void* y = nullptr;               // (rows, dim) bf16, =
  float* mean = nullptr;           // (rows) fp32, = (what the backward needs); layer only; or null
  float* rstd = nullptr;           // (rows) fp32, = (what the backward needs); or null
  std::int64_t rows = 0;
  std::int64_t dim = 0;            // 1 ≤ dim ≤ kNormMaxDim
  float eps = 1e-5f;               // ≥ 0
};

struct NormBwdParams {
  NormKind kind = NormKind::rms;
  const void* dy = nullptr;         // (rows, dim) bf16
  const void* x = nullptr;          // (rows, dim) bf16: the norm's input (residual_out if fused)
  const void* w = nullptr;          // (dim) bf16
  const float* mean = nullptr;      // (rows) fp32 from the forward; layer only
  const float* rstd = nullptr;      // (rows) fp32 from the forward
  const void* dresidual = nullptr;  // (rows, dim) bf16 or null: the gradient reaching the norm's
                                    // input from its other uses (the residual stream), added to dx
  void* dx = nullptr;               // (rows, dim) bf16, =: input gradient (+ dresidual); or null
  void* dw = nullptr;               // (dim) grad_type, +=; or null
  void* db = nullptr;               // (dim) grad_type, +=; layer only; or null
  NormGradType grad_type = NormGradType::f32;  // of dw and db
  void* workspace = nullptr;        // norm_bwd_workspace_bytes(p) bytes of device memory when dw
                                    // or db is set; contents need no initialisation
  std::int64_t rows = 0;
  std::int64_t dim = 0;             // 1 ≤ dim ≤ kNormMaxDim
  std::int64_t partials = 0;        // row slots of the dw/db reduction; 0: the default (below)
};

// Each validates (errors name the field and value) and launches on `stream`; rows = 0 is a no-op.
void norm_fwd(const NormFwdParams& p, cudaStream_t stream);
void norm_bwd(const NormBwdParams& p, cudaStream_t stream);

// Row slots of p's dw/db reduction: min(rows, partials), or by default min(rows,
// kNormSlotThreads / threads a row of dim takes) — 512 slots for dim 4096, 8192 for dim 128.
// Depends on rows, dim and partials only, never on pointers' values or alignment.
std::int64_t norm_bwd_slots(const NormBwdParams& p);

// Bytes of workspace norm_bwd needs for p: for each of dw, db that is set, (slots + groups) × dim
// fp32, groups = ⌈slots / 64⌉ when slots > 64 (a first reduction pass), else 0.
std::size_t norm_bwd_workspace_bytes(const NormBwdParams& p);

HONE_KERNELS_END

// Launchers of the small element-wise kernels behind ops::add_, scale_, mul_, dropout_mask_,
// bias_add_ and bias_bwd (elementwise.cu). Host header without CUDA types.
//
// Tensors are contiguous f32 or bf16 in device memory; the math is fp32 and each bf16 output is
// rounded once. The functions are those of engine/cpu/elementwise.h:
//   add           dst[i] += alpha · src[i]            (src may be dst)
//   scale         x[i] *= alpha
//   mul           x[i] *= m[i]                        (x and m of either type; m may be x)
//   dropout_mask  u[i] = u[i] ≥ threshold ? keep : 0  (f32)
//   bias_add      x[r, f] += b[f]
//   bias_bwd      db[f] (+=) Σ_r dy[r, f]
// The maps move 16 bytes per load where every pointer is 16-byte aligned (and, for bias_add, a
// row is a whole number of vectors); a scalar path takes the rest. mul and dropout_mask take 8
// elements per vector step whatever the types (one 16-byte load of bf16, two of f32).
//
// bias_bwd reduces without atomics: each of bias_bwd_slots(rows) row slots sums its rows in order
// into a workspace row (fp32), then one pass adds the slots to db in slot order. The result
// depends on rows and features only, never on the launch configuration or pointer alignment.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

enum class ElementwiseType : std::uint8_t { f32, bf16 };

struct AddParams {
  void* dst = nullptr;        // (n) of type, +=
  const void* src = nullptr;  // (n) of type; may be dst
  ElementwiseType type = ElementwiseType::bf16;
  float alpha = 1.0f;
  std::int64_t n = 0;
};

struct ScaleParams {
  void* x = nullptr;  // (n) of type
  ElementwiseType type = ElementwiseType::bf16;
  float alpha = 1.0f;
  std::int64_t n = 0;
};

struct MulParams {
  void* x = nullptr;        // (n) of x_type, *=
  const void* m = nullptr;  // (n) of m_type; may be x
  ElementwiseType x_type = ElementwiseType::bf16;
  ElementwiseType m_type = ElementwiseType::f32;
  std::int64_t n = 0;
};

// The caller picks threshold so that u ≥ threshold in f32 says what u ≥ p says in exact
// arithmetic (the smallest float ≥ p), and keep = 1 / (1 − p) rounded to f32.
struct DropoutMaskParams {
  float* u = nullptr;  // (n) uniforms in [0, 1), replaced by the mask
  float threshold = 0.0f;
  float keep = 1.0f;
  std::int64_t n = 0;
};

struct BiasAddParams {
  void* x = nullptr;        // (rows, features) of type, +=
  const void* b = nullptr;  // (features) of type
  ElementwiseType type = ElementwiseType::bf16;
  std::int64_t rows = 0;
  std::int64_t features = 0;  // ≥ 1 when rows > 0
};

struct BiasBwdParams {
  const void* dy = nullptr;  // (rows, features) of type
  ElementwiseType type = ElementwiseType::bf16;
  void* db = nullptr;        // (features) of grad_type, +=
  ElementwiseType grad_type = ElementwiseType::f32;
  void* workspace = nullptr;  // bias_bwd_workspace_bytes(rows, features) bytes of device memory;
                              // contents need no initialisation
  std::int64_t rows = 0;
  std::int64_t features = 0;  // ≥ 1
};

// Each validates (errors name the field and value) and launches on `stream`; an empty tensor is
// a no-op.
void add(const AddParams& p, cudaStream_t stream);
void scale(const ScaleParams& p, cudaStream_t stream);
void mul(const MulParams& p, cudaStream_t stream);
void dropout_mask(const DropoutMaskParams& p, cudaStream_t stream);
void bias_add(const BiasAddParams& p, cudaStream_t stream);
void bias_bwd(const BiasBwdParams& p, cudaStream_t stream);

// Row slots of the bias_bwd reduction: min(⌈rows / 16⌉, 128) — at least 16 rows per slot, so
// a slot's loads are worth a launch, and at most 128 partial rows to add up.
std::int64_t bias_bwd_slots(std::int64_t rows);
// slots × features × 4 bytes (0 when rows is 0).
std::size_t bias_bwd_workspace_bytes(std::int64_t rows, std::int64_t features);

HONE_KERNELS_END

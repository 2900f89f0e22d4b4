// Launchers of the token embedding kernels (embedding.cu). Host header without CUDA types.
// The function is engine/cpu/embedding's:
//   forward   out[n, :] = table[ids[n], :]
//   backward  dtable[v, :] (+=) Σ_{n : ids[n] = v} dout[n, :], summed in increasing n
// The backward is deterministic without float atomics: the token positions are sorted by id
// (a stable radix sort in the workspace; integer counting only), then one block per touched
// row adds its tokens' rows in token order, starting from the row's old value — the CPU
// reference's order exactly (bitwise equal for an f32 dtable; one rounding at the end for
// bf16). Ids outside [0, vocab) are not checked on the device (engine/ops checks host ids):
// the forward writes a zero row for them and the backward skips them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common/launcher.h"

HONE_KERNELS_BEGIN

enum class EmbeddingType : std::uint8_t { f32, bf16 };
enum class EmbeddingIndexType : std::uint8_t { i32, i64 };

struct EmbeddingFwdParams {
  std::int64_t tokens = 0, vocab = 0, dim = 0;
  const void* ids = nullptr;  // (tokens) of index_type
  EmbeddingIndexType index_type = EmbeddingIndexType::i64;
  const void* table = nullptr;  // (vocab, dim) of type
  void* out = nullptr;          // (tokens, dim) of type
  EmbeddingType type = EmbeddingType::bf16;
};

struct EmbeddingBwdParams {
  std::int64_t tokens = 0, vocab = 0, dim = 0;
  const void* ids = nullptr;  // (tokens) of index_type
  EmbeddingIndexType index_type = EmbeddingIndexType::i64;
  const void* dout = nullptr;  // (tokens, dim) bf16
  void* dtable = nullptr;      // (vocab, dim) of grad_type, accumulated (+=)
  EmbeddingType grad_type = EmbeddingType::f32;
  void* workspace = nullptr;   // embedding_bwd_workspace_bytes(tokens, vocab) bytes (device)
};

void embedding_fwd(const EmbeddingFwdParams& p, cudaStream_t stream);

// Scratch the backward needs: sort keys and positions (twice) and the radix histograms.
std::size_t embedding_bwd_workspace_bytes(std::int64_t tokens, std::int64_t vocab);
void embedding_bwd(const EmbeddingBwdParams& p, cudaStream_t stream);

HONE_KERNELS_END

// cuDNN's fused attention (scaled dot-product attention of the cuDNN 9 graph API, built through
// the header-only cuDNN frontend) as the baseline hone's flash-attention kernels are measured and
// tested against. It takes the same problem description as kernels/attention/attention.h, so one
// set of device buffers runs either implementation:
//   q (B, T, H, hd), k/v (B, T, Hkv, hd), out and the gradients bf16 with explicit strides,
//   grouped-query attention (H a multiple of Hkv), causal or not, the softmax scale, and the
//   log-sum-exp of the forward in f32 (natural log), read back by the backward.
//
// Compiled only when the frontend's headers are found at configure time (HONE_CUDNN_FRONTEND_INCLUDE,
// see cmake/FindCudnnFrontend.cmake); then HONE_WITH_CUDNN_ATTENTION is defined for the targets
// that link it. Host header without CUDA or cuDNN types beyond the stream.
//
// cuDNN names the log-sum-exp "Stats", a (B, H, T, 1) f32 tensor: the same memory as hone's lse
// when that is (B, H, T) contiguous (lse_batch_stride = H·T, lse_head_stride = T), which is what
// this baseline takes (cuDNN before 9.12/9.26 reads and writes Stats only in that packed form).
// The padded layout alone: no cu_seqlens, no sliding window. Errors are hone::Error naming the
// field and value, or cuDNN's own message for a graph it cannot build or run.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "kernels/attention/attention.h"

namespace hone::bench {

class CudnnAttention {
 public:
  // A cuDNN handle on the current device. Throws when the cuDNN library loaded at run time is
  // older than cuDNN 9.
  CudnnAttention();
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // Forward: out (and lse when p.lse is set) from q, k, v, enqueued on `stream`.
  void fwd(const kernels::AttentionParams& p, cudaStream_t stream);
  // Backward: dq, dk, dv (overwritten) from p.fwd's q, k, v, out, lse and p.dout. p.workspace is
  // not used: cuDNN's workspace is held here.
  void bwd(const kernels::AttentionBwdParams& p, cudaStream_t stream);

  // Graphs are built (heuristics, plan compilation) on the first call with a shape and reused;
  // this is the time spent building them so far, in seconds.
  double build_seconds() const;
  std::size_t cached_graphs() const;
  // "cuDNN 9.x.y, frontend 1.y.z": the library loaded at run time and the headers compiled in.
  std::string version() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hone::bench

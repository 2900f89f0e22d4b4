// ops::attention_fwd / attention_bwd / attention_decode: argument validation (padded and packed
// variable-length layouts; a KV cache for decode) and device dispatch: the CPU reference, or on
// CUDA the bf16 flash-attention kernels of kernels/attention (lse in f32, workspace from the
// caching allocator).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/attention.h"
#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the attention kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_ATTENTION when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_ATTENTION)
#define HONE_CUDA_ATTENTION 1
#endif

#ifdef HONE_CUDA_ATTENTION
#include "cuda/context.h"
#include "kernels/attention/attention.h"
#endif

namespace hone::ops {

namespace {

// What validation learns about a problem from q, k and args.
struct AttentionDims {
  bool cuda = false;
  bool packed = false;
  std::int64_t batch = 0;    // padded: B; packed: unused
  std::int64_t seq_len = 0;  // padded: T; packed: unused
  std::int64_t tokens = 0;   // rows of q: B·T or N
  std::int64_t hq = 0, hkv = 0, hd = 0;
};

// dtype like `ref`, the given shape, and `ref`'s device.
void expect_like(std::string_view op, std::string_view name, const Tensor& t,
                 std::string_view ref_name, const Tensor& ref, const Shape& shape,
                 const std::string& from) {
  expect_dtype(op, name, t, ref_name, ref);
  expect_shape(op, name, t, shape, from);
  expect_device(op, name, t, ref_name, ref);
}

// lse: q's dtype on the CPU, f32 on CUDA (ops.h: statistics f32 on CUDA); the given shape.
void expect_lse(std::string_view op, const Tensor& lse, const Tensor& q, const Shape& shape) {
  if (q.device().is_cuda())
    expect_cuda_dtype(op, "lse", lse, {DType::f32});
  else
    expect_dtype(op, "lse", lse, "q", q);
  expect_shape(op, "lse", lse, shape, described("q", q));
  expect_device(op, "lse", lse, "q", q);
}

// q's dtype: f32/f64 for the CPU reference, bf16 for the kernels.
void expect_q_dtype(std::string_view op, const Tensor& q) {
  if (q.defined() && q.device().is_cuda())
    expect_cuda_dtype(op, "q", q, {DType::bf16});
  else
    expect_float(op, "q", q);
}

// The kernels' limits on CUDA: their head-dim buckets and int / grid-dimension fields.
constexpr std::int64_t kMaxGridDim = 65535;

void check_cuda_head_dim(std::string_view op, const Tensor& q, std::int64_t hd) {
  HONE_CHECK(hd == 32 || hd == 64 || hd == 96 || hd == 128, op, "argument 'q' has shape ",
             shape_str(q.shape()), " with head dim ", hd, "; expected 32, 64, 96 or 128 on ",
             q.device().str());
}

void check_at_most(std::string_view op, std::string_view what, std::int64_t value,
                   std::int64_t limit, const Tensor& q) {
  HONE_CHECK(value <= limit, op, what, " is ", value, "; the kernels take at most ", limit,
             " on ", q.device().str());
}

// cu_seqlens' dtype, rank and device (its values are checked on the host, later).
void check_cu_seqlens_tensor(std::string_view op, const Tensor& cu, const Tensor& q) {
  HONE_CHECK(cu.dtype() == DType::i32, op, "argument 'cu_seqlens' has dtype ",
             dtype_name(cu.dtype()), "; expected i32");
  HONE_CHECK(cu.ndim() == 1 && cu.numel() >= 1, op, "argument 'cu_seqlens' has shape ",
             shape_str(cu.shape()), "; expected (S + 1), the offsets of S ≥ 0 sequences");
  expect_device(op, "cu_seqlens", cu, "q", q);
}

void check_scale_window(std::string_view op, const AttentionArgs& args) {
  HONE_CHECK(std::isfinite(args.scale), op, "argument 'scale' is ", args.scale,
             "; expected a finite value (0 means 1/sqrt(hd))");
  HONE_CHECK(args.window >= 0, op, "argument 'window' is ", args.window,
             "; expected ≥ 0 (0 means no sliding window)");
}

// Checks q, k, v and the args both directions share.
AttentionDims check_qkv(std::string_view op, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionArgs& args) {
  expect_q_dtype(op, q);
  AttentionDims d;
  d.cuda = q.device().is_cuda();
  d.packed = args.cu_seqlens.defined();
  const std::int64_t rank = d.packed ? 3 : 4;
  HONE_CHECK(q.ndim() == rank, op, "argument 'q' has shape ", shape_str(q.shape()), "; expected ",
             d.packed ? "(N, Hq, hd) for the packed layout (cu_seqlens defined)"
                      : "(B, T, Hq, hd) for the padded layout (cu_seqlens undefined)");
  d.hq = q.size(-2);
  d.hd = q.size(-1);
  d.tokens = d.packed ? q.size(0) : q.size(0) * q.size(1);
  if (!d.packed) {
    d.batch = q.size(0);
    d.seq_len = q.size(1);
  }
  const std::string from_q = described("q", q);
  HONE_CHECK(d.hq >= 1 && d.hd >= 1, op, "argument 'q' has shape ", shape_str(q.shape()),
             "; expected at least one head of size at least 1");

  expect_dtype(op, "k", k, "q", q);
  d.hkv = k.ndim() == rank ? k.size(-2) : d.hq;
  Shape kv_shape = q.shape();
  kv_shape[static_cast<std::size_t>(rank - 2)] = d.hkv;
  expect_shape(op, "k", k, kv_shape, from_q);
  expect_device(op, "k", k, "q", q);
  HONE_CHECK(d.hkv >= 1 && d.hq % d.hkv == 0, op, "argument 'k' has shape ", shape_str(k.shape()),
             " with ", d.hkv, " kv heads, which do not divide the ", d.hq, " query heads of ",
             from_q);
  expect_like(op, "v", v, "q", q, kv_shape, described("k", k));

  if (d.packed) check_cu_seqlens_tensor(op, args.cu_seqlens, q);
  check_scale_window(op, args);
  HONE_CHECK(args.max_seqlen >= 0, op, "argument 'max_seqlen' is ", args.max_seqlen,
             "; expected ≥ 0 (0 means unknown)");
  if (d.cuda) {
    check_cuda_head_dim(op, q, d.hd);
    check_at_most(op, "the number of query heads", d.hq, kMaxGridDim, q);
    if (d.packed) {
      check_at_most(op, "the number of sequences", args.cu_seqlens.numel() - 1, kMaxGridDim, q);
      check_at_most(op, "the number of tokens N", d.tokens, INT_MAX, q);
    } else {
      check_at_most(op, "the batch size B", d.batch, kMaxGridDim, q);
      check_at_most(op, "the sequence length T", d.seq_len, INT_MAX, q);
    }
  }
  return d;
}

// The softmax scale args.scale stands for (0 → 1/sqrt(hd)).
double softmax_scale(double scale, std::int64_t hd) {
  return scale == 0.0 ? 1.0 / std::sqrt(static_cast<double>(hd)) : scale;
}

Shape lse_shape(const AttentionDims& d) {
  return d.packed ? Shape{d.hq, d.tokens} : Shape{d.batch, d.hq, d.seq_len};
}

// cu_seqlens' values (a host i32 tensor) as int64, checked: start at 0, non-decreasing, end at
// N, and no sequence longer than a given max_seqlen.
std::vector<std::int64_t> checked_offsets(std::string_view op, const Tensor& host_cu,
                                          const Tensor& q, const AttentionArgs& args,
                                          const AttentionDims& d) {
  const std::int32_t* c = host_cu.data<std::int32_t>();
  const std::int64_t n = host_cu.numel();
  HONE_CHECK(c[0] == 0, op, "argument 'cu_seqlens' has value ", c[0], " at index 0; expected 0");
  std::vector<std::int64_t> cu{0};
  for (std::int64_t i = 1; i < n; ++i) {
    HONE_CHECK(c[i] >= c[i - 1], op, "argument 'cu_seqlens' decreases at index ", i, ": value ",
               c[i], " after ", c[i - 1], "; expected non-decreasing offsets");
    HONE_CHECK(args.max_seqlen == 0 || c[i] - c[i - 1] <= args.max_seqlen, op,
               "argument 'cu_seqlens' has a sequence of ", c[i] - c[i - 1], " tokens at index ",
               i - 1, "; expected at most max_seqlen = ", args.max_seqlen);
    cu.push_back(c[i]);
  }
  HONE_CHECK(cu.back() == d.tokens, op, "argument 'cu_seqlens' ends with value ", cu.back(),
             " at index ", n - 1, "; expected N = ", d.tokens, " from ", described("q", q));
  return cu;
}

// The sequence offsets as host int64: 0, T, 2T, … for the padded layout; cu_seqlens' values,
// checked, for the packed one (host tensors only).
std::vector<std::int64_t> sequence_offsets(std::string_view op, const Tensor& q,
                                           const AttentionArgs& args, const AttentionDims& d) {
  if (d.packed) return checked_offsets(op, args.cu_seqlens, q, args, d);
  std::vector<std::int64_t> cu;
  for (std::int64_t b = 0; b <= d.batch; ++b) cu.push_back(b * d.seq_len);
  return cu;
}

// The CPU kernels' view of the problem; `cu` must outlive it.
cpu::AttentionShape cpu_shape(const AttentionDims& d, const AttentionArgs& args,
                              const std::vector<std::int64_t>& cu) {
  cpu::AttentionShape sh;
  sh.cu_seqlens = cu.data();
  sh.n_seqs = static_cast<std::int64_t>(cu.size()) - 1;
  sh.hq = d.hq;
  sh.hkv = d.hkv;
  sh.hd = d.hd;
  sh.lse_seq_mul = d.packed ? 1 : d.hq;
  sh.lse_head_stride = d.packed ? d.tokens : d.seq_len;
  sh.scale = softmax_scale(args.scale, d.hd);
  sh.causal = args.causal;
  sh.window = args.window;
  return sh;
}

template <class T>
T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// ---------------------------------------------------------------- CUDA
#ifdef HONE_CUDA_ATTENTION

// Packed sequences beyond this count make the op read cu_seqlens back rather than bound the
// longest sequence by N (which launches up to S× the useful blocks; see ops.h).
constexpr std::int64_t kMaxSeqsForTokenBound = 4;

// The kernels' `seqlen`: T (padded), or an upper bound of the longest packed sequence.
int cuda_seqlen(std::string_view op, const Tensor& q, const AttentionArgs& args,
                const AttentionDims& d) {
  if (!d.packed) return static_cast<int>(d.seq_len);
  const std::int64_t n_seqs = args.cu_seqlens.numel() - 1;
  if (args.max_seqlen > 0) {
    // Trusted (checking it would need the offsets on the host), but a bound below N / S cannot
    // hold for any offsets: too small a bound would leave rows unwritten.
    HONE_CHECK(n_seqs <= 0 || args.max_seqlen * n_seqs >= d.tokens, op, "max_seqlen ", args.max_seqlen,
               " is below the mean length of the ", n_seqs, " sequences of ", d.tokens, " tokens");
    return static_cast<int>(std::min(args.max_seqlen, d.tokens));
  }
  if (n_seqs <= kMaxSeqsForTokenBound) return static_cast<int>(d.tokens);
  // Waits for the stream; the values are then checked like the CPU path's.
  const std::vector<std::int64_t> cu =
      checked_offsets(op, args.cu_seqlens.host(), q, args, d);
  std::int64_t longest = 0;
  for (std::size_t s = 1; s < cu.size(); ++s) longest = std::max(longest, cu[s] - cu[s - 1]);
  return static_cast<int>(longest);
}

// A contiguous (rows, heads, hd) or (batch, rows, heads, hd) bf16 tensor's addressing.
kernels::AttentionTensor cuda_tensor(void* ptr, std::int64_t rows, std::int64_t heads,
                                     std::int64_t hd) {
  kernels::AttentionTensor t;
  t.ptr = ptr;
  t.head_stride = hd;
  t.row_stride = heads * hd;
  t.batch_stride = rows * heads * hd;
  return t;
}

kernels::AttentionParams cuda_params(std::string_view op, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& out, const Tensor& lse,
                                     const AttentionArgs& args, const AttentionDims& d) {
  kernels::AttentionParams p;
  const std::int64_t rows = d.packed ? 0 : d.seq_len;  // batch stride 0 when packed (unused)
  p.q = cuda_tensor(q.raw(), rows, d.hq, d.hd);
  p.k = cuda_tensor(k.raw(), rows, d.hkv, d.hd);
  p.v = cuda_tensor(v.raw(), rows, d.hkv, d.hd);
  p.out = cuda_tensor(out.raw(), rows, d.hq, d.hd);
  p.lse = lse.data<float>();
  p.lse_batch_stride = d.packed ? 0 : d.hq * d.seq_len;
  p.lse_head_stride = d.packed ? d.tokens : d.seq_len;
  p.batch = static_cast<int>(d.packed ? args.cu_seqlens.numel() - 1 : d.batch);
  p.seqlen = cuda_seqlen(op, q, args, d);
  p.heads = static_cast<int>(d.hq);
  p.kv_heads = static_cast<int>(d.hkv);
  p.head_dim = static_cast<int>(d.hd);
  p.cu_seqlens = d.packed ? args.cu_seqlens.data<std::int32_t>() : nullptr;
  p.scale = static_cast<float>(args.scale);
  p.causal = args.causal;
  // A window wider than every sequence has no effect.
  p.window = static_cast<int>(std::min<std::int64_t>(args.window, INT_MAX));
  return p;
}

void cuda_attention_fwd(std::string_view op, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionArgs& args, const AttentionDims& d, const Tensor& out,
                        const Tensor& lse) {
  if (d.tokens == 0) return;
  const kernels::AttentionParams p = cuda_params(op, q, k, v, out, lse, args, d);
  cuda::DeviceGuard device(q.device().index);
  kernels::attention_fwd(p, cuda::current_stream());
}

void cuda_attention_bwd(std::string_view op, const Tensor& dout, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& out, const Tensor& lse,
                        const AttentionArgs& args, const AttentionDims& d, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv) {
  if (d.tokens == 0) return;
  const int dev = q.device().index;
  kernels::AttentionBwdParams p;
  p.fwd = cuda_params(op, q, k, v, out, lse, args, d);
  const std::int64_t rows = d.packed ? 0 : d.seq_len;
  // The kernels write all three gradients: an undefined one goes to scratch.
  const DeviceScratch dq_scratch(dev, dq.defined() ? 0 : q.nbytes());
  const DeviceScratch dk_scratch(dev, dk.defined() ? 0 : k.nbytes());
  const DeviceScratch dv_scratch(dev, dv.defined() ? 0 : v.nbytes());
  p.dout = cuda_tensor(dout.raw(), rows, d.hq, d.hd);
  p.dq = cuda_tensor(dq.defined() ? dq.raw() : dq_scratch.get(), rows, d.hq, d.hd);
  p.dk = cuda_tensor(dk.defined() ? dk.raw() : dk_scratch.get(), rows, d.hkv, d.hd);
  p.dv = cuda_tensor(dv.defined() ? dv.raw() : dv_scratch.get(), rows, d.hkv, d.hd);
  cuda::DeviceGuard device(dev);
  const DeviceScratch workspace(dev, kernels::attention_bwd_workspace_bytes(p.fwd));
  p.workspace = workspace.get();
  p.workspace_bytes = workspace.bytes();
  kernels::attention_bwd(p, cuda::current_stream());
}

#endif  // HONE_CUDA_ATTENTION

}  // namespace

void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args,
                   const Tensor& out, const Tensor& lse) {
  constexpr std::string_view op = "attention_fwd";
  const AttentionDims d = check_qkv(op, q, k, v, args);
  const std::string from_q = described("q", q);
  expect_like(op, "out", out, "q", q, q.shape(), from_q);
  expect_lse(op, lse, q, lse_shape(d));
  if (d.cuda) {
#ifdef HONE_CUDA_ATTENTION
    return cuda_attention_fwd(op, q, k, v, args, d, out, lse);
#else
    cuda_unavailable(op, "attention");
#endif
  }
  const std::vector<std::int64_t> cu = sequence_offsets(op, q, args, d);
  const cpu::AttentionShape sh = cpu_shape(d, args, cu);
  dispatch_float(op, q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_fwd<T>(q.data<T>(), k.data<T>(), v.data<T>(), sh, out.data<T>(), lse.data<T>());
  });
}

void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                   const Tensor& out, const Tensor& lse, const AttentionArgs& args,
                   const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  constexpr std::string_view op = "attention_bwd";
  const AttentionDims d = check_qkv(op, q, k, v, args);
  const std::string from_q = described("q", q);
  const std::string from_k = described("k", k);
  expect_like(op, "dout", dout, "q", q, q.shape(), from_q);
  expect_like(op, "out", out, "q", q, q.shape(), from_q);
  expect_lse(op, lse, q, lse_shape(d));
  if (dq.defined()) expect_like(op, "dq", dq, "q", q, q.shape(), from_q);
  if (dk.defined()) expect_like(op, "dk", dk, "k", k, k.shape(), from_k);
  if (dv.defined()) expect_like(op, "dv", dv, "v", v, v.shape(), described("v", v));
  if (!dq.defined() && !dk.defined() && !dv.defined()) return;  // nothing to compute
  if (d.cuda) {
#ifdef HONE_CUDA_ATTENTION
    return cuda_attention_bwd(op, dout, q, k, v, out, lse, args, d, dq, dk, dv);
#else
    cuda_unavailable(op, "attention");
#endif
  }
  const std::vector<std::int64_t> cu = sequence_offsets(op, q, args, d);
  const cpu::AttentionShape sh = cpu_shape(d, args, cu);
  dispatch_float(op, q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_bwd<T>(dout.data<T>(), q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(),
                          lse.data<T>(), sh, optional_data<T>(dq), optional_data<T>(dk),
                          optional_data<T>(dv));
  });
}

void attention_decode(const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& cache_seqlens, const AttentionArgs& args, const Tensor& out,
                      const Tensor& lse) {
  constexpr std::string_view op = "attention_decode";
  expect_q_dtype(op, q);
  const bool on_cuda = q.device().is_cuda();
  HONE_CHECK(q.ndim() == 4 && q.size(1) >= 1 && q.size(2) >= 1 && q.size(3) >= 1, op,
             "argument 'q' has shape ", shape_str(q.shape()),
             "; expected (B, Tq, Hq, hd) with Tq, Hq, hd ≥ 1");
  const std::int64_t batch = q.size(0), tq = q.size(1), hq = q.size(2), hd = q.size(3);
  const std::string from_q = described("q", q);
  expect_dtype(op, "k", k, "q", q);
  expect_ndim(op, "k", k, 4);
  const std::int64_t capacity = k.size(1), hkv = k.size(2);
  expect_shape(op, "k", k, {batch, capacity, hkv, hd}, from_q);
  expect_device(op, "k", k, "q", q);
  HONE_CHECK(hkv >= 1 && hq % hkv == 0, op, "argument 'k' has shape ", shape_str(k.shape()),
             " with ", hkv, " kv heads, which do not divide the ", hq, " query heads of ", from_q);
  HONE_CHECK(capacity >= tq, op, "argument 'k' has shape ", shape_str(k.shape()), ": a cache of ",
             capacity, " rows cannot hold the ", tq, " new tokens of ", from_q);
  expect_like(op, "v", v, "k", k, k.shape(), described("k", k));
  if (cache_seqlens.defined()) {
    HONE_CHECK(cache_seqlens.dtype() == DType::i32, op, "argument 'cache_seqlens' has dtype ",
               dtype_name(cache_seqlens.dtype()), "; expected i32");
    expect_shape(op, "cache_seqlens", cache_seqlens, {batch}, from_q);
    expect_device(op, "cache_seqlens", cache_seqlens, "q", q);
  }
  HONE_CHECK(!args.cu_seqlens.defined(), op,
             "argument 'cu_seqlens' is defined; decode takes the cache's lengths as "
             "cache_seqlens and cu_seqlens must be undefined");
  check_scale_window(op, args);
  expect_like(op, "out", out, "q", q, q.shape(), from_q);
  if (lse.defined()) expect_lse(op, lse, q, {batch, hq, tq});
  if (on_cuda) {
    check_cuda_head_dim(op, q, hd);
    check_at_most(op, "the batch size B", batch, kMaxGridDim, q);
    check_at_most(op, "the number of kv heads", hkv, kMaxGridDim, q);
    check_at_most(op, "the cache capacity C", capacity, INT_MAX, q);
#ifdef HONE_CUDA_ATTENTION
    if (batch == 0) return;
    kernels::AttentionDecodeParams p;
    p.q = cuda_tensor(q.raw(), tq, hq, hd);
    p.k = cuda_tensor(k.raw(), capacity, hkv, hd);
    p.v = cuda_tensor(v.raw(), capacity, hkv, hd);
    p.out = cuda_tensor(out.raw(), tq, hq, hd);
    p.lse = lse.defined() ? lse.data<float>() : nullptr;
    p.lse_batch_stride = hq * tq;
    p.lse_head_stride = tq;
    p.batch = static_cast<int>(batch);
    p.q_len = static_cast<int>(tq);
    p.kv_capacity = static_cast<int>(capacity);
    p.cache_seqlens = cache_seqlens.defined() ? cache_seqlens.data<std::int32_t>() : nullptr;
    p.heads = static_cast<int>(hq);
    p.kv_heads = static_cast<int>(hkv);
    p.head_dim = static_cast<int>(hd);
    p.scale = static_cast<float>(args.scale);
    p.causal = args.causal;
    p.window = static_cast<int>(std::min<std::int64_t>(args.window, INT_MAX));
    const int dev = q.device().index;
    cuda::DeviceGuard device(dev);
    const DeviceScratch workspace(dev, kernels::attention_decode_workspace_bytes(p));
    p.workspace = workspace.get();
    p.workspace_bytes = workspace.bytes();
    return kernels::attention_decode(p, cuda::current_stream());
#else
    cuda_unavailable(op, "attention");
#endif
  }
  // Host lengths, each in [Tq, C] (every sequence holds C rows when cache_seqlens is undefined).
  std::vector<std::int64_t> lens(static_cast<std::size_t>(batch), capacity);
  if (cache_seqlens.defined()) {
    const std::int32_t* c = cache_seqlens.data<std::int32_t>();
    for (std::int64_t b = 0; b < batch; ++b) {
      HONE_CHECK(c[b] >= tq && c[b] <= capacity, op, "argument 'cache_seqlens' has value ", c[b],
                 " at index ", b, "; expected a length in [Tq, C] = [", tq, ", ", capacity,
                 "] (the cache holds the new tokens too)");
      lens[static_cast<std::size_t>(b)] = c[b];
    }
  }
  cpu::AttentionDecodeShape sh;
  sh.batch = batch;
  sh.q_len = tq;
  sh.capacity = capacity;
  sh.cache_lens = lens.data();
  sh.hq = hq;
  sh.hkv = hkv;
  sh.hd = hd;
  sh.scale = softmax_scale(args.scale, hd);
  sh.causal = args.causal;
  sh.window = args.window;
  dispatch_float(op, q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_decode<T>(q.data<T>(), k.data<T>(), v.data<T>(), sh, out.data<T>(),
                             optional_data<T>(lse));
  });
}

}  // namespace hone::ops

// ops::attention_fwd / attention_bwd: argument validation (padded and packed variable-length
// layouts) and device dispatch.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/attention.h"
#include "ops/check.h"
#include "ops/ops.h"

namespace hone::ops {

namespace {

// What validation learns about a problem from q, k and args.
struct AttentionDims {
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

// cu_seqlens' dtype, rank and device (its values are checked on the host, later).
void check_cu_seqlens_tensor(std::string_view op, const Tensor& cu, const Tensor& q) {
  HONE_CHECK(cu.dtype() == DType::i32, op, "argument 'cu_seqlens' has dtype ",
             dtype_name(cu.dtype()), "; expected i32");
  HONE_CHECK(cu.ndim() == 1 && cu.numel() >= 1, op, "argument 'cu_seqlens' has shape ",
             shape_str(cu.shape()), "; expected (S + 1), the offsets of S ≥ 0 sequences");
  expect_device(op, "cu_seqlens", cu, "q", q);
}

// Checks q, k, v and the args both directions share.
AttentionDims check_qkv(std::string_view op, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionArgs& args) {
  expect_float(op, "q", q);
  AttentionDims d;
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
  HONE_CHECK(std::isfinite(args.scale), op, "argument 'scale' is ", args.scale,
             "; expected a finite value (0 means 1/sqrt(hd))");
  HONE_CHECK(args.window >= 0, op, "argument 'window' is ", args.window,
             "; expected ≥ 0 (0 means no sliding window)");
  return d;
}

Shape lse_shape(const AttentionDims& d) {
  return d.packed ? Shape{d.hq, d.tokens} : Shape{d.batch, d.hq, d.seq_len};
}

// The sequence offsets as host int64: 0, T, 2T, … for the padded layout; cu_seqlens' values,
// checked (start at 0, non-decreasing, end at N), for the packed one.
std::vector<std::int64_t> sequence_offsets(std::string_view op, const Tensor& q,
                                           const AttentionArgs& args, const AttentionDims& d) {
  std::vector<std::int64_t> cu;
  if (!d.packed) {
    for (std::int64_t b = 0; b <= d.batch; ++b) cu.push_back(b * d.seq_len);
    return cu;
  }
  const std::int32_t* c = args.cu_seqlens.data<std::int32_t>();
  const std::int64_t n = args.cu_seqlens.numel();
  HONE_CHECK(c[0] == 0, op, "argument 'cu_seqlens' has value ", c[0], " at index 0; expected 0");
  cu.push_back(0);
  for (std::int64_t i = 1; i < n; ++i) {
    HONE_CHECK(c[i] >= c[i - 1], op, "argument 'cu_seqlens' decreases at index ", i, ": value ",
               c[i], " after ", c[i - 1], "; expected non-decreasing offsets");
    cu.push_back(c[i]);
  }
  HONE_CHECK(cu.back() == d.tokens, op, "argument 'cu_seqlens' ends with value ", cu.back(),
             " at index ", n - 1, "; expected N = ", d.tokens, " from ", described("q", q));
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
  sh.scale = args.scale == 0.0 ? 1.0 / std::sqrt(static_cast<double>(d.hd)) : args.scale;
  sh.causal = args.causal;
  sh.window = args.window;
  return sh;
}

template <class T>
T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args,
                   const Tensor& out, const Tensor& lse) {
  constexpr std::string_view op = "attention_fwd";
  const AttentionDims d = check_qkv(op, q, k, v, args);
  const std::string from_q = described("q", q);
  expect_like(op, "out", out, "q", q, q.shape(), from_q);
  expect_like(op, "lse", lse, "q", q, lse_shape(d), from_q);
  if (q.device().is_cuda()) no_cuda_kernel(op);
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
  expect_like(op, "lse", lse, "q", q, lse_shape(d), from_q);
  if (dq.defined()) expect_like(op, "dq", dq, "q", q, q.shape(), from_q);
  if (dk.defined()) expect_like(op, "dk", dk, "k", k, k.shape(), from_k);
  if (dv.defined()) expect_like(op, "dv", dv, "v", v, v.shape(), described("v", v));
  if (!dq.defined() && !dk.defined() && !dv.defined()) return;  // nothing to compute
  if (q.device().is_cuda()) no_cuda_kernel(op);
  const std::vector<std::int64_t> cu = sequence_offsets(op, q, args, d);
  const cpu::AttentionShape sh = cpu_shape(d, args, cu);
  dispatch_float(op, q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_bwd<T>(dout.data<T>(), q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(),
                          lse.data<T>(), sh, optional_data<T>(dq), optional_data<T>(dk),
                          optional_data<T>(dv));
  });
}

}  // namespace hone::ops

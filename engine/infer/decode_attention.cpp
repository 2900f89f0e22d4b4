// Decode attention on the CPU: for each (sequence, query head), scores against the visible
// cached keys, a max-shifted softmax and the weighted sum of values, in the tensors' precision.
#include "infer/decode_attention.h"

#include <algorithm>
#include <cmath>

#include "cpu/parallel.h"
#include "hone/error.h"

namespace hone::infer {

namespace {

constexpr const char* kOp = "decode_attention";

template <class T>
void run(const T* q, const T* k, const T* v, const std::vector<std::int64_t>& lengths, std::int64_t B,
         std::int64_t hq, std::int64_t hkv, std::int64_t hd, std::int64_t cap, std::int64_t window, T scale, T* out) {
  const std::int64_t group = hq / hkv;
  cpu::parallel_for(B * hq, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<T> p;
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t b = item / hq, h = item % hq, g = h / group;
      const std::int64_t len = lengths[static_cast<std::size_t>(b)];
      const std::int64_t first = window > 0 ? std::max<std::int64_t>(0, len - window) : 0;
      const T* qr = q + (b * hq + h) * hd;
      const T* kb = k + (b * cap * hkv + g) * hd;  // key j of this head at kb + j·hkv·hd
      const T* vb = v + (b * cap * hkv + g) * hd;
      p.assign(static_cast<std::size_t>(len - first), T(0));
      T m = -INFINITY;
      for (std::int64_t j = first; j < len; ++j) {
        const T* kr = kb + j * hkv * hd;
        T s = 0;
        for (std::int64_t d = 0; d < hd; ++d) s += qr[d] * kr[d];
        s *= scale;
        p[static_cast<std::size_t>(j - first)] = s;
        m = std::max(m, s);
      }
      T sum = 0;
      for (T& x : p) {
        x = std::exp(x - m);
        sum += x;
      }
      T* o = out + (b * hq + h) * hd;
      std::fill(o, o + hd, T(0));
      for (std::int64_t j = first; j < len; ++j) {
        const T w = p[static_cast<std::size_t>(j - first)] / sum;
        const T* vr = vb + j * hkv * hd;
        for (std::int64_t d = 0; d < hd; ++d) o[d] += w * vr[d];
      }
    }
  });
}

}  // namespace

void decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<std::int64_t>& lengths,
                      std::int64_t window, double scale, const Tensor& out) {
  HONE_CHECK(q.defined() && q.ndim() == 3, kOp, "argument 'q' must be (B, Hq, hd); got ", q.str());
  HONE_CHECK(k.defined() && k.ndim() == 4, kOp, "argument 'k' must be (B, C, Hkv, hd); got ", k.str());
  const std::int64_t B = q.size(0), hq = q.size(1), hd = q.size(2), cap = k.size(1), hkv = k.size(2);
  HONE_CHECK(k.size(0) >= B && k.size(3) == hd, kOp, "argument 'k' has shape ", k.str(), " for q ", q.str());
  HONE_CHECK(v.defined() && v.shape() == k.shape(), kOp, "argument 'v' is ", v.str(), "; expected the shape of k ",
             k.str());
  HONE_CHECK(hkv > 0 && hq % hkv == 0, kOp, "query heads ", hq, " are not a multiple of kv heads ", hkv);
  HONE_CHECK(out.defined() && out.shape() == q.shape(), kOp, "argument 'out' is ", out.str(), "; expected ", q.str());
  HONE_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype() && q.dtype() == out.dtype(), kOp,
             "q, k, v and out must share a dtype");
  HONE_CHECK(q.device().is_cpu() && k.device().is_cpu(), kOp, "host tensors only (the CUDA decode kernel is not built yet)");
  HONE_CHECK(static_cast<std::int64_t>(lengths.size()) == B, kOp, "lengths has ", lengths.size(), " entries for ", B,
             " sequences");
  for (std::size_t b = 0; b < lengths.size(); ++b)
    HONE_CHECK(lengths[b] >= 1 && lengths[b] <= cap, kOp, "length ", lengths[b], " of sequence ", b,
               " is outside [1, ", cap, "]");
  HONE_CHECK(window >= 0, kOp, "window ", window, " is negative");
  const double sc = scale == 0.0 ? 1.0 / std::sqrt(static_cast<double>(hd)) : scale;
  if (q.dtype() == DType::f32)
    run<float>(q.data<float>(), k.data<float>(), v.data<float>(), lengths, B, hq, hkv, hd, cap, window,
               static_cast<float>(sc), out.data<float>());
  else if (q.dtype() == DType::f64)
    run<double>(q.data<double>(), k.data<double>(), v.data<double>(), lengths, B, hq, hkv, hd, cap, window, sc,
                out.data<double>());
  else
    fail(kOp, cat("dtype ", dtype_name(q.dtype()), " is not supported on the CPU (f32, f64)"));
}

}  // namespace hone::infer

// Next-token choice (see sampler.h).
#include "infer/sampler.h"

#include <cmath>
#include <unordered_set>

#include "hone/error.h"
#include "ops/ops.h"

namespace hone::infer {

void check_sampling(const SamplingOptions& o) {
  HONE_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, "generate", "temperature ", o.temperature,
             " must be ≥ 0 (0 is greedy)");
  HONE_CHECK(o.top_k >= 0, "generate", "top_k ", o.top_k, " must be ≥ 0 (0 is off)");
  HONE_CHECK(o.top_p > 0 && o.top_p <= 1, "generate", "top_p ", o.top_p, " must be in (0, 1]");
  HONE_CHECK(std::isfinite(o.repetition_penalty) && o.repetition_penalty > 0, "generate", "repetition_penalty ",
             o.repetition_penalty, " must be > 0 (1 is off)");
}

void apply_repetition_penalty(const Tensor& logits, const std::vector<std::int32_t>& seen, double penalty) {
  if (penalty == 1.0) return;
  const std::int64_t V = logits.size(-1);
  HONE_CHECK(logits.numel() == V, "generate", "repetition penalty on ", logits.str(), ": one row expected");
  std::unordered_set<std::int32_t> ids(seen.begin(), seen.end());
  auto apply = [&](auto* x) {
    for (std::int32_t id : ids) {
      HONE_CHECK(id >= 0 && id < V, "generate", "token id ", id, " is outside [0, ", V, ")");
      auto& v = x[id];
      v = v > 0 ? v / penalty : v * penalty;
    }
  };
  if (logits.dtype() == DType::f32)
    apply(logits.data<float>());
  else if (logits.dtype() == DType::f64)
    apply(logits.data<double>());
  else
    fail("generate", cat("repetition penalty on ", dtype_name(logits.dtype()), " logits (f32 or f64 expected)"));
}

std::int32_t choose_token(const Tensor& logits, const SamplingOptions& o, std::uint64_t sequence, std::uint64_t step) {
  const Tensor row = logits.view({1, logits.size(-1)});
  const Tensor out = Tensor::empty({1}, DType::i64);
  if (o.temperature == 0.0 || o.top_k == 1) {
    ops::argmax(row, out);
  } else {
    ops::SampleArgs a;
    a.temperature = o.temperature;
    a.top_k = o.top_k;
    a.top_p = o.top_p;
    a.seed = o.seed;
    a.offset = (sequence << 32) + step;
    ops::sample(row, a, out);
  }
  return static_cast<std::int32_t>(out.to_vector<std::int64_t>()[0]);
}

}  // namespace hone::infer

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

namespace {

bool greedy(const SamplingOptions& o) { return o.temperature == 0.0 || o.top_k == 1; }

// ops::sample's arguments for one row's draw.
ops::SampleArgs sample_args(const SamplingOptions& o, std::uint64_t sequence, std::uint64_t step) {
  ops::SampleArgs a;
  a.temperature = o.temperature;
  a.top_k = o.top_k;
  a.top_p = o.top_p;
  a.seed = o.seed;
  a.offset = (sequence << 32) + step;
  return a;
}

}  // namespace

std::int32_t choose_token(const Tensor& logits, const SamplingOptions& o, std::uint64_t sequence, std::uint64_t step) {
  const Tensor row = logits.view({1, logits.size(-1)});
  const Tensor out = Tensor::empty({1}, DType::i64, logits.device());
  if (greedy(o))
    ops::argmax(row, out);
  else
    ops::sample(row, sample_args(o, sequence, step), out);
  return static_cast<std::int32_t>(out.to_vector<std::int64_t>()[0]);
}

std::vector<std::int32_t> choose_tokens(const Tensor& logits, const SamplingOptions& o,
                                        const std::vector<std::uint64_t>& sequences,
                                        const std::vector<std::uint64_t>& steps,
                                        const std::vector<const std::vector<std::int32_t>*>& seen) {
  HONE_CHECK(logits.ndim() == 2, "generate", "logits ", logits.str(), ": (R, V) expected");
  const std::int64_t R = logits.size(0);
  HONE_CHECK(static_cast<std::int64_t>(sequences.size()) == R && static_cast<std::int64_t>(steps.size()) == R &&
                 static_cast<std::int64_t>(seen.size()) == R,
             "generate", R, " rows of logits for ", sequences.size(), " sequences, ", steps.size(), " steps and ",
             seen.size(), " histories");
  std::vector<std::int32_t> ids;
  if (o.repetition_penalty != 1.0) {
    Tensor host = logits.host();
    if (host.dtype() != DType::f32 && host.dtype() != DType::f64) host = host.to(DType::f32);
    for (std::int64_t r = 0; r < R; ++r) {
      const Tensor row = host.slice(r, r + 1).clone();
      apply_repetition_penalty(row, *seen[static_cast<std::size_t>(r)], o.repetition_penalty);
      ids.push_back(choose_token(row, o, sequences[static_cast<std::size_t>(r)], steps[static_cast<std::size_t>(r)]));
    }
    return ids;
  }
  const Tensor out = Tensor::empty({R}, DType::i64, logits.device());
  if (greedy(o)) {
    ops::argmax(logits, out);  // row by row: the same as one row at a time
  } else {
    // One draw per row: each sequence has its own Philox stream (ops::sample's row r of one
    // call would read word r % 4 of a shared block instead).
    for (std::int64_t r = 0; r < R; ++r)
      ops::sample(logits.slice(r, r + 1),
                  sample_args(o, sequences[static_cast<std::size_t>(r)], steps[static_cast<std::size_t>(r)]),
                  out.slice(r, r + 1));
  }
  for (std::int64_t id : out.to_vector<std::int64_t>()) ids.push_back(static_cast<std::int32_t>(id));
  return ids;
}

}  // namespace hone::infer

// The flash-attention kernels (kernels/attention) under the emulator against engine/cpu's
// attention in f64 on the same bf16 inputs: forward (causal and not, GQA ratios 1-8, head
// dims 32-128, lengths 1-129, sliding windows, strided views), packed variable-length batches,
// the backward and the split-KV decode. Accuracy is judged as FlashAttention's tests do: the
// kernel's largest error against the f64 reference may be at most a small multiple of the
// error of the same math done naively in bf16 (every product and the softmax rounded to bf16).
// Outputs are bit-identical under the fwd, rev and random schedules and across runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpu/attention.h"
#include "hone/dtype.h"
#include "hone/error.h"
#include "kernels/attention/attention.h"
#include "kernels/emu/emu.h"

using hone::emu::Schedule;
using hone::kernels::AttentionBwdParams;
using hone::kernels::AttentionDecodeParams;
using hone::kernels::AttentionParams;
using hone::kernels::AttentionTensor;

namespace {

constexpr Schedule kSchedules[] = {Schedule::fwd, Schedule::rev, Schedule::rand};

std::uint16_t bf16_bits(double x) { return hone::to_bf16(static_cast<float>(x)).bits; }
double bf16_value(std::uint16_t b) { return hone::from_bf16(hone::bf16{b}); }
double round_bf16(double x) { return bf16_value(bf16_bits(x)); }

// One attention problem: sequence lengths (all equal unless packed), heads, masking, and the
// padding of the rows of q/k/v/out in memory (a view of a wider tensor, e.g. fused QKV).
struct Problem {
  std::vector<int> lens;
  bool packed = false;
  int hq = 1, hkv = 1, hd = 64;
  bool causal = true;
  int window = 0;
  double scale = 0.0;  // 0 → 1/sqrt(hd)
  int row_pad = 0;     // extra elements per row (a multiple of 8)
  std::uint64_t seed = 1;

  int batch() const { return static_cast<int>(lens.size()); }
  int max_len() const { return lens.empty() ? 0 : *std::max_element(lens.begin(), lens.end()); }
  std::int64_t tokens() const {
    std::int64_t n = 0;
    for (int l : lens) n += l;
    return n;
  }
  std::vector<std::int64_t> offsets() const {
    std::vector<std::int64_t> cu{0};
    for (int l : lens) cu.push_back(cu.back() + l);
    return cu;
  }
  double resolved_scale() const { return scale != 0.0 ? scale : 1.0 / std::sqrt(double(hd)); }
  bool sees(int i, int j) const { return (!causal || j <= i) && (window == 0 || i - j < window); }
  std::string describe() const {
    std::string l;
    for (int x : lens) l += std::to_string(x) + " ";
    return hone::cat(packed ? "packed lens " : "padded lens ", l, "hq ", hq, " hkv ", hkv, " hd ",
                     hd, " causal ", causal, " window ", window, " scale ", scale, " row_pad ",
                     row_pad);
  }
};

// Values of a (tokens, heads, hd) tensor, bf16-representable, in f64.
std::vector<double> random_values(std::int64_t n, std::uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& x : v) x = round_bf16(dist(rng));
  return v;
}

// A bf16 device-layout copy of a contiguous (tokens, heads, hd) tensor with padded rows.
struct Strided {
  std::vector<std::uint16_t> data;
  std::int64_t row_stride = 0;
  int heads = 0, hd = 0;

  Strided(const std::vector<double>& v, int heads_, int hd_, int pad)
      : row_stride(static_cast<std::int64_t>(heads_) * hd_ + pad), heads(heads_), hd(hd_) {
    const std::int64_t rows = static_cast<std::int64_t>(v.size()) / (heads * hd);
    data.assign(static_cast<std::size_t>(rows * row_stride + 8), bf16_bits(std::nan("")));
    for (std::int64_t r = 0; r < rows; ++r)
      for (int i = 0; i < heads * hd; ++i) data[r * row_stride + i] = bf16_bits(v[r * heads * hd + i]);
  }
  // NaN-poisoned output of the same shape.
  static Strided poisoned(std::int64_t tokens, int heads, int hd, int pad) {
    return Strided(std::vector<double>(static_cast<std::size_t>(tokens * heads * hd), std::nan("")),
                   heads, hd, pad);
  }
  std::vector<double> values() const {
    const std::int64_t rows = (static_cast<std::int64_t>(data.size()) - 8) / row_stride;
    std::vector<double> v(static_cast<std::size_t>(rows * heads * hd));
    for (std::int64_t r = 0; r < rows; ++r)
      for (int i = 0; i < heads * hd; ++i) v[r * heads * hd + i] = bf16_value(data[r * row_stride + i]);
    return v;
  }
  // The padding between rows must be left alone.
  bool padding_untouched() const {
    const std::uint16_t nan = bf16_bits(std::nan(""));
    const std::int64_t rows = (static_cast<std::int64_t>(data.size()) - 8) / row_stride;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t i = heads * hd; i < row_stride; ++i)
        if (data[r * row_stride + i] != nan) return false;
    return true;
  }
  AttentionTensor tensor(const Problem& pb) {
    AttentionTensor t;
    t.ptr = data.data();
    t.row_stride = row_stride;
    t.head_stride = hd;
    t.batch_stride = pb.packed ? 0 : row_stride * (pb.lens.empty() ? 0 : pb.lens[0]);
    return t;
  }
};

struct Inputs {
  std::vector<double> q, k, v;
};

Inputs make_inputs(const Problem& pb) {
  const std::int64_t n = pb.tokens();
  return {random_values(n * pb.hq * pb.hd, pb.seed, -1.5, 1.5),
          random_values(n * pb.hkv * pb.hd, pb.seed + 1, -1.5, 1.5),
          random_values(n * pb.hkv * pb.hd, pb.seed + 2, -1.5, 1.5)};
}

hone::cpu::AttentionShape cpu_shape(const Problem& pb, const std::vector<std::int64_t>& cu) {
  hone::cpu::AttentionShape sh;
  sh.cu_seqlens = cu.data();
  sh.n_seqs = pb.batch();
  sh.hq = pb.hq, sh.hkv = pb.hkv, sh.hd = pb.hd;
  sh.lse_seq_mul = pb.packed ? 1 : pb.hq;
  sh.lse_head_stride = pb.packed ? pb.tokens() : (pb.lens.empty() ? 0 : pb.lens[0]);
  sh.scale = pb.resolved_scale();
  sh.causal = pb.causal;
  sh.window = pb.window;
  return sh;
}

// ---- references ----------------------------------------------------------------------------

struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

// engine/cpu in f64 on the bf16 inputs (gradients when dout is given).
Reference cpu_reference(const Problem& pb, const Inputs& in, const std::vector<double>& dout) {
  const std::vector<std::int64_t> cu = pb.offsets();
  const hone::cpu::AttentionShape sh = cpu_shape(pb, cu);
  Reference r;
  r.out.resize(in.q.size());
  r.lse.resize(static_cast<std::size_t>(pb.hq * pb.tokens()));
  hone::cpu::attention_fwd<double>(in.q.data(), in.k.data(), in.v.data(), sh, r.out.data(),
                                   r.lse.data());
  if (!dout.empty()) {
    r.dq.resize(in.q.size()), r.dk.resize(in.k.size()), r.dv.resize(in.v.size());
    hone::cpu::attention_bwd<double>(dout.data(), in.q.data(), in.k.data(), in.v.data(),
                                     r.out.data(), r.lse.data(), sh, r.dq.data(), r.dk.data(),
                                     r.dv.data());
  }
  return r;
}

// The same math done naively in bf16, row by row: S = bf16(q·k), bf16(scale·S), P = bf16(softmax)
// (computed in f32), O = bf16(P·V); backward dV = bf16(Pᵀ dO), dP = bf16(dO Vᵀ),
// dS = bf16(scale · bf16(P ∘ (dP − rowsum(P ∘ dP)))), dQ = bf16(dS K), dK = bf16(dSᵀ Q).
Reference naive_bf16(const Problem& pb, const Inputs& in, const std::vector<double>& dout) {
  const int hq = pb.hq, hkv = pb.hkv, hd = pb.hd, group = hq / hkv;
  const float scale = static_cast<float>(round_bf16(pb.resolved_scale()));
  const std::vector<std::int64_t> cu = pb.offsets();
  auto r16 = [](float x) { return static_cast<float>(round_bf16(x)); };
  Reference r;
  r.out.assign(in.q.size(), 0.0);
  std::vector<float> dq(in.q.size(), 0.0f), dk(in.k.size(), 0.0f), dv(in.v.size(), 0.0f);
  auto qi = [&](std::int64_t n, int h) { return (n * hq + h) * hd; };
  auto ki = [&](std::int64_t n, int g) { return (n * hkv + g) * hd; };
  for (int s = 0; s < pb.batch(); ++s) {
    const std::int64_t off = cu[s];
    const int len = pb.lens[s];
    for (int h = 0; h < hq; ++h) {
      const int g = h / group;
      std::vector<float> p(static_cast<std::size_t>(len) * len, 0.0f);
      for (int i = 0; i < len; ++i) {
        std::vector<float> sc(len, -INFINITY);
        float m = -INFINITY;
        for (int j = 0; j < len; ++j) {
          if (!pb.sees(i, j)) continue;
          float dot = 0;
          for (int d = 0; d < hd; ++d)
            dot += static_cast<float>(in.q[qi(off + i, h) + d] * in.k[ki(off + j, g) + d]);
          sc[j] = r16(scale * r16(dot));
          m = std::max(m, sc[j]);
        }
        float sum = 0;
        for (int j = 0; j < len; ++j)
          if (pb.sees(i, j)) sum += std::exp(sc[j] - m);
        for (int j = 0; j < len; ++j)
          if (pb.sees(i, j)) p[i * len + j] = r16(std::exp(sc[j] - m) / sum);
        for (int d = 0; d < hd; ++d) {
          float o = 0;
          for (int j = 0; j < len; ++j) o += p[i * len + j] * static_cast<float>(in.v[ki(off + j, g) + d]);
          r.out[qi(off + i, h) + d] = r16(o);
        }
      }
      if (dout.empty()) continue;
      std::vector<float> ds(static_cast<std::size_t>(len) * len, 0.0f);
      for (int i = 0; i < len; ++i) {
        std::vector<float> dp(len, 0.0f);
        float big_d = 0;
        for (int j = 0; j < len; ++j) {
          float acc = 0;
          for (int d = 0; d < hd; ++d)
            acc += static_cast<float>(dout[qi(off + i, h) + d] * in.v[ki(off + j, g) + d]);
          dp[j] = r16(acc);
          big_d += p[i * len + j] * dp[j];
        }
        for (int j = 0; j < len; ++j) ds[i * len + j] = r16(scale * r16(p[i * len + j] * (dp[j] - big_d)));
      }
      for (int j = 0; j < len; ++j)
        for (int d = 0; d < hd; ++d) {
          float a = 0, b = 0;
          for (int i = 0; i < len; ++i) {
            a += p[i * len + j] * static_cast<float>(dout[qi(off + i, h) + d]);
            b += ds[i * len + j] * static_cast<float>(in.q[qi(off + i, h) + d]);
          }
          dv[ki(off + j, g) + d] += r16(a);  // per query head, then summed over the group
          dk[ki(off + j, g) + d] += r16(b);
        }
      for (int i = 0; i < len; ++i)
        for (int d = 0; d < hd; ++d) {
          float a = 0;
          for (int j = 0; j < len; ++j) a += ds[i * len + j] * static_cast<float>(in.k[ki(off + j, g) + d]);
          dq[qi(off + i, h) + d] = r16(a);
        }
    }
  }
  if (!dout.empty()) {
    r.dq.assign(dq.begin(), dq.end());
    for (float& x : dk) x = static_cast<float>(round_bf16(x));
    for (float& x : dv) x = static_cast<float>(round_bf16(x));
    r.dk.assign(dk.begin(), dk.end());
    r.dv.assign(dv.begin(), dv.end());
  }
  return r;
}

double max_error(const std::vector<double>& a, const std::vector<double>& ref) {
  REQUIRE(a.size() == ref.size());
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(a[i] - ref[i]);
    if (!(d <= e)) e = std::isnan(d) ? INFINITY : d;
  }
  return e;
}

// err(kernel) ≤ ratio · err(naive bf16) + 1e-6 against the f64 reference.
void check_error_ratio(const char* what, const std::vector<double>& kernel,
                       const std::vector<double>& naive, const std::vector<double>& ref,
                       double ratio) {
  const double ek = max_error(kernel, ref), en = max_error(naive, ref);
  INFO(what << ": kernel error " << ek << ", naive bf16 error " << en);
  CHECK(ek <= ratio * en + 1e-6);
}

// ---- running the kernels ---------------------------------------------------------------------

struct FwdResult {
  Strided out;
  std::vector<float> lse;
};

FwdResult run_fwd(const Problem& pb, const Inputs& in) {
  Strided q(in.q, pb.hq, pb.hd, pb.row_pad), k(in.k, pb.hkv, pb.hd, pb.row_pad),
      v(in.v, pb.hkv, pb.hd, pb.row_pad);
  FwdResult r{Strided::poisoned(pb.tokens(), pb.hq, pb.hd, pb.row_pad),
              std::vector<float>(static_cast<std::size_t>(pb.hq * pb.tokens()), std::nanf(""))};
  std::vector<std::int32_t> cu;
  for (std::int64_t o : pb.offsets()) cu.push_back(static_cast<std::int32_t>(o));
  AttentionParams p;
  p.q = q.tensor(pb), p.k = k.tensor(pb), p.v = v.tensor(pb), p.out = r.out.tensor(pb);
  p.lse = r.lse.data();
  p.lse_batch_stride = pb.packed ? 0 : static_cast<std::int64_t>(pb.hq) * pb.lens[0];
  p.lse_head_stride = pb.packed ? pb.tokens() : pb.lens[0];
  p.batch = pb.batch();
  p.seqlen = pb.max_len();
  p.heads = pb.hq, p.kv_heads = pb.hkv, p.head_dim = pb.hd;
  p.cu_seqlens = pb.packed ? cu.data() : nullptr;
  p.scale = static_cast<float>(pb.scale);
  p.causal = pb.causal;
  p.window = pb.window;
  hone::kernels::attention_fwd(p, nullptr);
  return r;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

bool same_bits(const std::vector<std::uint16_t>& a, const std::vector<std::uint16_t>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), 2 * a.size()) == 0;
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
}

// Runs the forward and checks it against the references.
void check_fwd(const Problem& pb) {
  INFO(pb.describe());
  const Inputs in = make_inputs(pb);
  const FwdResult r = run_fwd(pb, in);
  const Reference ref = cpu_reference(pb, in, {});
  const Reference naive = naive_bf16(pb, in, {});
  check_error_ratio("out", r.out.values(), naive.out, ref.out, 2.0);
  CHECK(r.out.padding_untouched());
  // lse is f32 math on the same inputs: close to f64 in absolute terms.
  CHECK(max_error(to_double(r.lse), ref.lse) <= 1e-4);
}

Problem padded(int b, int t, int hq, int hkv, int hd, bool causal) {
  Problem pb;
  pb.lens.assign(static_cast<std::size_t>(b), t);
  pb.hq = hq, pb.hkv = hkv, pb.hd = hd, pb.causal = causal;
  pb.seed = static_cast<std::uint64_t>(t * 131 + hq * 7 + hd + causal);
  return pb;
}

}  // namespace

TEST_CASE("attention forward matches engine/cpu: lengths 1-129, head dims 64/128, GQA 1-8",
          "[emu][attention]") {
  const int ratios[] = {1, 2, 4, 8};
  int which = 0;
  for (int hd : {64, 128})
    for (int t : {1, 17, 64, 129})
      for (bool causal : {true, false}) {
        const int ratio = ratios[which++ % 4];
        const int hkv = ratio == 1 ? 2 : 1;
        check_fwd(padded(t <= 17 ? 2 : 1, t, ratio * hkv, hkv, hd, causal));
      }
}

TEST_CASE("attention forward: head dims 32 and 96 run zero-padded in their buckets",
          "[emu][attention]") {
  for (int hd : {32, 96})
    for (bool causal : {true, false}) check_fwd(padded(1, 70, 2, 1, hd, causal));
}

TEST_CASE("attention forward: sliding windows, explicit scale and strided rows",
          "[emu][attention]") {
  for (int window : {1, 16, 70, 300})
    for (bool causal : {true, false}) {
      Problem pb = padded(1, 150, 2, 1, 64, causal);
      pb.window = window;
      check_fwd(pb);
    }
  Problem scaled = padded(2, 33, 4, 2, 128, true);
  scaled.scale = 0.3;
  scaled.row_pad = 24;  // rows of a wider tensor (e.g. fused QKV)
  check_fwd(scaled);
}

TEST_CASE("attention forward: packed variable-length batches", "[emu][attention]") {
  for (bool causal : {true, false})
    for (int hd : {64, 128}) {
      Problem pb;
      pb.packed = true;
      pb.lens = {1, 5, 64, 33};
      pb.hq = 4, pb.hkv = 2, pb.hd = hd, pb.causal = causal;
      pb.seed = 900 + hd + causal;
      check_fwd(pb);
    }
  // Empty sequences and a window.
  Problem pb;
  pb.packed = true;
  pb.lens = {0, 130, 0, 7};
  pb.hq = 2, pb.hkv = 1, pb.hd = 64, pb.window = 20;
  check_fwd(pb);
}

TEST_CASE("attention forward: packed sequences do not see each other", "[emu][attention]") {
  // Changing sequence 1's keys and values leaves sequences 0 and 2 bitwise unchanged.
  Problem pb;
  pb.packed = true;
  pb.lens = {40, 9, 70};
  pb.hq = 2, pb.hkv = 1, pb.hd = 64, pb.causal = false;
  const Inputs in = make_inputs(pb);
  Inputs edited = in;
  for (std::int64_t i = 40 * pb.hd; i < 49 * pb.hd; ++i) {
    edited.k[i] = -edited.k[i];
    edited.v[i] = round_bf16(edited.v[i] + 1.0);
  }
  const FwdResult a = run_fwd(pb, in), b = run_fwd(pb, edited);
  const std::int64_t row = pb.hq * pb.hd;
  auto rows = [&](const FwdResult& r, std::int64_t lo, std::int64_t hi) {
    const std::vector<double> v = r.out.values();
    return std::vector<double>(v.begin() + lo * row, v.begin() + hi * row);
  };
  CHECK(rows(a, 0, 40) == rows(b, 0, 40));
  CHECK(rows(a, 49, 119) == rows(b, 49, 119));
  CHECK(rows(a, 40, 49) != rows(b, 40, 49));
}

TEST_CASE("attention forward: bit-identical under every schedule and across runs",
          "[emu][attention]") {
  Problem pb;
  pb.packed = true;
  pb.lens = {129, 17};
  pb.hq = 4, pb.hkv = 1, pb.hd = 128, pb.window = 50;
  const Inputs in = make_inputs(pb);
  const FwdResult first = run_fwd(pb, in);
  for (Schedule sch : kSchedules) {
    hone::emu::ScopedSchedule scoped(sch, 11);
    const FwdResult r = run_fwd(pb, in);
    CHECK(same_bits(r.out.data, first.out.data));
    CHECK(same_bits(r.lse, first.lse));
  }
}

// ---- backward ----------------------------------------------------------------------------------

namespace {

struct BwdResult {
  Strided dq, dk, dv;
};

BwdResult run_bwd(const Problem& pb, const Inputs& in, const Strided& out,
                  const std::vector<float>& lse, const std::vector<double>& dout) {
  Strided q(in.q, pb.hq, pb.hd, pb.row_pad), k(in.k, pb.hkv, pb.hd, pb.row_pad),
      v(in.v, pb.hkv, pb.hd, pb.row_pad), go(dout, pb.hq, pb.hd, pb.row_pad);
  Strided o = out;
  std::vector<float> l = lse;
  BwdResult r{Strided::poisoned(pb.tokens(), pb.hq, pb.hd, pb.row_pad),
              Strided::poisoned(pb.tokens(), pb.hkv, pb.hd, pb.row_pad),
              Strided::poisoned(pb.tokens(), pb.hkv, pb.hd, pb.row_pad)};
  std::vector<std::int32_t> cu;
  for (std::int64_t x : pb.offsets()) cu.push_back(static_cast<std::int32_t>(x));
  AttentionBwdParams p;
  AttentionParams& f = p.fwd;
  f.q = q.tensor(pb), f.k = k.tensor(pb), f.v = v.tensor(pb), f.out = o.tensor(pb);
  f.lse = l.data();
  f.lse_batch_stride = pb.packed ? 0 : static_cast<std::int64_t>(pb.hq) * pb.lens[0];
  f.lse_head_stride = pb.packed ? pb.tokens() : pb.lens[0];
  f.batch = pb.batch(), f.seqlen = pb.max_len();
  f.heads = pb.hq, f.kv_heads = pb.hkv, f.head_dim = pb.hd;
  f.cu_seqlens = pb.packed ? cu.data() : nullptr;
  f.scale = static_cast<float>(pb.scale), f.causal = pb.causal, f.window = pb.window;
  p.dout = go.tensor(pb), p.dq = r.dq.tensor(pb), p.dk = r.dk.tensor(pb), p.dv = r.dv.tensor(pb);
  std::vector<float> workspace(hone::kernels::attention_bwd_workspace_bytes(f) / 4 + 4,
                               std::nanf(""));
  p.workspace = workspace.data();
  p.workspace_bytes = workspace.size() * 4;
  hone::kernels::attention_bwd(p, nullptr);
  return r;
}

// Forward then backward on the kernels; gradients against engine/cpu in f64 (from the exact
// forward) by the error ratio to the naive bf16 computation.
void check_bwd(const Problem& pb) {
  INFO(pb.describe());
  const Inputs in = make_inputs(pb);
  const std::vector<double> dout = random_values(pb.tokens() * pb.hq * pb.hd, pb.seed + 3, -1, 1);
  const FwdResult f = run_fwd(pb, in);
  const BwdResult g = run_bwd(pb, in, f.out, f.lse, dout);
  const Reference ref = cpu_reference(pb, in, dout);
  const Reference naive = naive_bf16(pb, in, dout);
  check_error_ratio("dq", g.dq.values(), naive.dq, ref.dq, 3.0);
  check_error_ratio("dk", g.dk.values(), naive.dk, ref.dk, 3.0);
  check_error_ratio("dv", g.dv.values(), naive.dv, ref.dv, 3.0);
  CHECK(g.dq.padding_untouched());
  CHECK(g.dk.padding_untouched());
  CHECK(g.dv.padding_untouched());
}

}  // namespace

TEST_CASE("attention backward matches engine/cpu: lengths 1-129, head dims 64/128, GQA 1-8",
          "[emu][attention]") {
  const int ratios[] = {1, 2, 4, 8};
  int which = 0;
  for (int hd : {64, 128})
    for (int t : {1, 17, 64, 129})
      for (bool causal : {true, false}) {
        const int ratio = ratios[which++ % 4];
        const int hkv = ratio == 1 ? 2 : 1;
        check_bwd(padded(t <= 17 ? 2 : 1, t, ratio * hkv, hkv, hd, causal));
      }
}

TEST_CASE("attention backward: packed batches, windows, head dims 32/96, strided rows",
          "[emu][attention]") {
  for (bool causal : {true, false}) {
    Problem pb;
    pb.packed = true;
    pb.lens = {1, 5, 64, 33};
    pb.hq = 4, pb.hkv = 1, pb.hd = causal ? 64 : 128, pb.causal = causal;
    pb.seed = 77 + causal;
    check_bwd(pb);
  }
  for (int window : {1, 20}) {
    Problem pb = padded(1, 140, 2, 1, 64, window == 1);
    pb.window = window;
    check_bwd(pb);
  }
  for (int hd : {32, 96}) {
    Problem pb = padded(1, 40, 2, 1, hd, true);
    pb.scale = 0.25;
    pb.row_pad = 8;
    check_bwd(pb);
  }
}

TEST_CASE("attention backward: bitwise-identical gradients across runs and schedules",
          "[emu][attention]") {
  Problem pb;
  pb.packed = true;
  pb.lens = {100, 29};
  pb.hq = 8, pb.hkv = 2, pb.hd = 64, pb.causal = true;
  const Inputs in = make_inputs(pb);
  const std::vector<double> dout = random_values(pb.tokens() * pb.hq * pb.hd, 5, -1, 1);
  const FwdResult f = run_fwd(pb, in);
  const BwdResult first = run_bwd(pb, in, f.out, f.lse, dout);
  const BwdResult second = run_bwd(pb, in, f.out, f.lse, dout);
  CHECK(same_bits(first.dq.data, second.dq.data));
  CHECK(same_bits(first.dk.data, second.dk.data));
  CHECK(same_bits(first.dv.data, second.dv.data));
  for (Schedule sch : kSchedules) {
    hone::emu::ScopedSchedule scoped(sch, 5);
    const BwdResult r = run_bwd(pb, in, f.out, f.lse, dout);
    CHECK(same_bits(r.dq.data, first.dq.data));
    CHECK(same_bits(r.dk.data, first.dk.data));
    CHECK(same_bits(r.dv.data, first.dv.data));
  }
}

TEST_CASE("attention mutation: a disabled pipeline barrier makes the kernels wrong",
          "[emu][attention]") {
  // Without the barrier after the cp.async wait, warps read tile rows other threads have not
  // copied yet (the emulator performs each thread's copies at its own wait).
  Problem pb = padded(1, 200, 2, 1, 64, false);
  const Inputs in = make_inputs(pb);
  const std::vector<double> dout = random_values(pb.tokens() * pb.hq * pb.hd, 9, -1, 1);
  const FwdResult good = run_fwd(pb, in);
  const BwdResult good_grads = run_bwd(pb, in, good.out, good.lse, dout);
  hone::emu::disable_barrier("attention_fwd_tile_ready");
  const FwdResult bad = run_fwd(pb, in);
  hone::emu::enable_all_barriers();
  CHECK_FALSE(same_bits(good.out.data, bad.out.data));
  for (const char* barrier : {"attention_dkdv_tile_ready", "attention_dq_tile_ready"}) {
    INFO(barrier);
    hone::emu::disable_barrier(barrier);
    const BwdResult bad_grads = run_bwd(pb, in, good.out, good.lse, dout);
    hone::emu::enable_all_barriers();
    CHECK_FALSE((same_bits(good_grads.dq.data, bad_grads.dq.data) &&
                 same_bits(good_grads.dk.data, bad_grads.dk.data)));
  }
}

// ---- decode -----------------------------------------------------------------------------------

namespace {

// A decode problem: per sequence a cache of cache_len[b] valid rows (capacity rows allocated),
// the last q_len of which are the new tokens.
struct DecodeProblem {
  std::vector<int> cache_len;
  int capacity = 0, q_len = 1, hq = 1, hkv = 1, hd = 64;
  bool causal = true;
  int window = 0;
  int splits = 0;
  bool per_seq_len = true;  // pass cache_seqlens (else every sequence uses the capacity)
};

struct DecodeResult {
  std::vector<double> out;
  std::vector<float> lse;
  int splits;
};

DecodeResult run_decode(const DecodeProblem& dp, const std::vector<double>& q,
                        const std::vector<double>& k, const std::vector<double>& v) {
  const int B = static_cast<int>(dp.cache_len.size());
  Strided qs(q, dp.hq, dp.hd, 0), ks(k, dp.hkv, dp.hd, 0), vs(v, dp.hkv, dp.hd, 0);
  Strided out = Strided::poisoned(static_cast<std::int64_t>(B) * dp.q_len, dp.hq, dp.hd, 0);
  std::vector<float> lse(static_cast<std::size_t>(B) * dp.hq * dp.q_len, std::nanf(""));
  std::vector<std::int32_t> lens(dp.cache_len.begin(), dp.cache_len.end());
  AttentionDecodeParams p;
  auto tensor = [](Strided& s, std::int64_t rows_per_seq) {
    AttentionTensor t;
    t.ptr = s.data.data(), t.row_stride = s.row_stride, t.head_stride = s.hd;
    t.batch_stride = s.row_stride * rows_per_seq;
    return t;
  };
  p.q = tensor(qs, dp.q_len), p.out = tensor(out, dp.q_len);
  p.k = tensor(ks, dp.capacity), p.v = tensor(vs, dp.capacity);
  p.lse = lse.data();
  p.lse_batch_stride = static_cast<std::int64_t>(dp.hq) * dp.q_len;
  p.lse_head_stride = dp.q_len;
  p.batch = B, p.q_len = dp.q_len, p.kv_capacity = dp.capacity;
  p.cache_seqlens = dp.per_seq_len ? lens.data() : nullptr;
  p.heads = dp.hq, p.kv_heads = dp.hkv, p.head_dim = dp.hd;
  p.causal = dp.causal, p.window = dp.window, p.splits = dp.splits;
  std::vector<float> workspace(hone::kernels::attention_decode_workspace_bytes(p) / 4 + 4,
                               std::nanf(""));
  p.workspace = workspace.data();
  p.workspace_bytes = workspace.size() * 4;
  hone::kernels::attention_decode(p, nullptr);
  return {out.values(), lse, hone::kernels::attention_decode_splits(p)};
}

// Decode against engine/cpu: sequence b's queries are the last q_len rows of a cache_len[b]
// sequence, so the reference runs the full sequence (causal or not) with the cache as keys and
// values and the queries in the last rows; only those rows are compared.
void check_decode(const DecodeProblem& dp, std::uint64_t seed) {
  const int B = static_cast<int>(dp.cache_len.size());
  INFO("decode B " << B << " q_len " << dp.q_len << " capacity " << dp.capacity << " hq " << dp.hq
                   << " hkv " << dp.hkv << " hd " << dp.hd << " causal " << dp.causal << " window "
                   << dp.window << " splits " << dp.splits);
  const std::vector<double> q = random_values(static_cast<std::int64_t>(B) * dp.q_len * dp.hq * dp.hd, seed, -1.5, 1.5);
  const std::vector<double> k = random_values(static_cast<std::int64_t>(B) * dp.capacity * dp.hkv * dp.hd, seed + 1, -1.5, 1.5);
  const std::vector<double> v = random_values(static_cast<std::int64_t>(B) * dp.capacity * dp.hkv * dp.hd, seed + 2, -1.5, 1.5);
  const DecodeResult r = run_decode(dp, q, k, v);
  std::vector<double> got, want, got_lse, want_lse;
  for (int b = 0; b < B; ++b) {
    const int L = dp.per_seq_len ? dp.cache_len[b] : dp.capacity;
    Problem pb;
    pb.lens = {L};
    pb.hq = dp.hq, pb.hkv = dp.hkv, pb.hd = dp.hd, pb.causal = dp.causal, pb.window = dp.window;
    Inputs in;
    const std::int64_t qrow = static_cast<std::int64_t>(dp.hq) * dp.hd, kvrow = static_cast<std::int64_t>(dp.hkv) * dp.hd;
    in.q.assign(static_cast<std::size_t>(L * qrow), 0.5);  // rows before the new tokens: unused
    for (int t = 0; t < dp.q_len; ++t)
      std::copy_n(q.begin() + (static_cast<std::int64_t>(b) * dp.q_len + t) * qrow, qrow,
                  in.q.begin() + (L - dp.q_len + t) * qrow);
    in.k.assign(k.begin() + static_cast<std::int64_t>(b) * dp.capacity * kvrow,
                k.begin() + (static_cast<std::int64_t>(b) * dp.capacity + L) * kvrow);
    in.v.assign(v.begin() + static_cast<std::int64_t>(b) * dp.capacity * kvrow,
                v.begin() + (static_cast<std::int64_t>(b) * dp.capacity + L) * kvrow);
    const Reference ref = cpu_reference(pb, in, {});
    for (int t = 0; t < dp.q_len; ++t) {
      const std::int64_t row = L - dp.q_len + t;
      for (std::int64_t i = 0; i < qrow; ++i) {
        want.push_back(ref.out[row * qrow + i]);
        got.push_back(r.out[(static_cast<std::int64_t>(b) * dp.q_len + t) * qrow + i]);
      }
      for (int h = 0; h < dp.hq; ++h) {
        want_lse.push_back(ref.lse[h * L + row]);
        got_lse.push_back(r.lse[(static_cast<std::size_t>(b) * dp.hq + h) * dp.q_len + t]);
      }
    }
  }
  // f32 math throughout, one bf16 rounding of the output: within bf16's half ulp plus a little.
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + 1e-2));
  INFO("splits used " << r.splits << ", worst relative error " << worst);
  CHECK(worst <= 8e-3);
  CHECK(max_error(got_lse, want_lse) <= 1e-4);
}

}  // namespace

TEST_CASE("attention decode matches engine/cpu: single token, GQA, split-KV", "[emu][attention]") {
  for (int hd : {64, 128})
    for (int splits : {1, 3, 0}) {
      DecodeProblem dp;
      dp.cache_len = {200, 37, 1};
      dp.capacity = 200, dp.q_len = 1, dp.hq = 8, dp.hkv = 2, dp.hd = hd, dp.splits = splits;
      check_decode(dp, 300 + hd + splits);
    }
}

TEST_CASE("attention decode: several new tokens (causal among them), windows, head dim 96",
          "[emu][attention]") {
  DecodeProblem dp;
  dp.cache_len = {90, 4};
  dp.capacity = 96, dp.q_len = 4, dp.hq = 8, dp.hkv = 1, dp.hd = 64, dp.splits = 2;
  check_decode(dp, 1);  // 32 rows per kv head: two row chunks
  dp.causal = false;
  check_decode(dp, 2);
  dp.causal = true, dp.window = 10, dp.splits = 5;
  check_decode(dp, 3);
  DecodeProblem full;
  full.cache_len = {64};
  full.capacity = 64, full.q_len = 2, full.hq = 2, full.hkv = 2, full.hd = 96;
  full.per_seq_len = false;
  check_decode(full, 4);
}

TEST_CASE("attention decode: split results are combined in a fixed order", "[emu][attention]") {
  DecodeProblem dp;
  dp.cache_len = {150};
  dp.capacity = 150, dp.q_len = 1, dp.hq = 4, dp.hkv = 1, dp.hd = 128, dp.splits = 4;
  const std::vector<double> q = random_values(4 * 128, 1, -1, 1), k = random_values(150 * 128, 2, -1, 1),
                            v = random_values(150 * 128, 3, -1, 1);
  const DecodeResult first = run_decode(dp, q, k, v);
  CHECK(first.splits == 4);
  for (Schedule sch : kSchedules) {
    hone::emu::ScopedSchedule scoped(sch, 3);
    const DecodeResult r = run_decode(dp, q, k, v);
    CHECK(r.out == first.out);
    CHECK(same_bits(r.lse, first.lse));
  }
  // The automatic split: a batch of one on 132 SMs splits a long cache.
  AttentionDecodeParams p;
  p.batch = 1, p.q_len = 1, p.kv_capacity = 8192, p.heads = 32, p.kv_heads = 8, p.head_dim = 128;
  p.sm_count = 132;
  const int splits = hone::kernels::attention_decode_splits(p);
  CHECK(splits > 1);
  CHECK(splits <= 128);
}

// ---- errors ------------------------------------------------------------------------------------

TEST_CASE("attention rejects bad parameters naming the field and value", "[emu][attention]") {
  using Catch::Contains;
  Problem pb = padded(1, 8, 2, 1, 64, true);
  const Inputs in = make_inputs(pb);
  Strided q(in.q, 2, 64, 0), k(in.k, 1, 64, 0), v(in.v, 1, 64, 0), out = Strided::poisoned(8, 2, 64, 0);
  std::vector<float> lse(16);
  AttentionParams p;
  p.q = q.tensor(pb), p.k = k.tensor(pb), p.v = v.tensor(pb), p.out = out.tensor(pb);
  p.lse = lse.data(), p.lse_batch_stride = 16, p.lse_head_stride = 8;
  p.batch = 1, p.seqlen = 8, p.heads = 2, p.kv_heads = 1, p.head_dim = 64;
  CHECK_NOTHROW(hone::kernels::attention_fwd(p, nullptr));

  AttentionParams bad = p;
  bad.head_dim = 80;
  CHECK_THROWS_WITH(hone::kernels::attention_fwd(bad, nullptr),
                    Contains("attention_fwd") && Contains("head_dim = 80") &&
                        Contains("32, 64, 96, 128"));
  bad = p;
  bad.kv_heads = 3;
  CHECK_THROWS_WITH(hone::kernels::attention_fwd(bad, nullptr),
                    Contains("kv_heads = 3") && Contains("heads = 2"));
  bad = p;
  bad.q.row_stride = 130;
  CHECK_THROWS_WITH(hone::kernels::attention_fwd(bad, nullptr), Contains("q.row_stride = 130"));
  bad = p;
  bad.k.ptr = static_cast<std::uint16_t*>(p.k.ptr) + 1;
  CHECK_THROWS_WITH(hone::kernels::attention_fwd(bad, nullptr),
                    Contains("k = ") && Contains("16-byte aligned"));
  bad = p;
  bad.window = -1;
  CHECK_THROWS_WITH(hone::kernels::attention_fwd(bad, nullptr), Contains("window = -1"));
  bad = p;
  bad.lse = nullptr;
  CHECK_THROWS_WITH(hone::kernels::attention_fwd(bad, nullptr), Contains("lse is null"));

  AttentionBwdParams bp;
  bp.fwd = p;
  bp.fwd.head_dim = 80;
  CHECK_THROWS_WITH(hone::kernels::attention_bwd(bp, nullptr),
                    Contains("attention_bwd") && Contains("head_dim = 80") && Contains("32, 64, 96, 128"));
  bp.fwd = p;
  bp.dout = p.out, bp.dq = p.q, bp.dk = p.k, bp.dv = p.v;
  bp.workspace = nullptr;
  CHECK_THROWS_WITH(hone::kernels::attention_bwd(bp, nullptr),
                    Contains("workspace") && Contains("64 bytes"));

  AttentionDecodeParams dp;
  dp.q = p.q, dp.k = p.k, dp.v = p.v, dp.out = p.out;
  dp.batch = 1, dp.q_len = 1, dp.kv_capacity = 8, dp.heads = 2, dp.kv_heads = 1, dp.head_dim = 80;
  CHECK_THROWS_WITH(hone::kernels::attention_decode(dp, nullptr),
                    Contains("attention_decode") && Contains("head_dim = 80") && Contains("32, 64, 96, 128"));
  dp.head_dim = 64;
  dp.q_len = 9;
  CHECK_THROWS_WITH(hone::kernels::attention_decode(dp, nullptr),
                    Contains("kv_capacity = 8") && Contains("q_len = 9"));
}

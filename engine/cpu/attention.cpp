// CPU reference for scaled dot-product attention: forward and backward as Eigen products over
// tiles of 32 query or key rows per (sequence, head), parallel over work items; decode against a
// KV cache as plain loops (a few query rows per sequence).
#include "cpu/attention.h"
// First: it turns off a false GCC warning before anything includes the intrinsics.
#include "cpu/eigen.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "cpu/parallel.h"

namespace hone::cpu {

namespace {

// Rows per tile of queries (forward) or keys (backward).
constexpr int kTile = 32;

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// At most kTile rows. Every product below writes into a Map of this type: Eigen splits a product
// over OpenMP threads only when its destination may have more than 32 rows at compile time, so
// these products always run on the calling thread with a blocking (hence rounding) that does not
// depend on the thread count, even when parallel_for calls us outside a parallel region.
template <class T>
using TileMat =
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor, kTile, Eigen::Dynamic>;
template <class T>
using Rows = Eigen::Map<const RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using Tile = Eigen::Map<TileMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
static_assert(Tile<float>::MaxRowsAtCompileTime == kTile, "tile products must stay serial");
// Element-wise views of a contiguous run (vectorised exp, max and sum).
template <class T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// Rows [begin, begin + n) of head `head` in a (tokens, heads, hd) tensor, as an (n, hd) matrix.
template <class T>
Rows<T> head_rows(const T* base, std::int64_t begin, std::int64_t n, std::int64_t heads,
                  std::int64_t head, std::int64_t hd) {
  return Rows<T>(base + (begin * heads + head) * hd, n, hd, Eigen::OuterStride<>(heads * hd));
}

// The same rows, writable, n ≤ kTile.
template <class T>
Tile<T> head_tile(T* base, std::int64_t begin, std::int64_t n, std::int64_t heads,
                  std::int64_t head, std::int64_t hd) {
  return Tile<T>(base + (begin * heads + head) * hd, n, hd, Eigen::OuterStride<>(heads * hd));
}

// Scratch memory on Eigen's alignment: with AVX the vectorised products take a different path
// (and round differently) for 16- and 32-byte aligned operands, so scratch whose alignment
// varied with malloc would make results vary from run to run.
template <class T>
using Scratch = std::vector<T, Eigen::aligned_allocator<T>>;

// A contiguous (rows, cols) scratch tile, rows ≤ kTile.
template <class T>
Tile<T> scratch_tile(Scratch<T>& buf, std::int64_t rows, std::int64_t cols) {
  if (static_cast<std::int64_t>(buf.size()) < rows * cols)
    buf.resize(static_cast<std::size_t>(rows * cols));
  return Tile<T>(buf.data(), rows, cols, Eigen::OuterStride<>(cols));
}

std::int64_t seq_begin(const AttentionShape& sh, std::int64_t s) { return sh.cu_seqlens[s]; }
std::int64_t seq_len(const AttentionShape& sh, std::int64_t s) {
  return sh.cu_seqlens[s + 1] - sh.cu_seqlens[s];
}

// lse of query head h at position 0 of sequence s.
std::int64_t lse_offset(const AttentionShape& sh, std::int64_t s, std::int64_t h) {
  return sh.cu_seqlens[s] * sh.lse_seq_mul + h * sh.lse_head_stride;
}

// The keys [first, end) query i of a sequence of length len sees (see attention.h).
std::int64_t first_key(const AttentionShape& sh, std::int64_t i) {
  return sh.window > 0 ? std::max<std::int64_t>(0, i - sh.window + 1) : 0;
}
std::int64_t end_key(const AttentionShape& sh, std::int64_t i, std::int64_t len) {
  return sh.causal ? i + 1 : len;
}

}  // namespace

// Forward, per (sequence, query head, tile of up to 32 query rows starting at i0):
//   S = Q_tile Kᵀ over the keys the tile can see (from the first key of its first row's window
//   to the last key its last row sees), row i scaled, masked to its own keys, then
//   m_i = max_j S_ij, e_ij = exp(S_ij − m_i), lse_i = m_i + log Σ_j e_ij, P_ij = e_ij / Σ_j e_ij,
//   O_tile = P V.
template <class T>
void attention_fwd(const T* q, const T* k, const T* v, const AttentionShape& sh, T* out, T* lse) {
  const std::int64_t hq = sh.hq, hkv = sh.hkv, hd = sh.hd, group = hq / hkv;
  const T scale = static_cast<T>(sh.scale);
  // Work items: (sequence, query tile) × query head. A causal tile costs more the later it is,
  // so each sequence lists its tiles from both ends inward (0, last, 1, last − 1, …): the
  // contiguous range of items a thread gets then mixes cheap and dear tiles.
  std::vector<std::pair<std::int64_t, std::int64_t>> tiles;  // (sequence, first query row)
  std::int64_t max_len = 0;
  for (std::int64_t s = 0; s < sh.n_seqs; ++s) {
    const std::int64_t len = seq_len(sh, s);
    max_len = std::max(max_len, len);
    const std::int64_t n = (len + kTile - 1) / kTile;
    for (std::int64_t lo = 0, hi = n - 1; lo <= hi; ++lo, --hi) {
      tiles.emplace_back(s, lo * kTile);
      if (hi != lo) tiles.emplace_back(s, hi * kTile);
    }
  }
  const std::int64_t n_items = static_cast<std::int64_t>(tiles.size()) * hq;
  parallel_for(n_items, 1, [&](std::int64_t begin, std::int64_t end) {
    Scratch<T> score_buf;
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t s = tiles[static_cast<std::size_t>(item / hq)].first;
      const std::int64_t i0 = tiles[static_cast<std::size_t>(item / hq)].second;
      const std::int64_t h = item % hq, g = h / group;
      const std::int64_t start = seq_begin(sh, s), len = seq_len(sh, s);
      const std::int64_t nq = std::min<std::int64_t>(kTile, len - i0);
      const std::int64_t k0 = first_key(sh, i0);  // keys [k0, k0 + nk) are seen by some row
      const std::int64_t nk = end_key(sh, i0 + nq - 1, len) - k0;

      Tile<T> p = scratch_tile(score_buf, nq, nk);
      p.noalias() = head_rows(q, start + i0, nq, hq, h, hd) *
                    head_rows(k, start + k0, nk, hkv, g, hd).transpose();
      T* lse_rows = lse + lse_offset(sh, s, h) + i0;
      for (std::int64_t i = 0; i < nq; ++i) {
        T* row = p.data() + i * nk;
        const std::int64_t lo = first_key(sh, i0 + i) - k0, hi = end_key(sh, i0 + i, len) - k0;
        Vec<T> e(row + lo, hi - lo);  // the visible scores of row i (at least one)
        e *= scale;
        const T m = e.maxCoeff();
        e = (e - m).exp();
        const T sum = e.sum();
        e *= T(1) / sum;
        std::fill(row, row + lo, T(0));
        std::fill(row + hi, row + nk, T(0));
        lse_rows[i] = m + std::log(sum);
      }
      head_tile(out, start + i0, nq, hq, h, hd).noalias() =
          p * head_rows(v, start + k0, nk, hkv, g, hd);
    }
  });
}

// Backward. With P = exp(scale · S − lse) recomputed from the saved lse (masked entries 0):
//   D_i   = Σ_d dO_id O_id
//   dV_j  = Σ_i P_ij dO_i
//   dP_ij = dO_i · V_j
//   dS_ij = P_ij (dP_ij − D_i)
//   dQ_i  = scale Σ_j dS_ij K_j
//   dK_j  = scale Σ_i dS_ij Q_i
// and dK, dV of a kv head sum over the query heads of its group. One work item per (sequence,
// kv head) owns the dK/dV rows of that head and the dQ rows of its group's query heads, so no
// two threads write the same row. Inside an item the keys go in tiles of 32 (transposed
// scores Pᵀ: keys × queries); dQ accumulates, transposed, over the key tiles in order.
template <class T>
void attention_bwd(const T* dout, const T* q, const T* k, const T* v, const T* out, const T* lse,
                   const AttentionShape& sh, T* dq, T* dk, T* dv) {
  if (!dq && !dk && !dv) return;
  const std::int64_t hq = sh.hq, hkv = sh.hkv, hd = sh.hd, group = hq / hkv;
  const T scale = static_cast<T>(sh.scale);
  parallel_for(sh.n_seqs * hkv, 1, [&](std::int64_t begin, std::int64_t end) {
    Scratch<T> d_buf, p_buf, ds_buf, dk_buf, dv_buf, dqt_buf;
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t s = item / hkv, g = item % hkv;
      const std::int64_t start = seq_begin(sh, s), len = seq_len(sh, s);
      if (len == 0) continue;

      // D for every query head of the group: d_buf[hh · len + i].
      d_buf.resize(static_cast<std::size_t>(group * len));
      for (std::int64_t hh = 0; hh < group; ++hh) {
        const std::int64_t h = g * group + hh;
        for (std::int64_t i = 0; i < len; ++i) {
          const T* a = dout + ((start + i) * hq + h) * hd;
          const T* b = out + ((start + i) * hq + h) * hd;
          T acc = 0;
          for (std::int64_t d = 0; d < hd; ++d) acc += a[d] * b[d];
          d_buf[static_cast<std::size_t>(hh * len + i)] = acc;
        }
      }
      // dQᵀ / scale of every query head of the group: dqt_buf[(hh · hd + d) · len + i].
      if (dq) dqt_buf.assign(static_cast<std::size_t>(group * hd * len), T(0));

      for (std::int64_t j0 = 0; j0 < len; j0 += kTile) {
        const std::int64_t nk = std::min<std::int64_t>(kTile, len - j0);
        // Queries [i0, i0 + nq) see some key of the tile: causally none before j0; with a
        // window none at or after the last key + window.
        const std::int64_t i0 = sh.causal ? j0 : 0;
        const std::int64_t i_end =
            sh.window > 0 ? std::min<std::int64_t>(len, j0 + nk - 1 + sh.window) : len;
        const std::int64_t nq = i_end - i0;
        const Rows<T> kt = head_rows(k, start + j0, nk, hkv, g, hd);
        const Rows<T> vt = head_rows(v, start + j0, nk, hkv, g, hd);
        Tile<T> dk_acc = scratch_tile(dk_buf, nk, hd);
        Tile<T> dv_acc = scratch_tile(dv_buf, nk, hd);
        dk_acc.setZero();
        dv_acc.setZero();
        for (std::int64_t hh = 0; hh < group; ++hh) {
          const std::int64_t h = g * group + hh;
          const Rows<T> qh = head_rows(q, start + i0, nq, hq, h, hd);
          const Rows<T> doh = head_rows(dout, start + i0, nq, hq, h, hd);
          const T* lse_rows = lse + lse_offset(sh, s, h) + i0;
          const T* d_rows = d_buf.data() + hh * len + i0;

          // Pᵀ (nk × nq): row jj is key j = j0 + jj, seen by queries i0 + [first, last): from
          // j on when causal, before j + window with a window.
          Tile<T> pt = scratch_tile(p_buf, nk, nq);
          pt.noalias() = kt * qh.transpose();
          for (std::int64_t jj = 0; jj < nk; ++jj) {
            T* row = pt.data() + jj * nq;
            const std::int64_t j = j0 + jj;
            const std::int64_t first = sh.causal ? j - i0 : 0;
            const std::int64_t last =
                sh.window > 0 ? std::min<std::int64_t>(i_end, j + sh.window) - i0 : nq;
            std::fill(row, row + first, T(0));
            std::fill(row + last, row + nq, T(0));
            Vec<T> e(row + first, last - first);
            e = (e * scale - ConstVec<T>(lse_rows + first, last - first)).exp();
          }
          if (dv) dv_acc.noalias() += pt * doh;
          if (!dq && !dk) continue;

          // dSᵀ (nk × nq) = Pᵀ ∘ (V dOᵀ − D).
          Tile<T> dst = scratch_tile(ds_buf, nk, nq);
          dst.noalias() = vt * doh.transpose();
          for (std::int64_t jj = 0; jj < nk; ++jj) {
            T* row = dst.data() + jj * nq;
            const T* prow = pt.data() + jj * nq;
            for (std::int64_t i = 0; i < nq; ++i) row[i] = prow[i] * (row[i] - d_rows[i]);
          }
          if (dk) dk_acc.noalias() += dst * qh;
          // dQᵀ (hd × nq) += Kᵀ dSᵀ, in slices of up to 32 of the hd rows.
          if (dq)
            for (std::int64_t d0 = 0; d0 < hd; d0 += kTile) {
              const std::int64_t w = std::min<std::int64_t>(kTile, hd - d0);
              T* base = dqt_buf.data() + (hh * hd + d0) * len + i0;
              Tile<T>(base, w, nq, Eigen::OuterStride<>(len)).noalias() +=
                  kt.middleCols(d0, w).transpose() * dst;
            }
        }
        for (std::int64_t jj = 0; jj < nk; ++jj) {
          const std::int64_t row = ((start + j0 + jj) * hkv + g) * hd;
          for (std::int64_t d = 0; d < hd; ++d) {
            if (dk) dk[row + d] = scale * dk_acc(jj, d);
            if (dv) dv[row + d] = dv_acc(jj, d);
          }
        }
      }
      if (dq)
        for (std::int64_t hh = 0; hh < group; ++hh) {
          const std::int64_t h = g * group + hh;
          Eigen::Map<RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>(
              dq + (start * hq + h) * hd, len, hd, Eigen::OuterStride<>(hq * hd)) =
              scale *
              Eigen::Map<const RowMat<T>>(dqt_buf.data() + hh * hd * len, hd, len).transpose();
        }
    }
  });
}

// Decode, per (sequence, query head): for each new query, the scaled scores of the keys it sees,
// m = max, e = exp(s − m), out = Σ e·v / Σ e, lse = m + log Σ e.
template <class T>
void attention_decode(const T* q, const T* k, const T* v, const AttentionDecodeShape& sh, T* out,
                      T* lse) {
  const std::int64_t hq = sh.hq, hkv = sh.hkv, hd = sh.hd, tq = sh.q_len, group = hq / hkv;
  const T scale = static_cast<T>(sh.scale);
  parallel_for(sh.batch * hq, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<T> e;
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t b = item / hq, h = item % hq, g = h / group;
      const std::int64_t len = sh.cache_lens[b];
      // Key j of kv head g of this sequence: kb + j·hkv·hd (likewise vb).
      const T* kb = k + (b * sh.capacity * hkv + g) * hd;
      const T* vb = v + (b * sh.capacity * hkv + g) * hd;
      for (std::int64_t t = 0; t < tq; ++t) {
        const std::int64_t pos = len - tq + t;
        // Keys [first, last): at least the query's own.
        const std::int64_t first =
            sh.window > 0 ? std::max<std::int64_t>(0, pos - sh.window + 1) : 0;
        const std::int64_t last = sh.causal ? pos + 1 : len;
        const T* qr = q + ((b * tq + t) * hq + h) * hd;
        e.assign(static_cast<std::size_t>(last - first), T(0));
        T m = -std::numeric_limits<T>::infinity();
        for (std::int64_t j = first; j < last; ++j) {
          const T* kr = kb + j * hkv * hd;
          T s = 0;
          for (std::int64_t d = 0; d < hd; ++d) s += qr[d] * kr[d];
          s *= scale;
          e[static_cast<std::size_t>(j - first)] = s;
          m = std::max(m, s);
        }
        T sum = 0;
        for (T& x : e) {
          x = std::exp(x - m);
          sum += x;
        }
        T* o = out + ((b * tq + t) * hq + h) * hd;
        std::fill(o, o + hd, T(0));
        for (std::int64_t j = first; j < last; ++j) {
          const T w = e[static_cast<std::size_t>(j - first)] / sum;
          const T* vr = vb + j * hkv * hd;
          for (std::int64_t d = 0; d < hd; ++d) o[d] += w * vr[d];
        }
        if (lse) lse[(b * hq + h) * tq + t] = m + std::log(sum);
      }
    }
  });
}

#define HONE_CPU_ATTENTION_INSTANTIATE(T)                                                      \
  template void attention_fwd<T>(const T*, const T*, const T*, const AttentionShape&, T*, T*); \
  template void attention_decode<T>(const T*, const T*, const T*, const AttentionDecodeShape&, \
                                    T*, T*);                                                   \
  template void attention_bwd<T>(const T*, const T*, const T*, const T*, const T*, const T*,   \
                                 const AttentionShape&, T*, T*, T*);
HONE_CPU_ATTENTION_INSTANTIATE(float)
HONE_CPU_ATTENTION_INSTANTIATE(double)
#undef HONE_CPU_ATTENTION_INSTANTIATE

}  // namespace hone::cpu

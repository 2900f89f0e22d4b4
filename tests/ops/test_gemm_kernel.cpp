// The f32 GEMM of the CPU backend (cpu::gemm_strided, the packed kernel of gemm_kernel.cpp where
// the build has one) against a double-precision reference, on shapes that cut through its
// micro-panels, tiles and depth blocks: all four layouts, alpha/beta (NaN in C with beta = 0),
// count/reduce batching, and results that do not depend on the thread count or on where an
// element's tile lies.
#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/gemm_kernel.h"
#include "cpu/matmul.h"
#include "support/random.h"

using hone::cpu::StridedGemm;

namespace {

// Elements of a whole family: operands hold count·reduce products at their steps (or one shared
// operand when the step is 0), C holds count matrices.
std::int64_t a_size(const StridedGemm& g) {
  return g.a_step * (g.count * g.reduce - 1) + g.m * g.k;
}
std::int64_t b_size(const StridedGemm& g) {
  return g.b_step * (g.count * g.reduce - 1) + g.k * g.n;
}
std::int64_t c_size(const StridedGemm& g) { return g.c_step * (g.count - 1) + g.m * g.n; }

StridedGemm family(std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb,
                   std::int64_t count = 1, std::int64_t reduce = 1, bool share_a = false,
                   bool share_b = false) {
  StridedGemm g;
  g.m = m, g.n = n, g.k = k;
  g.trans_a = ta, g.trans_b = tb;
  g.count = count, g.reduce = reduce;
  g.a_step = share_a ? 0 : m * k;
  g.b_step = share_b ? 0 : k * n;
  g.c_step = m * n;
  return g;
}

// "" when every element of c (computed from c0) is within the f32 error bound of the f64
// product; else a report of the first element out of it. The bound: each sum of k·reduce
// products, added onto C in a few steps, is off by at most (k·reduce + 8)·u times Σ|terms|.
std::string check_against_f64(const std::vector<float>& a, const std::vector<float>& b,
                              const std::vector<float>& c0, const std::vector<float>& c,
                              const StridedGemm& g, float alpha, float beta) {
  const double u = std::ldexp(1.0, -24);
  const double bound = static_cast<double>(g.k * std::max<std::int64_t>(g.reduce, 1) + 8) * u;
  for (std::int64_t i = 0; i < g.count; ++i)
    for (std::int64_t row = 0; row < g.m; ++row)
      for (std::int64_t col = 0; col < g.n; ++col) {
        double sum = 0, mag = 0;
        for (std::int64_t r = 0; r < g.reduce; ++r) {
          const std::int64_t p = i * g.reduce + r;
          const float* ap = a.data() + p * g.a_step;
          const float* bp = b.data() + p * g.b_step;
          for (std::int64_t q = 0; q < g.k; ++q) {
            const double x = g.trans_a ? ap[q * g.m + row] : ap[row * g.k + q];
            const double y = g.trans_b ? bp[col * g.k + q] : bp[q * g.n + col];
            sum += x * y;
            mag += std::fabs(x * y);
          }
        }
        const std::size_t at = static_cast<std::size_t>(i * g.c_step + row * g.n + col);
        const double prior = beta == 0.0f ? 0.0 : static_cast<double>(beta) * c0[at];
        const double want = alpha * sum + prior;
        const double limit = bound * (std::fabs(alpha) * mag + std::fabs(prior)) + 1e-30;
        const double got = c[at];
        if (!(std::fabs(got - want) <= limit)) {  // false for NaN
          std::ostringstream os;
          os << "matrix " << i << " element (" << row << ", " << col << "): " << got << " vs "
             << want << " (bound " << limit << ")";
          return os.str();
        }
      }
  return "";
}

// Runs gemm_strided<float> on fresh operands and checks it against the f64 product; C starts as
// NaN when beta = 0 (it must not be read), as random values otherwise.
void check_family(const StridedGemm& g, float alpha, float beta, std::uint64_t seed) {
  const std::vector<float> a = hone::test::random_floats(a_size(g), seed), b = hone::test::random_floats(b_size(g), seed + 1);
  std::vector<float> c0 = beta == 0.0f
                              ? std::vector<float>(static_cast<std::size_t>(c_size(g)),
                                                   std::numeric_limits<float>::quiet_NaN())
                              : hone::test::random_floats(c_size(g), seed + 2);
  std::vector<float> c = c0;
  hone::cpu::gemm_strided(a.data(), b.data(), c.data(), g, alpha, beta);
  INFO("m " << g.m << " n " << g.n << " k " << g.k << " trans " << g.trans_a << g.trans_b
            << " count " << g.count << " reduce " << g.reduce << " steps " << g.a_step << " "
            << g.b_step << " alpha " << alpha << " beta " << beta << " kernel '"
            << hone::cpu::gemm_kernel_info().isa << "'");
  CHECK(check_against_f64(a, b, c0, c, g, alpha, beta) == "");
}

bool bitwise_equal(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("gemm kernel matches f64 on ragged shapes in every layout", "[cpu][gemm]") {
  // Around the micro-panel sizes (14 or 6 rows, 32 or 16 columns), the matrix-vector cut-off
  // (16 rows) and 1; depths below, at and past one depth block (384).
  const std::int64_t ms[] = {1, 6, 13, 14, 15, 17, 29, 33};
  const std::int64_t ns[] = {1, 15, 16, 17, 31, 32, 33, 65};
  const std::int64_t ks[] = {1, 7, 16, 17, 383, 385};
  std::uint64_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (std::int64_t m : ms)
        for (std::int64_t n : ns) {
          const std::int64_t k = ks[(m + n) % 6];
          check_family(family(m, n, k, ta, tb), 1.0f, 0.0f, seed += 3);
        }
}

TEST_CASE("gemm kernel matches f64 across tiles and depth blocks", "[cpu][gemm]") {
  // Several output tiles (384 × 768 at most) with ragged last tiles, and three depth blocks.
  std::uint64_t seed = 200;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_family(family(401, 800, 129, ta, tb), 1.0f, 0.0f, seed += 3);
      check_family(family(61, 97, 769, ta, tb), 0.5f, 1.0f, seed += 3);
    }
}

TEST_CASE("gemm kernel applies alpha and beta, never reading C when beta is zero",
          "[cpu][gemm]") {
  std::uint64_t seed = 400;
  for (auto [alpha, beta] : {std::pair<float, float>{1.0f, 0.0f}, {-1.5f, 0.0f}, {1.0f, 1.0f},
                             {0.75f, 1.0f}, {2.0f, -0.5f}, {1.0f, 3.0f}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_family(family(45, 70, 400, ta, tb), alpha, beta, seed += 3);
        check_family(family(20, 33, 3, ta, tb), alpha, beta, seed += 3);
      }
}

TEST_CASE("gemm kernel sums count and reduce batches", "[cpu][gemm]") {
  std::uint64_t seed = 600;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Independent products, products sharing A or B, and sums over a batch (the shapes of a
      // shared operand's gradient), some of which gemm_strided folds into one product.
      check_family(family(40, 50, 30, ta, tb, 3, 1), 1.0f, 0.0f, seed += 3);
      check_family(family(40, 50, 30, ta, tb, 3, 1, false, true), 1.0f, 0.0f, seed += 3);
      check_family(family(40, 50, 30, ta, tb, 3, 1, true, false), -1.0f, 1.0f, seed += 3);
      check_family(family(33, 47, 200, ta, tb, 1, 3), 1.0f, 1.0f, seed += 3);
      check_family(family(33, 47, 200, ta, tb, 2, 2), 0.5f, 0.0f, seed += 3);
      check_family(family(33, 47, 20, ta, tb, 2, 3, true, false), 1.0f, -2.0f, seed += 3);
    }
}

TEST_CASE("gemm kernel with empty products scales C", "[cpu][gemm]") {
  // reduce = 0 or k = 0: C = beta · C, zero for beta = 0 whatever C held (NaN).
  for (std::int64_t reduce : {0, 2}) {
    StridedGemm g = family(20, 40, reduce == 0 ? 5 : 0, false, false, 2, reduce);
    const std::vector<float> a(64, 1.0f), b(256, 1.0f);
    std::vector<float> c(static_cast<std::size_t>(c_size(g)),
                         std::numeric_limits<float>::quiet_NaN());
    hone::cpu::gemm_strided(a.data(), b.data(), c.data(), g, 1.0f, 0.0f);
    CHECK(c == std::vector<float>(c.size(), 0.0f));
    std::vector<float> d(c.size(), 4.0f);
    hone::cpu::gemm_strided(a.data(), b.data(), d.data(), g, 1.0f, 0.5f);
    CHECK(d == std::vector<float>(d.size(), 2.0f));
  }
}

// C = 0.5 · op(A) · op(B) + C0 computed on 1, 2 and 3 threads, in that order (the thread count
// restored afterwards).
static std::vector<std::vector<float>> on_1_2_3_threads(const std::vector<float>& a,
                                                        const std::vector<float>& b,
                                                        const std::vector<float>& c0, const StridedGemm& g) {
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    outs.push_back(c0);
    hone::cpu::gemm_strided(a.data(), b.data(), outs.back().data(), g, 0.5f, 1.0f);
  }
  omp_set_num_threads(saved);
  return outs;
}

TEST_CASE("gemm kernel gives the same bits for any thread count", "[cpu][gemm]") {
  const int saved = omp_get_max_threads();
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Many tiles with ragged edges, three depth blocks, a batch and beta = 1.
      const StridedGemm g = family(300, 1100, 800, ta, tb, 2, 1);
      const std::vector<float> a = hone::test::random_floats(a_size(g), 1), b = hone::test::random_floats(b_size(g), 2);
      const std::vector<float> c0 = hone::test::random_floats(c_size(g), 3);
      const std::vector<std::vector<float>> outs = on_1_2_3_threads(a, b, c0, g);
      // Inside a parallel region (nested: one thread), too.
      std::vector<float> nested = c0;
      omp_set_num_threads(2);
#pragma omp parallel num_threads(2)
      {
#pragma omp single
        hone::cpu::gemm_strided(a.data(), b.data(), nested.data(), g, 0.5f, 1.0f);
      }
      omp_set_num_threads(saved);
      INFO("trans " << ta << tb);
      CHECK(check_against_f64(a, b, c0, outs[0], g, 0.5f, 1.0f) == "");
      CHECK(bitwise_equal(outs[0], outs[1]));
      CHECK(bitwise_equal(outs[0], outs[2]));
      CHECK(bitwise_equal(outs[0], nested));
    }
}

TEST_CASE("gemm kernel results do not depend on where the tile lies", "[cpu][gemm]") {
  // A block of rows and columns of C computed as a product of its own (its tiles and
  // micro-panels then start elsewhere) has the same bits as in the whole product: each element
  // depends on k alone. Rows stay above the matrix-vector cut-off, which takes another path.
  // (Eigen, used by builds without a kernel, picks its blocking from the sizes: no such promise.)
  if (hone::cpu::gemm_kernel_info().isa[0] == '\0') {
    WARN("no packed kernel in this build");
    return;
  }
  const std::int64_t m = 290, n = 600, k = 500;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const StridedGemm g = family(m, n, k, ta, tb);
      const std::vector<float> a = hone::test::random_floats(m * k, 11), b = hone::test::random_floats(k * n, 12);
      std::vector<float> whole(static_cast<std::size_t>(m * n));
      hone::cpu::gemm_strided(a.data(), b.data(), whole.data(), g, 1.0f, 0.0f);
      // Rows [r0, r0 + rows) and columns [c0, c0 + cols), with the operands cut to match.
      const std::int64_t r0 = 37, rows = 201, c0 = 45, cols = 333;
      std::vector<float> a_part(static_cast<std::size_t>(rows * k)),
          b_part(static_cast<std::size_t>(k * cols));
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t q = 0; q < k; ++q)
          (ta ? a_part[q * rows + i] : a_part[i * k + q]) =
              ta ? a[q * m + r0 + i] : a[(r0 + i) * k + q];
      for (std::int64_t q = 0; q < k; ++q)
        for (std::int64_t j = 0; j < cols; ++j)
          (tb ? b_part[j * k + q] : b_part[q * cols + j]) =
              tb ? b[(c0 + j) * k + q] : b[q * n + c0 + j];
      std::vector<float> part(static_cast<std::size_t>(rows * cols));
      hone::cpu::gemm_strided(a_part.data(), b_part.data(), part.data(),
                              family(rows, cols, k, ta, tb), 1.0f, 0.0f);
      std::vector<float> expected(part.size());
      for (std::int64_t i = 0; i < rows; ++i)
        std::memcpy(&expected[i * cols], &whole[(r0 + i) * n + c0], cols * sizeof(float));
      INFO("trans " << ta << tb << " kernel '" << hone::cpu::gemm_kernel_info().isa << "'");
      CHECK(bitwise_equal(part, expected));
    }
}

TEST_CASE("gemm tiles depend only on the shape and cover it", "[cpu][gemm]") {
  for (std::int64_t m : {1, 17, 256, 257, 768, 50257})
    for (std::int64_t n : {1, 33, 768, 2304, 50257})
      for (std::int64_t count : {1, 3, 12}) {
        const hone::cpu::GemmTiles t = hone::cpu::gemm_tiles(m, n, count);
        INFO("m " << m << " n " << n << " count " << count);
        CHECK(t.tile_rows >= 1);
        CHECK(t.tile_cols >= 1);
        CHECK(t.tile_rows <= hone::cpu::kGemmTaskRowsMax + 16);
        CHECK(t.tile_cols <= hone::cpu::kGemmTaskColsMax);
        CHECK(t.row_tiles * t.tile_rows >= m);
        CHECK((t.row_tiles - 1) * t.tile_rows < m);
        CHECK(t.col_tiles * t.tile_cols >= n);
        CHECK((t.col_tiles - 1) * t.tile_cols < n);
        // Two threads get the same number of tasks wherever there are few.
        const std::int64_t tasks = count * t.row_tiles * t.col_tiles;
        if (tasks < 16 && n > 32) CHECK(tasks % 2 == 0);
      }
}

TEST_CASE("gemm plan shares an operand only where the plain grid packs it many times",
          "[cpu][gemm]") {
  using hone::cpu::GemmShare;
  const auto plan = [](std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb,
                       std::int64_t count = 1) {
    return hone::cpu::gemm_plan(family(m, n, k, ta, tb, count));
  };
  // The output layer of a training step: its activations (A, forward) or its input (B, weight
  // gradient) would be packed by each of dozens of tiles.
  CHECK(plan(512, 32000, 512, false, true).share == GemmShare::kA);
  CHECK(plan(32000, 512, 512, true, false).share == GemmShare::kB);
  // Products of 2-4 tiles, batches, and operands too large to hold packed keep the plain grid.
  CHECK(plan(512, 512, 512, false, true).share == GemmShare::kNone);
  CHECK(plan(512, 1408, 512, false, false).share == GemmShare::kNone);
  CHECK(plan(256, 256, 64, false, true, 12).share == GemmShare::kNone);
  CHECK(plan(512, 32000, 512, false, true, 2).share == GemmShare::kNone);
  CHECK(plan(256, 768, 50257, false, false).share == GemmShare::kNone);
  for (std::int64_t m : {1, 100, 512, 3000, 32000})
    for (std::int64_t n : {1, 100, 800, 6200, 50257})
      for (std::int64_t k : {1, 400, 9000}) {
        const hone::cpu::GemmPlan p = plan(m, n, k, false, false);
        const hone::cpu::GemmTiles& t = p.tiles;
        INFO("m " << m << " n " << n << " k " << k << " share " << static_cast<int>(p.share));
        CHECK(t.row_tiles * t.tile_rows >= m);
        CHECK((t.row_tiles - 1) * t.tile_rows < m);
        CHECK(t.col_tiles * t.tile_cols >= n);
        CHECK((t.col_tiles - 1) * t.tile_cols < n);
        if (p.share == GemmShare::kA) {
          CHECK(t.row_tiles == 1);  // every task reads all of the shared A
          CHECK(m * k <= hone::cpu::kGemmShareMax);
          CHECK(t.tile_cols <= hone::cpu::kGemmTaskColsMax);
        } else if (p.share == GemmShare::kB) {
          CHECK(n * k <= hone::cpu::kGemmShareMax);
          CHECK(t.tile_rows <= hone::cpu::kGemmTaskRowsMax + 16);
          CHECK(t.tile_cols <= hone::cpu::kGemmTaskColsMax);
        }
      }
}

TEST_CASE("gemm kernel with a shared operand matches f64 and the plain grid's bits",
          "[cpu][gemm]") {
  if (hone::cpu::gemm_kernel_info().isa[0] == '\0') {
    WARN("no packed kernel in this build");
    return;
  }
  struct Case {
    std::int64_t m, n, k;
    bool ta, tb;
    hone::cpu::GemmShare share;
  };
  // Two depth blocks, ragged edges; B shared with two columns of tiles.
  std::vector<Case> cases;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      cases.push_back({100, 6200, 400, ta, tb, hone::cpu::GemmShare::kA});
  cases.push_back({2900, 790, 390, true, false, hone::cpu::GemmShare::kB});
  cases.push_back({2900, 790, 390, false, true, hone::cpu::GemmShare::kB});
  for (const Case& cs : cases) {
    const StridedGemm g = family(cs.m, cs.n, cs.k, cs.ta, cs.tb);
    INFO("m " << cs.m << " n " << cs.n << " k " << cs.k << " trans " << cs.ta << cs.tb);
    REQUIRE(hone::cpu::gemm_plan(g).share == cs.share);
    const std::vector<float> a = hone::test::random_floats(a_size(g), 21), b = hone::test::random_floats(b_size(g), 22);
    const std::vector<float> c0 = hone::test::random_floats(c_size(g), 23);
    const std::vector<std::vector<float>> outs = on_1_2_3_threads(a, b, c0, g);
    CHECK(check_against_f64(a, b, c0, outs[0], g, 0.5f, 1.0f) == "");
    CHECK(bitwise_equal(outs[0], outs[1]));
    CHECK(bitwise_equal(outs[0], outs[2]));
    // The same product twice over as a batch of two (operands shared by both entries): batches
    // take the plain grid, where every tile packs its own panels. Same bits.
    StridedGemm pair = g;
    pair.count = 2, pair.a_step = 0, pair.b_step = 0;
    REQUIRE(hone::cpu::gemm_plan(pair).share == hone::cpu::GemmShare::kNone);
    std::vector<float> both(2 * c0.size());
    std::copy(c0.begin(), c0.end(), both.begin());
    std::copy(c0.begin(), c0.end(), both.begin() + static_cast<std::ptrdiff_t>(c0.size()));
    hone::cpu::gemm_strided(a.data(), b.data(), both.data(), pair, 0.5f, 1.0f);
    CHECK(bitwise_equal(std::vector<float>(both.begin(), both.begin() + c0.size()), outs[0]));
    CHECK(bitwise_equal(std::vector<float>(both.begin() + c0.size(), both.end()), outs[0]));
  }
}

TEST_CASE("the FMA peak probe measures a rate where the build has a kernel", "[cpu][gemm]") {
  const double peak = hone::cpu::fma_peak_gflops(0.02);
  if (*hone::cpu::gemm_kernel_info().isa == '\0') {
    CHECK(peak == 0.0);
  } else {
    // A rate, finite and positive; how high depends on the machine (the benchmarks report it).
    CHECK(std::isfinite(peak));
    CHECK(peak > 0.0);
  }
}

// Tests of the embedding ops: row gathers, finite-difference and accumulate checks of the table
// gradient, bitwise token-order determinism across thread counts, ragged sizes, f32 against
// f64, argument errors (including out-of-range ids).
#include <omp.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/ops.h"
#include "support/fd.h"
#include "support/random.h"
#include "support/tolerance.h"

using namespace hone;

namespace {

constexpr DType f64 = DType::f64;
constexpr DType f32 = DType::f32;

Tensor ids_of(const Shape& shape, const std::vector<std::int64_t>& v, DType dtype = DType::i64) {
  return Tensor::from_vector<std::int64_t>(shape, v).to(dtype);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// dtable[ids[n]] += dout[n] in token order, in T arithmetic.
template <class T>
std::vector<T> scatter_ref(const std::vector<std::int64_t>& ids, const std::vector<T>& dout,
                           std::vector<T> table, std::int64_t dim) {
  for (std::size_t n = 0; n < ids.size(); ++n)
    for (std::int64_t j = 0; j < dim; ++j) table[ids[n] * dim + j] += dout[n * dim + j];
  return table;
}

}  // namespace

TEST_CASE("embedding forward gathers table rows", "[cpu][embedding]") {
  const Tensor table = test::random_tensor({5, 4}, f64, 1);
  const auto tv = table.to_vector<double>();
  const std::vector<std::int64_t> ids = {4, 0, 2, 2, 1, 4};
  for (DType it : {DType::i32, DType::i64}) {
    INFO(dtype_name(it));
    const Tensor out = test::poisoned({2, 3, 4}, f64);
    ops::embedding_fwd(ids_of({2, 3}, ids, it), table, out);
    const auto ov = out.to_vector<double>();
    for (std::size_t n = 0; n < ids.size(); ++n)
      for (std::size_t j = 0; j < 4; ++j) CHECK(ov[n * 4 + j] == tv[ids[n] * 4 + j]);
  }
  // A single id (0-d) gives one row.
  const Tensor row = test::poisoned({4}, f64);
  ops::embedding_fwd(ids_of({}, {3}), table, row);
  CHECK(row.to_vector<double>() == std::vector<double>(tv.begin() + 12, tv.begin() + 16));
}

TEST_CASE("embedding backward matches finite differences", "[cpu][embedding][fd]") {
  // Repeated ids: row 0 appears four times, row 3 three times.
  const Tensor ids = ids_of({2, 5}, {0, 3, 3, 1, 0, 2, 3, 0, 0, 1});
  const Tensor table = test::random_tensor({4, 6}, f64, 2);
  const Tensor g = test::random_tensor({2, 5, 6}, f64, 3);
  const Tensor dtable = Tensor::zeros({4, 6}, f64);
  ops::embedding_bwd(ids, g, dtable);
  auto loss = [&] {
    const Tensor out = Tensor::empty({2, 5, 6}, f64);
    ops::embedding_fwd(ids, table, out);
    return test::dot(g, out);
  };
  CHECK(test::check_gradient(table, dtable, loss) == "");
}

TEST_CASE("embedding backward accumulates onto dtable", "[cpu][embedding]") {
  const std::vector<std::int64_t> ids = {1, 1, 6, 0, 1, 6, 2};
  const Tensor dout = test::random_tensor({7, 5}, f64, 4);
  const Tensor prior = test::random_tensor({8, 5}, f64, 5);
  const Tensor dtable = prior.clone();
  ops::embedding_bwd(ids_of({7}, ids, DType::i32), dout, dtable);
  const auto want = scatter_ref<double>(ids, dout.to_vector<double>(), prior.to_vector<double>(), 5);
  CHECK(dtable.to_vector<double>() == want);
  // Rows no token names keep their prior contents exactly.
  CHECK(dtable.select(7).to_vector<double>() == prior.select(7).to_vector<double>());
  CHECK_NOTHROW(ops::embedding_bwd(ids_of({7}, ids), dout, Tensor{}));
}

TEST_CASE("embedding backward is bitwise deterministic in token order", "[cpu][embedding]") {
  const int saved = omp_get_max_threads();
  for (std::int64_t vocab : {7, 1000}) {
    INFO("vocab " << vocab);
    const std::int64_t n = 3000, dim = 33;
    const Tensor ids = test::random_ids({n}, vocab, DType::i64, 6);
    const Tensor dout = test::random_tensor({n, dim}, f32, 7);
    const Tensor prior = test::random_tensor({vocab, dim}, f32, 8);
    const auto want = scatter_ref<float>(ids.to_vector<std::int64_t>(), dout.to_vector<float>(),
                                         prior.to_vector<float>(), dim);
    const Tensor expected = Tensor::from_vector<float>({vocab, dim}, want);
    for (int threads : {1, 2, 3, 2}) {
      INFO("threads " << threads);
      omp_set_num_threads(threads);
      const Tensor dtable = prior.clone();
      ops::embedding_bwd(ids, dout, dtable);
      CHECK(same_bits(dtable, expected));
    }
  }
  omp_set_num_threads(saved);
}

TEST_CASE("embedding on ragged sizes matches gather and scatter loops", "[cpu][embedding]") {
  for (std::int64_t n : test::kRaggedSizes)
    for (std::int64_t dim : {1, 32, 129}) {
      INFO("tokens " << n << " dim " << dim);
      const std::int64_t vocab = 50;
      const std::uint64_t seed = static_cast<std::uint64_t>(n * 1000 + dim);
      const Tensor ids = test::random_ids({n}, vocab, DType::i32, seed);
      const Tensor table = test::random_tensor({vocab, dim}, f64, seed + 1);
      const Tensor dout = test::random_tensor({n, dim}, f64, seed + 2);
      const auto iv = ids.to_vector<std::int64_t>();
      const auto tv = table.to_vector<double>();
      const Tensor out = test::poisoned({n, dim}, f64);
      ops::embedding_fwd(ids, table, out);
      std::vector<double> gathered;
      for (std::int64_t id : iv) gathered.insert(gathered.end(), tv.begin() + id * dim,
                                                 tv.begin() + (id + 1) * dim);
      CHECK(out.to_vector<double>() == gathered);
      const Tensor dtable = Tensor::zeros({vocab, dim}, f64);
      ops::embedding_bwd(ids, dout, dtable);
      CHECK(dtable.to_vector<double>() ==
            scatter_ref<double>(iv, dout.to_vector<double>(),
                                std::vector<double>(static_cast<std::size_t>(vocab * dim)), dim));
    }
}

TEST_CASE("embedding f32 agrees with f64", "[cpu][embedding]") {
  const Tensor ids = test::random_ids({4, 33}, 20, DType::i64, 9);
  const Tensor table32 = test::random_tensor({20, 16}, f32, 10);
  const Tensor dout32 = test::random_tensor({4, 33, 16}, f32, 11);
  const Tensor out32 = Tensor::empty({4, 33, 16}, f32), out64 = Tensor::empty({4, 33, 16}, f64);
  ops::embedding_fwd(ids, table32, out32);
  ops::embedding_fwd(ids, table32.to(f64), out64);
  CHECK(test::compare(out32, out64.to(f32), {0, 0}) == "");
  const Tensor d32 = Tensor::zeros({20, 16}, f32), d64 = Tensor::zeros({20, 16}, f64);
  ops::embedding_bwd(ids, dout32, d32);
  ops::embedding_bwd(ids, dout32.to(f64), d64);
  CHECK(test::compare(d32, d64.to(f32), test::tolerance_for(f32)) == "");
}

TEST_CASE("embedding rejects bad ids and shapes", "[cpu][embedding]") {
  const Tensor table = test::random_tensor({5, 4}, f64, 12);
  const Tensor out = Tensor::empty({2, 3, 4}, f64);
  const Tensor ids = ids_of({2, 3}, {0, 1, 2, 3, 4, 0});
  CHECK_THROWS_WITH(ops::embedding_fwd(ids_of({2, 3}, {0, 1, 2, 7, 4, 9}), table, out),
                    Catch::Contains("[embedding_fwd]") && Catch::Contains("'ids'") &&
                        Catch::Contains("value 7") && Catch::Contains("position 3") &&
                        Catch::Contains("[0, 5)"));
  CHECK_THROWS_WITH(ops::embedding_fwd(ids_of({2, 3}, {0, -1, 2, 3, 4, 0}, DType::i32), table, out),
                    Catch::Contains("[embedding_fwd]") && Catch::Contains("value -1") &&
                        Catch::Contains("position 1"));
  CHECK_THROWS_WITH(ops::embedding_fwd(Tensor::zeros({2, 3}, f64), table, out),
                    Catch::Contains("[embedding_fwd]") && Catch::Contains("'ids'") &&
                        Catch::Contains("f64"));
  CHECK_THROWS_WITH(ops::embedding_fwd(ids, Tensor::zeros({20}, f64), out),
                    Catch::Contains("[embedding_fwd]") && Catch::Contains("'table'") &&
                        Catch::Contains("(20)"));
  CHECK_THROWS_WITH(ops::embedding_fwd(ids, table, Tensor::empty({6, 4}, f64)),
                    Catch::Contains("[embedding_fwd]") && Catch::Contains("'out'") &&
                        Catch::Contains("(6, 4)") && Catch::Contains("(2, 3, 4)") &&
                        Catch::Contains("(5, 4)"));
  CHECK_THROWS_WITH(ops::embedding_fwd(ids, table, Tensor::empty({2, 3, 4}, f32)),
                    Catch::Contains("[embedding_fwd]") && Catch::Contains("'out'") &&
                        Catch::Contains("f32"));
  const Tensor dtable = Tensor::zeros({5, 4}, f64);
  CHECK_THROWS_WITH(ops::embedding_bwd(ids, Tensor::zeros({2, 3, 5}, f64), dtable),
                    Catch::Contains("[embedding_bwd]") && Catch::Contains("'dout'") &&
                        Catch::Contains("(2, 3, 5)") && Catch::Contains("(2, 3, 4)"));
  CHECK_THROWS_WITH(ops::embedding_bwd(ids, out, Tensor::zeros({5, 4}, f32)),
                    Catch::Contains("[embedding_bwd]") && Catch::Contains("'dout'") &&
                        Catch::Contains("f32") && Catch::Contains("f64"));
  CHECK_THROWS_WITH(ops::embedding_bwd(ids_of({2, 3}, {0, 1, 2, 3, 4, 5}), out, dtable),
                    Catch::Contains("[embedding_bwd]") && Catch::Contains("value 5") &&
                        Catch::Contains("position 5"));
  // A failed range check leaves dtable untouched.
  CHECK(dtable.to_vector<double>() == std::vector<double>(20, 0.0));
}

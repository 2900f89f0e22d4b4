// ops::embedding_fwd / embedding_bwd: argument validation (including every id's range) and
// device dispatch.
#include <cstdint>
#include <string>

#include "cpu/embedding.h"
#include "ops/check.h"
#include "ops/ops.h"

namespace hone::ops {

namespace {

// table: float, (V, D) with D ≥ 1.
void check_table(std::string_view op, std::string_view name, const Tensor& table) {
  expect_float(op, name, table);
  expect_ndim(op, name, table, 2);
  HONE_CHECK(table.size(1) >= 1, op, "argument '", name, "' has shape ", shape_str(table.shape()),
             "; expected (V, D) with D ≥ 1");
}

// ids.shape + [dim].
Shape rows_shape(const Tensor& ids, std::int64_t dim) {
  Shape s = ids.shape();
  s.push_back(dim);
  return s;
}

// Every id in [0, V) (host tensors only); the error names the first bad id and its position.
void check_ids_in_range(std::string_view op, const Tensor& ids, std::string_view table_name,
                        const Tensor& table) {
  const std::int64_t vocab = table.size(0);
  std::int64_t bad = -1, value = 0;
  if (ids.dtype() == DType::i32) {
    bad = cpu::first_id_out_of_range(ids.data<std::int32_t>(), ids.numel(), vocab);
    if (bad >= 0) value = ids.data<std::int32_t>()[bad];
  } else {
    bad = cpu::first_id_out_of_range(ids.data<std::int64_t>(), ids.numel(), vocab);
    if (bad >= 0) value = ids.data<std::int64_t>()[bad];
  }
  HONE_CHECK(bad < 0, op, "argument 'ids' ", shape_str(ids.shape()), " has value ", value,
             " at position ", bad, " (flat index); expected an id in [0, ", vocab, ") from ",
             described(table_name, table));
}

}  // namespace

void embedding_fwd(const Tensor& ids, const Tensor& table, const Tensor& out) {
  constexpr std::string_view op = "embedding_fwd";
  expect_index(op, "ids", ids);
  check_table(op, "table", table);
  expect_device(op, "ids", ids, "table", table);
  const std::int64_t dim = table.size(1);
  expect_dtype(op, "out", out, "table", table);
  expect_shape(op, "out", out, rows_shape(ids, dim),
               cat(described("ids", ids), " and ", described("table", table)));
  expect_device(op, "out", out, "table", table);
  if (table.device().is_cuda()) no_cuda_kernel(op);
  check_ids_in_range(op, ids, "table", table);
  dispatch_float(op, table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_index(ids.dtype(), [&](auto itag) {
      using I = decltype(itag);
      cpu::embedding_fwd<T, I>(ids.data<I>(), table.data<T>(), ids.numel(), dim, out.data<T>());
    });
  });
}

void embedding_bwd(const Tensor& ids, const Tensor& dout, const Tensor& dtable) {
  constexpr std::string_view op = "embedding_bwd";
  expect_index(op, "ids", ids);
  expect_float(op, "dout", dout);
  expect_device(op, "dout", dout, "ids", ids);
  if (!dtable.defined()) return;  // skipped gradient
  check_table(op, "dtable", dtable);
  expect_device(op, "dtable", dtable, "ids", ids);
  const std::int64_t dim = dtable.size(1);
  expect_dtype(op, "dout", dout, "dtable", dtable);
  expect_shape(op, "dout", dout, rows_shape(ids, dim),
               cat(described("ids", ids), " and ", described("dtable", dtable)));
  if (dtable.device().is_cuda()) no_cuda_kernel(op);
  check_ids_in_range(op, ids, "dtable", dtable);
  dispatch_float(op, dtable.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_index(ids.dtype(), [&](auto itag) {
      using I = decltype(itag);
      cpu::embedding_bwd<T, I>(ids.data<I>(), dout.data<T>(), ids.numel(), dtable.size(0), dim,
                               dtable.data<T>());
    });
  });
}

}  // namespace hone::ops

// ops::embedding_fwd / embedding_bwd: argument validation (including every id's range on the
// host) and device dispatch: the CPU reference, or on CUDA the kernels of kernels/embedding (the
// backward's sort workspace from the caching allocator).
#include <cstdint>
#include <string>

#include "cpu/embedding.h"
#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the embedding kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_EMBEDDING when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_EMBEDDING)
#define HONE_CUDA_EMBEDDING 1
#endif

#ifdef HONE_CUDA_EMBEDDING
#include "cuda/context.h"
#include "kernels/embedding/embedding.h"
#endif

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

// CUDA: ids i32/i64 on the device are not range-checked (that would need a host round trip):
// an id outside [0, V) gives a zero row forward and is skipped backward.
// table: bf16 or f32 (V, D) with D ≥ 1 (the forward's table, the backward's dtable).
void check_cuda_table(std::string_view op, std::string_view name, const Tensor& table) {
  expect_cuda_dtype(op, name, table, {DType::bf16, DType::f32});
  expect_ndim(op, name, table, 2);
  HONE_CHECK(table.size(1) >= 1, op, "argument '", name, "' has shape ", shape_str(table.shape()),
             "; expected (V, D) with D ≥ 1");
}

#ifdef HONE_CUDA_EMBEDDING
kernels::EmbeddingIndexType index_type(const Tensor& ids) {
  return ids.dtype() == DType::i32 ? kernels::EmbeddingIndexType::i32
                                   : kernels::EmbeddingIndexType::i64;
}
kernels::EmbeddingType table_type(const Tensor& t) {
  return t.dtype() == DType::f32 ? kernels::EmbeddingType::f32 : kernels::EmbeddingType::bf16;
}
#endif

}  // namespace

void embedding_fwd(const Tensor& ids, const Tensor& table, const Tensor& out) {
  constexpr std::string_view op = "embedding_fwd";
  if (table.defined() && table.device().is_cuda()) {
    expect_index(op, "ids", ids);
    check_cuda_table(op, "table", table);
    expect_device(op, "ids", ids, "table", table);
    expect_dtype(op, "out", out, "table", table);
    expect_shape(op, "out", out, rows_shape(ids, table.size(1)),
                 cat(described("ids", ids), " and ", described("table", table)));
    expect_device(op, "out", out, "table", table);
#ifdef HONE_CUDA_EMBEDDING
    if (ids.numel() == 0) return;
    cuda::DeviceGuard device(table.device().index);
    kernels::EmbeddingFwdParams p;
    p.tokens = ids.numel();
    p.vocab = table.size(0);
    p.dim = table.size(1);
    p.ids = ids.raw();
    p.index_type = index_type(ids);
    p.table = table.raw();
    p.out = out.raw();
    p.type = table_type(table);
    kernels::embedding_fwd(p, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "embedding");
#endif
  }
  expect_index(op, "ids", ids);
  check_table(op, "table", table);
  expect_device(op, "ids", ids, "table", table);
  const std::int64_t dim = table.size(1);
  expect_dtype(op, "out", out, "table", table);
  expect_shape(op, "out", out, rows_shape(ids, dim),
               cat(described("ids", ids), " and ", described("table", table)));
  expect_device(op, "out", out, "table", table);
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
  if (ids.defined() && ids.device().is_cuda()) {
    // dout: bf16; dtable (+=): f32 (an fp32 gradient) or bf16.
    expect_index(op, "ids", ids);
    expect_cuda_dtype(op, "dout", dout, {DType::bf16});
    expect_device(op, "dout", dout, "ids", ids);
    if (!dtable.defined()) return;  // skipped gradient
    check_cuda_table(op, "dtable", dtable);
    expect_device(op, "dtable", dtable, "ids", ids);
    expect_shape(op, "dout", dout, rows_shape(ids, dtable.size(1)),
                 cat(described("ids", ids), " and ", described("dtable", dtable)));
#ifdef HONE_CUDA_EMBEDDING
    if (ids.numel() == 0) return;
    cuda::DeviceGuard device(ids.device().index);
    kernels::EmbeddingBwdParams p;
    p.tokens = ids.numel();
    p.vocab = dtable.size(0);
    p.dim = dtable.size(1);
    p.ids = ids.raw();
    p.index_type = index_type(ids);
    p.dout = dout.raw();
    p.dtable = dtable.raw();
    p.grad_type = table_type(dtable);
    const DeviceScratch workspace(ids.device().index,
                                  kernels::embedding_bwd_workspace_bytes(p.tokens, p.vocab));
    p.workspace = workspace.get();
    kernels::embedding_bwd(p, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "embedding");
#endif
  }
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

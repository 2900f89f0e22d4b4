// cuDNN's scaled dot-product attention through the cuDNN frontend's graph API: one graph per
// direction and problem shape, built on first use and kept. See cudnn_attention.h.
#include "cudnn_attention.h"

#include <cuda_runtime.h>
#include <cudnn.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <unordered_map>
#include <vector>

#include <cudnn_frontend.h>

#include "hone/error.h"

namespace fe = cudnn_frontend;

namespace hone::bench {
namespace {

constexpr const char* kWhere = "cudnn_attention";

// Tensor ids of the graphs (the variant pack maps them to device pointers).
enum Uid : std::int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV };

void check_cudnn(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) fail(kWhere, cat(what, " failed: ", cudnnGetErrorString(status)));
}

void check_fe(fe::error_t status, const char* what) {
  if (status.is_bad()) fail(kWhere, cat("cuDNN ", what, ": ", status.get_message()));
}

// dims and strides of a (B, T, heads, hd) bf16 tensor as cuDNN's (B, heads, T, hd).
struct Layout {
  std::vector<std::int64_t> dim, stride;
};

Layout layout(const kernels::AttentionTensor& t, const char* name, int batch, int seqlen, int heads,
              int hd) {
  HONE_CHECK(t.ptr != nullptr, kWhere, "tensor '", name, "' is null");
  HONE_CHECK(reinterpret_cast<std::uintptr_t>(t.ptr) % 16 == 0, kWhere, "tensor '", name,
             "' is not 16-byte aligned");
  HONE_CHECK(t.row_stride > 0 && t.head_stride > 0, kWhere, "tensor '", name, "': row_stride ",
             t.row_stride, " and head_stride ", t.head_stride, " must be positive");
  // cuDNN, like hone's kernels, moves whole 16-byte rows.
  HONE_CHECK(t.row_stride % 8 == 0 && t.head_stride % 8 == 0 && t.batch_stride % 8 == 0, kWhere,
             "tensor '", name, "': strides must be multiples of 8 elements (batch ", t.batch_stride,
             ", row ", t.row_stride, ", head ", t.head_stride, ")");
  // One batch entry: the batch stride does not matter, but cuDNN wants a positive one.
  const std::int64_t batch_stride =
      batch == 1 && t.batch_stride == 0 ? t.row_stride * seqlen : t.batch_stride;
  HONE_CHECK(batch_stride > 0, kWhere, "tensor '", name, "': batch_stride ", t.batch_stride,
             " with batch ", batch);
  return {{batch, heads, seqlen, hd}, {batch_stride, t.head_stride, t.row_stride, 1}};
}

std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& g, const char* name, Uid uid,
                                                    const Layout& l) {
  return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(l.dim).set_stride(l.stride));
}

void set_output(const std::shared_ptr<fe::graph::Tensor_attributes>& t, Uid uid, const Layout& l) {
  t->set_output(true).set_uid(uid).set_dim(l.dim).set_stride(l.stride);
}

// The problem a graph is built for: everything but the pointers.
struct Problem {
  int batch, seqlen, heads, kv_heads, hd;
  float scale;
  bool causal, stats;
  Layout q, k, v, o;
  Layout dout, dq, dk, dv;  // backward only

  std::vector<std::int64_t> key(bool backward) const {
    std::vector<std::int64_t> key = {backward, batch, seqlen, heads, kv_heads, hd, causal, stats};
    std::uint32_t bits;
    std::memcpy(&bits, &scale, sizeof bits);
    key.push_back(bits);
    for (const Layout* l : {&q, &k, &v, &o, &dout, &dq, &dk, &dv})
      key.insert(key.end(), l->stride.begin(), l->stride.end());
    return key;
  }
};

Problem problem(const kernels::AttentionParams& p) {
  HONE_CHECK(p.batch >= 1, kWhere, "batch must be ≥ 1 (got ", p.batch, ")");
  HONE_CHECK(p.seqlen >= 1, kWhere, "seqlen must be ≥ 1 (got ", p.seqlen, ")");
  HONE_CHECK(p.kv_heads >= 1 && p.heads >= p.kv_heads && p.heads % p.kv_heads == 0, kWhere,
             "heads (", p.heads, ") must be a multiple of kv_heads (", p.kv_heads, ")");
  HONE_CHECK(p.head_dim >= 8 && p.head_dim <= 256 && p.head_dim % 8 == 0, kWhere,
             "head_dim must be a multiple of 8 in [8, 256] for cuDNN (got ", p.head_dim, ")");
  HONE_CHECK(p.cu_seqlens == nullptr, kWhere,
             "the packed layout (cu_seqlens) is not supported by the cuDNN baseline");
  HONE_CHECK(p.window == 0, kWhere, "window must be 0 for the cuDNN baseline (got ", p.window, ")");
  HONE_CHECK(std::isfinite(p.scale) && p.scale >= 0, kWhere, "scale must be ≥ 0 (got ", p.scale, ")");
  if (p.lse) {
    const std::int64_t t = p.seqlen;
    HONE_CHECK(p.lse_head_stride == t && (p.batch == 1 || p.lse_batch_stride == p.heads * t), kWhere,
               "lse must be (B, H, T) contiguous like cuDNN's Stats: lse_batch_stride ",
               p.lse_batch_stride, " (want ", p.heads * t, "), lse_head_stride ", p.lse_head_stride,
               " (want ", t, ")");
  }
  Problem pb;
  pb.batch = p.batch, pb.seqlen = p.seqlen, pb.heads = p.heads, pb.kv_heads = p.kv_heads;
  pb.hd = p.head_dim;
  pb.scale = p.scale > 0 ? p.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  pb.causal = p.causal;
  pb.stats = p.lse != nullptr;
  pb.q = layout(p.q, "q", p.batch, p.seqlen, p.heads, p.head_dim);
  pb.k = layout(p.k, "k", p.batch, p.seqlen, p.kv_heads, p.head_dim);
  pb.v = layout(p.v, "v", p.batch, p.seqlen, p.kv_heads, p.head_dim);
  pb.o = layout(p.out, "out", p.batch, p.seqlen, p.heads, p.head_dim);
  return pb;
}

// Stats: (B, H, T, 1) f32, packed.
Layout stats_layout(const Problem& pb) {
  const std::int64_t t = pb.seqlen;
  return {{pb.batch, pb.heads, t, 1}, {pb.heads * t, t, 1, 1}};
}

std::shared_ptr<fe::graph::Graph> new_graph() {
  auto g = std::make_shared<fe::graph::Graph>();
  // bf16 in and out; softmax and accumulation in f32, as hone's kernels do.
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}

std::shared_ptr<fe::graph::Graph> forward_graph(const Problem& pb) {
  auto g = new_graph();
  auto q = input(*g, "q", kQ, pb.q), k = input(*g, "k", kK, pb.k), v = input(*g, "v", kV, pb.v);
  auto options = fe::graph::SDPA_attributes()
                     .set_name("hone_baseline_sdpa")
                     .set_generate_stats(pb.stats)
                     .set_attn_scale(pb.scale)
                     .set_causal_mask(pb.causal);
  auto [o, stats] = g->sdpa(q, k, v, options);
  set_output(o, kO, pb.o);
  if (pb.stats) {
    const Layout s = stats_layout(pb);
    stats->set_output(true).set_uid(kStats).set_data_type(fe::DataType_t::FLOAT).set_dim(s.dim).set_stride(s.stride);
  }
  return g;
}

std::shared_ptr<fe::graph::Graph> backward_graph(const Problem& pb) {
  auto g = new_graph();
  auto q = input(*g, "q", kQ, pb.q), k = input(*g, "k", kK, pb.k), v = input(*g, "v", kV, pb.v);
  auto o = input(*g, "o", kO, pb.o), dout = input(*g, "dout", kDO, pb.dout);
  const Layout s = stats_layout(pb);
  auto stats = g->tensor(fe::graph::Tensor_attributes()
                             .set_name("stats")
                             .set_uid(kStats)
                             .set_dim(s.dim)
                             .set_stride(s.stride)
                             .set_data_type(fe::DataType_t::FLOAT));
  auto options = fe::graph::SDPA_backward_attributes()
                     .set_name("hone_baseline_sdpa_backward")
                     .set_attn_scale(pb.scale)
                     .set_causal_mask(pb.causal);
  auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, dout, stats, options);
  set_output(dq, kDQ, pb.dq);
  set_output(dk, kDK, pb.dk);
  set_output(dv, kDV, pb.dv);
  return g;
}

}  // namespace

struct CudnnAttention::Impl {
  cudnnHandle_t handle = nullptr;
  std::map<std::vector<std::int64_t>, std::shared_ptr<fe::graph::Graph>> graphs;
  void* workspace = nullptr;
  std::int64_t workspace_bytes = 0;
  double build_seconds = 0;

  fe::graph::Graph& graph(const Problem& pb, bool backward) {
    const std::vector<std::int64_t> key = pb.key(backward);
    auto it = graphs.find(key);
    if (it != graphs.end()) return *it->second;
    const auto start = std::chrono::steady_clock::now();
    auto g = backward ? backward_graph(pb) : forward_graph(pb);
    // Heuristics mode A, then the fallback list: the engine cuDNN itself would pick.
    check_fe(g->build(handle, {fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}),
             backward ? "sdpa_backward graph" : "sdpa graph");
    build_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return *graphs.emplace(key, std::move(g)).first->second;
  }

  void execute(fe::graph::Graph& g, std::unordered_map<std::int64_t, void*>& pack, cudaStream_t stream,
               const char* what) {
    std::int64_t need = 0;
    check_fe(g.get_workspace_size(need), "workspace size");
    if (need > workspace_bytes) {
      // cudaFree waits for the device, so work still using the old buffer has finished.
      if (workspace) cudaFree(workspace);
      workspace = nullptr, workspace_bytes = 0;
      const cudaError_t err = cudaMalloc(&workspace, static_cast<std::size_t>(need));
      if (err != cudaSuccess)
        fail(kWhere, cat("workspace of ", need, " bytes: ", cudaGetErrorString(err)));
      workspace_bytes = need;
    }
    check_cudnn(cudnnSetStream(handle, stream), "cudnnSetStream");
    check_fe(g.execute(handle, pack, workspace), what);
  }
};

CudnnAttention::CudnnAttention() : impl_(std::make_unique<Impl>()) {
  // The frontend's SDPA nodes need the cuDNN 9 graph engines; an older libcudnn picked up at run
  // time would fail later with a less clear message.
  const std::size_t runtime = cudnnGetVersion();
  HONE_CHECK(runtime >= 90000, kWhere, "cuDNN ", runtime, " loaded at run time; the attention baseline needs cuDNN 9");
  check_cudnn(cudnnCreate(&impl_->handle), "cudnnCreate");
}

CudnnAttention::~CudnnAttention() {
  impl_->graphs.clear();  // plans before the handle they were built with
  if (impl_->workspace) cudaFree(impl_->workspace);
  if (impl_->handle) cudnnDestroy(impl_->handle);
}

void CudnnAttention::fwd(const kernels::AttentionParams& p, cudaStream_t stream) {
  const Problem pb = problem(p);
  fe::graph::Graph& g = impl_->graph(pb, false);
  std::unordered_map<std::int64_t, void*> pack = {
      {kQ, p.q.ptr}, {kK, p.k.ptr}, {kV, p.v.ptr}, {kO, p.out.ptr}};
  if (p.lse) pack[kStats] = p.lse;
  impl_->execute(g, pack, stream, "sdpa execute");
}

void CudnnAttention::bwd(const kernels::AttentionBwdParams& p, cudaStream_t stream) {
  HONE_CHECK(p.fwd.lse != nullptr, kWhere, "the backward needs the forward's lse (fwd.lse is null)");
  Problem pb = problem(p.fwd);
  const kernels::AttentionParams& f = p.fwd;
  pb.dout = layout(p.dout, "dout", f.batch, f.seqlen, f.heads, f.head_dim);
  pb.dq = layout(p.dq, "dq", f.batch, f.seqlen, f.heads, f.head_dim);
  pb.dk = layout(p.dk, "dk", f.batch, f.seqlen, f.kv_heads, f.head_dim);
  pb.dv = layout(p.dv, "dv", f.batch, f.seqlen, f.kv_heads, f.head_dim);
  fe::graph::Graph& g = impl_->graph(pb, true);
  std::unordered_map<std::int64_t, void*> pack = {
      {kQ, f.q.ptr},      {kK, f.k.ptr},   {kV, f.v.ptr},   {kO, f.out.ptr}, {kStats, f.lse},
      {kDO, p.dout.ptr}, {kDQ, p.dq.ptr}, {kDK, p.dk.ptr}, {kDV, p.dv.ptr}};
  impl_->execute(g, pack, stream, "sdpa_backward execute");
}

double CudnnAttention::build_seconds() const { return impl_->build_seconds; }

std::size_t CudnnAttention::cached_graphs() const { return impl_->graphs.size(); }

std::string CudnnAttention::version() const {
  const std::size_t v = cudnnGetVersion();
  // cuDNN 9 encodes major·10000 + minor·100 + patch.
  return cat("cuDNN ", v / 10000, ".", v / 100 % 100, ".", v % 100, ", frontend ", CUDNN_FRONTEND_MAJOR_VERSION,
             ".", CUDNN_FRONTEND_MINOR_VERSION, ".", CUDNN_FRONTEND_PATCH_VERSION);
}

}  // namespace hone::bench

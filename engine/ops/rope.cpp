// ops::rope_inv_freq / rope_fwd / rope_bwd: the inverse-frequency table (with Llama 3.1
// scaling), argument validation and device dispatch: the CPU reference, or on CUDA the bf16
// kernels of kernels/rope with the table kept on the device.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/rope.h"
#include "ops/check.h"
#include "ops/ops.h"

// The CUDA branch needs the rope kernels in the library; engine/CMakeLists.txt defines
// HONE_WITHOUT_KERNELS_ROPE when HONE_KERNEL_FAMILIES leaves them out.
#if defined(HONE_WITH_CUDA) && !defined(HONE_WITHOUT_KERNELS_ROPE)
#define HONE_CUDA_ROPE 1
#endif

#ifdef HONE_CUDA_ROPE
#include <map>
#include <mutex>
#include <utility>

#include "cuda/context.h"
#include "cuda/runtime.h"
#include "kernels/rope/rope.h"
#endif

namespace hone::ops {

namespace {

constexpr double kPi = 3.14159265358979323846;

// The inverse frequencies, validating head_dim and args on behalf of `op`.
std::vector<double> inv_freq_for(std::string_view op, std::int64_t head_dim, const RopeArgs& args) {
  HONE_CHECK(head_dim >= 2 && head_dim % 2 == 0, op, "head_dim is ", head_dim,
             "; expected an even number ≥ 2");
  HONE_CHECK(args.theta > 0 && std::isfinite(args.theta), op, "theta is ", args.theta,
             "; expected a finite value > 0");
  const std::int64_t half = head_dim / 2;
  std::vector<double> inv(static_cast<std::size_t>(half));
  for (std::int64_t i = 0; i < half; ++i)
    inv[static_cast<std::size_t>(i)] =
        std::pow(args.theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
  const RopeScaling& sc = args.scaling;
  if (sc.kind == RopeScaling::Kind::none) return inv;
  HONE_CHECK(sc.kind == RopeScaling::Kind::llama3, op, "unknown RoPE scaling kind ",
             static_cast<int>(sc.kind));
  HONE_CHECK(sc.factor > 0 && sc.low_freq_factor > 0 && sc.high_freq_factor > sc.low_freq_factor &&
                 sc.original_max_position > 0,
             op, "llama3 scaling has factor ", sc.factor, ", low_freq_factor ", sc.low_freq_factor,
             ", high_freq_factor ", sc.high_freq_factor, ", original_max_position ",
             sc.original_max_position,
             "; expected factor > 0, 0 < low_freq_factor < high_freq_factor and "
             "original_max_position > 0");
  // Llama 3.1 (Hugging Face _compute_llama3_parameters): wavelengths shorter than high_wl keep
  // their frequency, longer than low_wl are divided by factor, and in between the two are
  // blended linearly in original_max_position / wavelen.
  const double low_wl = sc.original_max_position / sc.low_freq_factor;
  const double high_wl = sc.original_max_position / sc.high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2 * kPi / f;
    if (wavelen < high_wl) continue;
    if (wavelen > low_wl) {
      f = f / sc.factor;
    } else {
      const double s = (sc.original_max_position / wavelen - sc.low_freq_factor) /
                       (sc.high_freq_factor - sc.low_freq_factor);
      f = (1 - s) * f / sc.factor + s * f;
    }
  }
  return inv;
}

#ifdef HONE_CUDA_ROPE
// The kernels read the fp64 table from device memory. A model uses one or two tables for its
// whole life, so each distinct (device, table) is copied once, on first use (a synchronous copy:
// the only host wait of these ops), and kept for the process like the device's other state.
constexpr std::size_t kMaxDeviceTables = 256;

const double* device_inv_freq(std::string_view op, int device, const std::vector<double>& inv) {
  static std::mutex mutex;
  static std::map<std::pair<int, std::vector<double>>, const double*> tables;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_pair(device, inv);
  const auto it = tables.find(key);
  if (it != tables.end()) return it->second;
  HONE_CHECK(tables.size() < kMaxDeviceTables, op, "more than ", kMaxDeviceTables,
             " distinct RoPE tables (head_dim, theta, scaling) on ", Device::cuda(device).str());
  const std::size_t bytes = inv.size() * sizeof(double);
  void* p = cuda::device_malloc(device, bytes);
  HONE_CHECK(p != nullptr, op, "out of device memory for the RoPE table (", bytes, " bytes) on ",
             Device::cuda(device).str());
  cuda::copy(p, inv.data(), bytes, cuda::CopyKind::host_to_device);
  tables.emplace(std::move(key), static_cast<const double*>(p));
  return static_cast<const double*>(p);
}
#endif

// Shared by forward and backward: x (..., H, hd) float with hd even; positions i32/i64 with
// shape x.shape[:-2]; y like x; all on x's device. `xn`/`yn` name the input and output.
// On CUDA x and y are bf16 and head_dim ≤ kernels' 8192; positions live on the device too.
void rope_run(std::string_view op, const Tensor& x, std::string_view xn, const Tensor& positions,
              const RopeArgs& args, const Tensor& y, std::string_view yn, bool inverse) {
  if (x.defined() && x.device().is_cuda())
    expect_cuda_dtype(op, xn, x, {DType::bf16});
  else
    expect_float(op, xn, x);
  HONE_CHECK(x.ndim() >= 2, op, "argument '", xn, "' has shape ", shape_str(x.shape()),
             "; expected (..., H, head_dim)");
  const bool cuda = x.device().is_cuda();
  const std::int64_t head_dim = x.size(-1);
  const std::int64_t heads = x.size(-2);
  HONE_CHECK(head_dim >= 2 && head_dim % 2 == 0, op, "argument '", xn, "' has shape ",
             shape_str(x.shape()), "; expected an even head_dim (last dimension) ≥ 2");
  const std::string from = described(xn, x);
  expect_index(op, "positions", positions);
  const Shape lead(x.shape().begin(), x.shape().end() - 2);
  expect_shape(op, "positions", positions, lead, from);
  expect_device(op, "positions", positions, xn, x);
  expect_dtype(op, yn, y, xn, x);
  expect_shape(op, yn, y, x.shape(), from);
  expect_device(op, yn, y, xn, x);
  const std::vector<double> inv = inv_freq_for(op, head_dim, args);
  const std::int64_t tokens = positions.numel();
  if (cuda) {
    constexpr std::int64_t kCudaMaxHeadDim = 8192;  // kernels::kRopeMaxHeadDim
    HONE_CHECK(head_dim <= kCudaMaxHeadDim, op, "argument '", xn, "' has shape ",
               shape_str(x.shape()), "; expected head_dim ≤ ", kCudaMaxHeadDim, " on ",
               x.device().str());
#ifdef HONE_CUDA_ROPE
    if (tokens == 0 || heads == 0) return;
    cuda::DeviceGuard device(x.device().index);
    kernels::RopeParams p;
    p.x = x.raw();
    p.y = y.raw();
    p.positions = positions.raw();
    p.positions_type =
        positions.dtype() == DType::i32 ? kernels::RopeIndexType::i32 : kernels::RopeIndexType::i64;
    p.inv_freq = device_inv_freq(op, x.device().index, inv);
    p.tokens = tokens;
    p.heads = heads;
    p.head_dim = head_dim;
    if (inverse)
      kernels::rope_bwd(p, cuda::current_stream());
    else
      kernels::rope_fwd(p, cuda::current_stream());
    return;
#else
    cuda_unavailable(op, "rope");
#endif
  }
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (positions.dtype() == DType::i32)
      cpu::rope_apply<T, std::int32_t>(x.data<T>(), positions.data<std::int32_t>(), inv.data(),
                                       tokens, heads, head_dim, inverse, y.data<T>());
    else
      cpu::rope_apply<T, std::int64_t>(x.data<T>(), positions.data<std::int64_t>(), inv.data(),
                                       tokens, heads, head_dim, inverse, y.data<T>());
  });
}

}  // namespace

std::vector<double> rope_inv_freq(std::int64_t head_dim, const RopeArgs& args) {
  return inv_freq_for("rope_inv_freq", head_dim, args);
}

void rope_fwd(const Tensor& x, const Tensor& positions, const RopeArgs& args, const Tensor& y) {
  rope_run("rope_fwd", x, "x", positions, args, y, "y", /*inverse=*/false);
}

void rope_bwd(const Tensor& dy, const Tensor& positions, const RopeArgs& args, const Tensor& dx) {
  rope_run("rope_bwd", dy, "dy", positions, args, dx, "dx", /*inverse=*/true);
}

}  // namespace hone::ops

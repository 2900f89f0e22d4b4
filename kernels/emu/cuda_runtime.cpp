// The CUDA runtime calls the engine's host code makes (engine/cuda, engine/ops), answered on the
// CPU for the emulated engine (hone_emulated): device memory is host memory, a launch has
// finished when kernels::launch returns, so every stream and event is complete at once (an
// event's time is the host clock when it was recorded: the time the emulated work took). Only
// the subset the engine uses exists; the library is linked instead of libcudart.
//
// Device count: 1, or HONE_EMU_DEVICES (1 to 8). Device memory is 256-byte aligned (as
// cudaMalloc's) and filled with a NaN pattern (0xFF bytes), so code that reads memory it never
// wrote sees NaN rather than zeros the real allocator would not promise either.
#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_set>
#include <utility>

namespace {

thread_local int g_device = 0;
thread_local cudaError_t g_last = cudaSuccess;

int device_count() {
  static const int n = [] {
    const char* v = std::getenv("HONE_EMU_DEVICES");
    const int k = v != nullptr ? std::atoi(v) : 1;
    return k >= 1 && k <= 8 ? k : 1;
  }();
  return n;
}

cudaError_t result(cudaError_t e) {
  if (e != cudaSuccess) g_last = e;
  return e;
}

// Streams and events are distinct fake handles; the sets catch use after destruction.
std::mutex g_mutex;
std::unordered_set<const void*> g_streams, g_events;

template <class H>
H new_handle(std::unordered_set<const void*>& set) {
  auto* h = reinterpret_cast<H>(new std::uint64_t(0));
  std::lock_guard<std::mutex> lock(g_mutex);
  set.insert(h);
  return h;
}

bool known(std::unordered_set<const void*>& set, const void* h) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return set.count(h) != 0;
}

bool destroy(std::unordered_set<const void*>& set, const void* h) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (set.erase(h) == 0) return false;
  delete static_cast<const std::uint64_t*>(h);
  return true;
}

// The legacy default stream (null) and the per-thread one are always valid.
bool valid_stream(cudaStream_t s) {
  return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread || known(g_streams, s);
}

}  // namespace

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = device_count();
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = g_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= device_count()) return result(cudaErrorInvalidDevice);
  g_device = device;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaGetLastError() { return std::exchange(g_last, cudaSuccess); }
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error (emulated)";
    case cudaErrorMemoryAllocation: return "out of memory (emulated)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (emulated)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle (emulated)";
    case cudaErrorInvalidValue: return "invalid argument (emulated)";
    default: return "error (emulated)";
  }
}

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  const std::size_t rounded = (bytes + 255) / 256 * 256;
  *ptr = rounded == 0 ? nullptr : std::aligned_alloc(256, rounded);
  if (rounded != 0 && *ptr == nullptr) return result(cudaErrorMemoryAllocation);
  if (*ptr != nullptr) std::memset(*ptr, 0xFF, rounded);
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind) {
  if (bytes != 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (!valid_stream(stream)) return result(cudaErrorInvalidResourceHandle);
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes) {
  if (bytes != 0) std::memset(ptr, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream) {
  if (!valid_stream(stream)) return result(cudaErrorInvalidResourceHandle);
  return cudaMemset(ptr, value, bytes);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  *stream = new_handle<cudaStream_t>(g_streams);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  return destroy(g_streams, stream) ? cudaSuccess : result(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  return valid_stream(stream) ? cudaSuccess : result(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaStreamGetDevice(cudaStream_t stream, int* device) {
  if (!valid_stream(stream)) return result(cudaErrorInvalidResourceHandle);
  *device = g_device;  // streams are not tied to devices here: the caller's device
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  return valid_stream(stream) && known(g_events, event) ? cudaSuccess
                                                        : result(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  *event = new_handle<cudaEvent_t>(g_events);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  return destroy(g_events, event) ? cudaSuccess : result(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!known(g_events, event) || !valid_stream(stream)) return result(cudaErrorInvalidResourceHandle);
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  *reinterpret_cast<std::uint64_t*>(event) =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return known(g_events, event) ? cudaSuccess : result(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!known(g_events, start) || !known(g_events, end)) return result(cudaErrorInvalidResourceHandle);
  const auto t0 = *reinterpret_cast<const std::uint64_t*>(start);
  const auto t1 = *reinterpret_cast<const std::uint64_t*>(end);
  if (t0 == 0 || t1 == 0) return result(cudaErrorInvalidResourceHandle);  // never recorded
  *ms = static_cast<float>(static_cast<double>(static_cast<std::int64_t>(t1 - t0)) * 1e-6);
  return cudaSuccess;
}

// cuBLASLt: the engine creates one handle per device; the emulated GEMM baseline
// (engine/cuda/blas_emulated.cpp) never reads it.
cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  static int token = 0;
  *handle = reinterpret_cast<cublasLtHandle_t>(&token);
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "success (emulated)" : "error (emulated)";
}

}  // extern "C"

// Per-device CUDA state: devices, streams, events, cuBLASLt handles and workspaces.
#include "cuda/context.h"

#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cuda/check.h"
#include "cuda/runtime.h"
#include "hone/log.h"

namespace hone::cuda {

namespace {

void expect_device(int index) {
  const int count = device_count();
  HONE_CHECK(index >= 0 && index < count, "cuda", "device ", index, " does not exist (", count,
             " devices visible)");
}

// What one device holds for the whole process. Allocated once and never freed (see context.h).
struct DeviceState {
  cudaStream_t main = nullptr;
  cublasLtHandle_t blas = nullptr;
  std::unordered_map<cudaStream_t, void*> workspaces;  // stream → kBlasWorkspaceBytes
};

std::mutex g_mutex;
std::vector<DeviceState*> g_devices;  // index → state, created on first use

// The state of a valid device; the caller holds g_mutex.
DeviceState& state_locked(int device) {
  if (g_devices.size() <= static_cast<std::size_t>(device)) g_devices.resize(device + 1, nullptr);
  if (g_devices[device] == nullptr) g_devices[device] = new DeviceState();
  return *g_devices[device];
}

// This thread's stream overrides, per device: set while a StreamGuard is alive.
struct Override {
  bool set = false;
  cudaStream_t stream = nullptr;
};
thread_local std::vector<Override> t_overrides;

Override& override_of(int device) {
  if (t_overrides.size() <= static_cast<std::size_t>(device)) t_overrides.resize(device + 1);
  return t_overrides[device];
}

}  // namespace

int current_device() {
  int d = 0;
  CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void set_device(int index) {
  expect_device(index);
  CUDA_CHECK(cudaSetDevice(index));
}

DeviceGuard::DeviceGuard(int index) : previous_(current_device()) { set_device(index); }

DeviceGuard::~DeviceGuard() {
  if (cudaSetDevice(previous_) != cudaSuccess) log_warn("[cuda] could not restore device ", previous_);
}

cudaStream_t main_stream(int device) {
  expect_device(device);
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceState& s = state_locked(device);
  if (s.main == nullptr) {
    DeviceGuard guard(device);
    // Blocking (default flags): synchronous copies on the legacy stream wait for queued ops.
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.main, cudaStreamDefault));
  }
  return s.main;
}

cudaStream_t current_stream(int device) {
  // Only an index a StreamGuard validated has an override; everything else (bad indices
  // included) goes through main_stream, which checks the index.
  if (device >= 0 && static_cast<std::size_t>(device) < t_overrides.size() &&
      t_overrides[device].set)
    return t_overrides[device].stream;
  return main_stream(device);
}

cudaStream_t current_stream() { return current_stream(current_device()); }

StreamGuard::StreamGuard(cudaStream_t stream) : StreamGuard(stream, current_device()) {}

StreamGuard::StreamGuard(cudaStream_t stream, int device) : device_(device) {
  expect_device(device);
  if (stream != nullptr) {
    int owner = -1;
    CUDA_CHECK(cudaStreamGetDevice(stream, &owner));
    HONE_CHECK(owner == device, "cuda", "stream of device ", owner,
               " cannot be the current stream of device ", device);
  }
  (void)main_stream(device);  // created up front, so ops under the guard find the device ready
  Override& o = override_of(device);
  previous_set_ = o.set;
  previous_ = o.stream;
  o.set = true;
  o.stream = stream;
}

StreamGuard::~StreamGuard() {
  Override& o = override_of(device_);
  o.set = previous_set_;
  o.stream = previous_;
}

Stream::Stream(int device) : device_(device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamDefault));
}

Stream::~Stream() { reset(); }

Stream::Stream(Stream&& other) noexcept
    : stream_(std::exchange(other.stream_, nullptr)), device_(other.device_) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    reset();
    stream_ = std::exchange(other.stream_, nullptr);
    device_ = other.device_;
  }
  return *this;
}

void Stream::synchronize() const { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void Stream::reset() noexcept {
  if (stream_ == nullptr) return;
  // Finish first: a workspace keyed by this handle may be reused by a later stream.
  if (cudaStreamSynchronize(stream_) != cudaSuccess || cudaStreamDestroy(stream_) != cudaSuccess)
    log_warn("[cuda] destroying a stream of device ", device_, " failed");
  stream_ = nullptr;
}

Event::Event(bool timing) {
  CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (event_ != nullptr && cudaEventDestroy(event_) != cudaSuccess)
    log_warn("[cuda] destroying an event failed");
}

Event::Event(Event&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (event_ != nullptr) (void)cudaEventDestroy(event_);
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}

void Event::record(cudaStream_t stream) { CUDA_CHECK(cudaEventRecord(event_, stream)); }
void Event::wait(cudaStream_t stream) const { CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }
void Event::synchronize() const { CUDA_CHECK(cudaEventSynchronize(event_)); }

float Event::elapsed_ms(const Event& later) const {
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, event_, later.event_));
  return ms;
}

void synchronize(int device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void synchronize() { synchronize(current_device()); }

BlasHandle blas_handle(int device, cudaStream_t stream) {
  expect_device(device);
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceState& s = state_locked(device);
  DeviceGuard guard(device);
  if (s.blas == nullptr) CUBLAS_CHECK(cublasLtCreate(&s.blas));
  void*& ws = s.workspaces[stream];
  if (ws == nullptr && cudaMalloc(&ws, kBlasWorkspaceBytes) != cudaSuccess) {
    (void)cudaGetLastError();
    ws = nullptr;
    fail("cuda", cat("out of memory allocating the cuBLASLt workspace (", kBlasWorkspaceBytes,
                     " bytes) on device ", device));
  }
  return {s.blas, ws, kBlasWorkspaceBytes};
}

}  // namespace hone::cuda

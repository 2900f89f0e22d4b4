// Per-device CUDA state of the engine: the current device, the stream ops run on, events, and
// the cuBLASLt handle with its workspaces. Internal header (it uses CUDA types); the public
// headers in include/hone stay free of them.
//
// State is created lazily, once per device, and lives for the process, like the caching
// allocator and the driver's own context. It is deliberately never destroyed: destroying
// streams and cuBLASLt handles from static destructors races the CUDA runtime's own teardown.
//
// Streams. Every device has one main stream on which ops enqueue their kernels, in order.
// A thread may redirect the ops it issues on a device to another stream with a StreamGuard
// (the data-parallel code will put communication on its own stream this way). Streams are
// created as blocking streams (not cudaStreamNonBlocking): the synchronous copies of
// Tensor::copy_from / Tensor::to run on the legacy default stream, which then waits for the
// kernels already queued, so host reads always see finished results.
//
// Memory and streams. The caching allocator (core/caching_allocator.h) is not stream-aware: a
// block freed on the host is handed out again at once. That is safe for work on one stream
// (the next user's kernels queue behind the previous user's), which is how ops run. Memory
// used on another stream must stay alive until that stream's work is done (hold the Tensor,
// or record an Event and wait on it) before it is released.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace hone::cuda {

// The calling thread's current device (CUDA's per-thread current device).
int current_device();
// Makes `index` the calling thread's current device; throws naming the index and the count.
void set_device(int index);

// Sets the current device for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

// The device's main stream (created on first use).
cudaStream_t main_stream(int device);
// The stream ops on `device` (default: the current device) run on for this thread: the
// innermost StreamGuard's stream, else the device's main stream.
cudaStream_t current_stream(int device);
cudaStream_t current_stream();

// Makes `stream` the current stream of `device` (default: the current device) for the calling
// thread within a scope; guards nest. The stream must belong to that device.
class StreamGuard {
 public:
  explicit StreamGuard(cudaStream_t stream);
  StreamGuard(cudaStream_t stream, int device);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  bool previous_set_;  // whether an enclosing guard was active
  cudaStream_t previous_;
};

// An owned stream on one device (move-only). The destructor waits for the stream's work and
// then destroys it; it never throws.
class Stream {
 public:
  explicit Stream(int device);
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  int device() const { return device_; }
  void synchronize() const;

 private:
  void reset() noexcept;
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

// An owned event (move-only), with timing enabled unless `timing` is false.
class Event {
 public:
  explicit Event(bool timing = true);
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream);
  // Makes `stream` wait (on the device, without blocking the host) for the recorded work.
  void wait(cudaStream_t stream) const;
  void synchronize() const;
  // Milliseconds between two recorded, completed events.
  float elapsed_ms(const Event& later) const;

 private:
  cudaEvent_t event_ = nullptr;
};

// Waits for all work on `device` (default: the current device).
void synchronize(int device);
void synchronize();

// The cuBLASLt handle of a device and a workspace for GEMMs enqueued on `stream`. Each stream
// gets its own workspace, so GEMMs on two streams never share scratch memory.
struct BlasHandle {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
};
BlasHandle blas_handle(int device, cudaStream_t stream);

// Bytes of cuBLASLt workspace per (device, stream): what NVIDIA recommends for Hopper.
inline constexpr std::size_t kBlasWorkspaceBytes = 32u << 20;

}  // namespace hone::cuda

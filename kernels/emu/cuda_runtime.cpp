// The CUDA runtime calls the engine's host code makes (engine/cuda, engine/ops), answered on the
// CPU for the emulated engine (hone_emulated): a launch has finished when kernels::launch
// returns, so every stream and event is complete at once (an event's time is the host clock
// when it was recorded: the time the emulated work took). Only the subset the engine uses
// exists; the library is linked instead of libcudart.
//
// Device memory lives in one reserved arena of host address space that is inaccessible
// (PROT_NONE) except while a kernel runs or a cudaMemcpy/cudaMemset copies: host code that
// reads or writes device memory directly — which works here but crashes on a GPU — faults, and
// the fault is reported as such. Allocations are page-granular (so 256-byte aligned, as
// cudaMalloc's) and filled with 0xFF bytes (NaN as f32 and bf16), so reading memory nobody
// wrote shows. Device count: 1, or HONE_EMU_DEVICES (1 to 8); every device shares the arena.
#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <unordered_set>
#include <utility>

#include "kernels/emu/emu.h"

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

// The device arena: reserved address space, first-fit page ranges, closed to the host except
// inside Access scopes (nested and from any thread: open while any is live).
class Arena {
 public:
  static Arena& get() {
    static Arena* a = new Arena;  // never destroyed: memory may be freed during static teardown
    return *a;
  }
  void* allocate(std::size_t bytes) {
    const std::size_t size = round(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t at = top_;
    auto it = free_.begin();
    for (; it != free_.end() && it->second < size; ++it) {
    }
    if (it != free_.end()) {
      at = it->first;
      const std::size_t left = it->second - size;
      free_.erase(it);
      if (left > 0) free_[at + size] = left;
    } else {
      if (top_ + size > kReserve) return nullptr;
      top_ += size;
    }
    used_[at] = size;
    char* p = base_ + at;
    // New pages past the old top are closed even while a launch holds the arena open.
    mprotect(p, size, PROT_READ | PROT_WRITE);
    std::memset(p, 0xFF, size);
    if (open_ == 0) mprotect(p, size, PROT_NONE);
    return p;
  }
  bool release(void* ptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = used_.find(static_cast<std::size_t>(static_cast<char*>(ptr) - base_));
    if (it == used_.end()) return false;
    std::size_t at = it->first, size = it->second;
    used_.erase(it);
    auto next = free_.find(at + size);  // coalesce with the free neighbours
    if (next != free_.end()) size += next->second, free_.erase(next);
    auto prev = free_.lower_bound(at);
    if (prev != free_.begin() && std::prev(prev)->first + std::prev(prev)->second == at) {
      --prev;
      prev->second += size;
    } else {
      free_[at] = size;
    }
    return true;
  }
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_++ == 0 && top_ > 0) mprotect(base_, top_, PROT_READ | PROT_WRITE);
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--open_ == 0 && top_ > 0) mprotect(base_, top_, PROT_NONE);
  }
  bool contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return base_ != nullptr && c >= base_ && c < base_ + kReserve;
  }

 private:
  static constexpr std::size_t kReserve = std::size_t{1} << 38;  // 256 GiB of address space
  static std::size_t round(std::size_t n) {
    static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return (n + page - 1) / page * page;
  }
  Arena() {
    void* p = mmap(nullptr, kReserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    base_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
    install_fault_report();
  }
  static void install_fault_report();
  char* base_ = nullptr;
  std::size_t top_ = 0;
  int open_ = 0;
  std::map<std::size_t, std::size_t> free_, used_;  // offset → bytes
  std::mutex mutex_;
};

struct Access {
  Access() { Arena::get().open(); }
  ~Access() { Arena::get().close(); }
  Access(const Access&) = delete;
  Access& operator=(const Access&) = delete;
};

// A fault inside the arena is host code touching device memory: say so, then crash as before.
struct sigaction g_previous_segv;
void on_segv(int sig, siginfo_t* info, void* context) {
  if (Arena::get().contains(info->si_addr)) {
    static const char msg[] =
        "hone (emulated device): host code accessed device memory outside a kernel or a copy; "
        "on a GPU this is an invalid access. Copy the tensor to the host first.\n";
    const ssize_t unused = write(2, msg, sizeof msg - 1);
    (void)unused;
  }
  sigaction(SIGSEGV, &g_previous_segv, nullptr);  // the previous handling, on the re-fault
  (void)sig;
  (void)context;
}
void Arena::install_fault_report() {
  struct sigaction sa {};
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_previous_segv);
}

// Kernels read and write device memory: open the arena for each launch.
[[maybe_unused]] const bool g_hooks_set = [] {
  hone::emu::set_launch_hooks({[] { Arena::get().open(); }, [] { Arena::get().close(); }});
  return true;
}();

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
  *ptr = bytes == 0 ? nullptr : Arena::get().allocate(bytes);
  return bytes != 0 && *ptr == nullptr ? result(cudaErrorMemoryAllocation) : cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  if (ptr != nullptr && !Arena::get().release(ptr)) return result(cudaErrorInvalidValue);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  // The kind must say where each side is, as the driver would check it.
  const Arena& a = Arena::get();
  const bool src_dev = a.contains(src), dst_dev = a.contains(dst);
  const bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToDevice && !src_dev && dst_dev) ||
                  (kind == cudaMemcpyDeviceToHost && src_dev && !dst_dev) ||
                  (kind == cudaMemcpyDeviceToDevice && src_dev && dst_dev) ||
                  (kind == cudaMemcpyHostToHost && !src_dev && !dst_dev);
  if (!ok) return result(cudaErrorInvalidValue);
  const Access open;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (!valid_stream(stream)) return result(cudaErrorInvalidResourceHandle);
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  const Access open;
  std::memset(ptr, value, bytes);
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

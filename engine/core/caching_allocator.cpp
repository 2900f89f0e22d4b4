// CachingAllocator policy, host aligned allocation, and the per-device CUDA allocators.
#include "core/caching_allocator.h"

#include <cstdlib>
#include <memory>
#include <vector>

#include "cuda/runtime.h"
#include "hone/device.h"
#include "hone/error.h"
#include "hone/log.h"

namespace hone {

CachingAllocator::CachingAllocator(RawAlloc raw_alloc, RawFree raw_free)
    : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)) {}

CachingAllocator::~CachingAllocator() {
  try {
    empty_cache();
    if (!live_.empty()) log_warn("[allocator] ", live_.size(), " blocks still in use at exit");
  } catch (...) {
    // Destructors never throw.
  }
}

void* CachingAllocator::allocate(std::size_t bytes) {
  const std::size_t size = ((bytes + kRound - 1) / kRound) * kRound + (bytes == 0 ? kRound : 0);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= 2 * size) {
    void* p = it->second;
    const std::size_t block = it->first;
    free_.erase(it);
    live_[p] = block;
    stats_.allocated += block;
    stats_.cache_hits += 1;
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
    return p;
  }
  void* p = raw_alloc_(size);
  if (p == nullptr && !free_.empty()) {
    for (auto& [sz, q] : free_) {
      raw_free_(q);
      stats_.reserved -= sz;
    }
    free_.clear();
    p = raw_alloc_(size);
  }
  HONE_CHECK(p != nullptr, "allocator", "out of memory allocating ", bytes, " bytes (",
             stats_.allocated, " bytes in use, ", stats_.reserved, " reserved)");
  live_[p] = size;
  stats_.raw_allocs += 1;
  stats_.reserved += size;
  stats_.allocated += size;
  if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
  return p;
}

void CachingAllocator::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  HONE_CHECK(it != live_.end(), "allocator", "deallocate of a pointer this allocator did not hand out");
  stats_.allocated -= it->second;
  free_.emplace(it->second, ptr);
  live_.erase(it);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [sz, p] : free_) {
    raw_free_(p);
    stats_.reserved -= sz;
  }
  free_.clear();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

namespace {

constexpr std::size_t kHostAlign = 64;

void* aligned_host(std::size_t bytes) {
  const std::size_t size = ((bytes + kHostAlign - 1) / kHostAlign) * kHostAlign;
  return std::aligned_alloc(kHostAlign, size == 0 ? kHostAlign : size);
}

// Blocks of a training step's activations are freed and requested again every step; the C
// library returns such large blocks to the system at once, so each step would fault every page
// in again. Those go through a cache instead (never destroyed: tensors may outlive statics).
CachingAllocator& host_cache() {
  static CachingAllocator* cache = new CachingAllocator(aligned_host, [](void* p) { std::free(p); });
  return *cache;
}

}  // namespace

void* host_allocate(std::size_t bytes) {
  void* p = bytes >= kHostCachedBytes ? host_cache().allocate(bytes) : aligned_host(bytes);
  HONE_CHECK(p != nullptr, "allocator", "out of host memory allocating ", bytes, " bytes");
  return p;
}

void host_free(void* ptr, std::size_t bytes) {
  if (bytes >= kHostCachedBytes)
    host_cache().deallocate(ptr);
  else
    std::free(ptr);
}

AllocatorStats host_cache_stats() { return host_cache().stats(); }

CachingAllocator& cuda_allocator(int index) {
  // One allocator per device for the life of the process, like the driver's own context.
  static std::mutex mutex;
  static std::vector<std::unique_ptr<CachingAllocator>> allocators;
  std::lock_guard<std::mutex> lock(mutex);
  const int count = cuda_device_count();
  HONE_CHECK(index >= 0 && index < count, "allocator",
             "CUDA device ", index, " does not exist (", count, " devices visible",
             cuda::built_with_cuda() ? "" : "; hone was built without CUDA", ")");
  if (allocators.size() < static_cast<std::size_t>(count)) allocators.resize(count);
  if (!allocators[index]) {
    allocators[index] = std::make_unique<CachingAllocator>(
        [index](std::size_t n) { return cuda::device_malloc(index, n); },
        [index](void* p) { cuda::device_free(index, p); });
  }
  return *allocators[index];
}

}  // namespace hone

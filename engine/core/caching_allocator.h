// A caching allocator for device memory: freed blocks are kept in size-ordered free lists and
// handed out again instead of going back to the driver, the way PyTorch's allocator avoids a
// cudaMalloc/cudaFree pair per tensor. The raw allocation functions are injected, so the
// caching policy is tested on the host and the CUDA backend plugs in cudaMalloc/cudaFree.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>

namespace hone {

struct AllocatorStats {
  std::size_t allocated = 0;       // bytes in blocks handed out now
  std::size_t reserved = 0;        // bytes obtained from the raw allocator and not released
  std::size_t peak_allocated = 0;  // high-water mark of `allocated`
  std::size_t raw_allocs = 0;      // calls to the raw allocator
  std::size_t cache_hits = 0;      // requests served from the cache
};

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(std::size_t)>;  // returns nullptr when out of memory
  using RawFree = std::function<void(void*)>;

  // Requests are rounded up to kRound bytes; a cached block is reused when it is at most
  // twice the rounded request (so small requests do not pin large blocks).
  static constexpr std::size_t kRound = 512;

  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free);
  ~CachingAllocator();  // releases everything still cached; never throws
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Throws hone::Error when the raw allocator fails even after the cache was emptied.
  void* allocate(std::size_t bytes);
  void deallocate(void* ptr);
  void empty_cache();  // returns all free blocks to the raw allocator
  AllocatorStats stats() const;

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;        // block size → block
  std::unordered_map<void*, std::size_t> live_;   // block → size, handed out
  AllocatorStats stats_;
};

// Host memory: 64-byte aligned, zero-size requests give a valid unique pointer. Blocks of at
// least kHostCachedBytes are kept in a cache for reuse when freed; host_free takes the size
// the block was allocated with.
inline constexpr std::size_t kHostCachedBytes = std::size_t{1} << 20;
void* host_allocate(std::size_t bytes);
void host_free(void* ptr, std::size_t bytes);
AllocatorStats host_cache_stats();

// The caching allocator of CUDA device `index` (created on first use). Throws when hone was
// built without CUDA or the device does not exist.
CachingAllocator& cuda_allocator(int index);

}  // namespace hone

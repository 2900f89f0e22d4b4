// CachingAllocator policy on a counting host backend, and host alignment.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <set>

#include "core/caching_allocator.h"
#include "hone/tensor.h"
#include "hone/error.h"

using namespace hone;

namespace {
struct CountingBackend {
  std::set<void*> live;
  std::size_t limit = SIZE_MAX;  // total bytes the fake device holds
  std::size_t used = 0;
  std::map<void*, std::size_t> sizes;
  void* alloc(std::size_t n) {
    if (used + n > limit) return nullptr;
    void* p = std::malloc(n);
    live.insert(p);
    sizes[p] = n;
    used += n;
    return p;
  }
  void free(void* p) {
    used -= sizes[p];
    live.erase(p);
    std::free(p);
  }
};
}  // namespace

TEST_CASE("caching allocator reuses freed blocks", "[cpu][core]") {
  CountingBackend be;
  {
    CachingAllocator a([&](std::size_t n) { return be.alloc(n); }, [&](void* p) { be.free(p); });
    void* p = a.allocate(1000);
    CHECK(a.stats().allocated == 1024);  // rounded to 512-byte granules
    a.deallocate(p);
    CHECK(a.stats().allocated == 0);
    CHECK(a.stats().reserved == 1024);
    void* q = a.allocate(900);  // fits the cached 1024-byte block
    CHECK(q == p);
    CHECK(a.stats().cache_hits == 1);
    CHECK(a.stats().raw_allocs == 1);
    void* big = a.allocate(8192);  // the cache has nothing this large
    CHECK(a.stats().raw_allocs == 2);
    a.deallocate(q);
    void* small = a.allocate(100);  // 512 after rounding; the 1024-byte block is at most twice that
    CHECK(small == q);
    a.deallocate(small);
    a.deallocate(big);                // 8192 bytes cached
    void* mid = a.allocate(2000);     // 2048: the 8192-byte block is more than twice that
    CHECK(mid != big);
    CHECK(a.stats().raw_allocs == 3);
    CHECK(a.stats().peak_allocated == 1024 + 8192);
    a.deallocate(mid);
    a.empty_cache();
    CHECK(a.stats().reserved == 0);
    CHECK(be.live.empty());
    CHECK_THROWS_WITH(a.deallocate(reinterpret_cast<void*>(0x10)), Catch::Contains("did not hand out"));
  }
  CHECK(be.live.empty());
}

TEST_CASE("caching allocator empties its cache before reporting out of memory", "[cpu][core]") {
  CountingBackend be;
  be.limit = 4096;
  CachingAllocator a([&](std::size_t n) { return be.alloc(n); }, [&](void* p) { be.free(p); });
  void* p = a.allocate(3000);
  a.deallocate(p);                 // 3072 bytes cached
  void* q = a.allocate(4096);      // needs the cache released first
  CHECK(q != nullptr);
  CHECK(a.stats().reserved == 4096);
  CHECK_THROWS_WITH(a.allocate(1), Catch::Contains("out of memory"));
  a.deallocate(q);
}

TEST_CASE("host allocations are 64-byte aligned", "[cpu][core]") {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65},
                        std::size_t{1000}, kHostCachedBytes, kHostCachedBytes + 1}) {
    void* p = host_allocate(n);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
    host_free(p, n);
  }
}

TEST_CASE("large host blocks are reused instead of returned to the system", "[cpu][core]") {
  const std::size_t n = 3 * kHostCachedBytes + 100;
  void* p = host_allocate(n);
  static_cast<char*>(p)[n - 1] = 1;
  const AllocatorStats before = host_cache_stats();
  host_free(p, n);
  void* q = host_allocate(n);
  CHECK(q == p);  // the cached block
  CHECK(host_cache_stats().raw_allocs == before.raw_allocs);
  host_free(q, n);
  {
    const Tensor t = Tensor::zeros({static_cast<std::int64_t>(n / 4)}, DType::f32);
    CHECK(t.raw() == p);  // tensors go through the same cache
    CHECK(t.to_vector<float>()[n / 4 - 1] == 0.0f);
  }
}

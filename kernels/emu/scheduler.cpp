// The emulator's scheduler: CUDA threads as Boost.Context fibers, one block at a time per OS
// thread, barriers and warp collectives that release only when complete, precise error reports.
#include "kernels/emu/emu.h"

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <sstream>

#include "hone/error.h"

#if defined(HONE_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace hone::emu {
namespace ctx = boost::context;

namespace {

// ---- schedule settings ----------------------------------------------------------------
struct Settings {
  Schedule schedule = Schedule::fwd;
  std::uint64_t seed = 1;
  std::vector<std::string> disabled;
  bool from_env = false;
};
Settings& settings() {
  static Settings s;
  if (!s.from_env) {
    s.from_env = true;
    if (const char* env = std::getenv("HONE_EMU_SCHEDULE")) {
      const std::string v(env);
      if (v == "fwd") s.schedule = Schedule::fwd;
      else if (v == "rev") s.schedule = Schedule::rev;
      else if (v.rfind("rand", 0) == 0) {
        s.schedule = Schedule::rand;
        if (v.size() > 5 && v[4] == ':') s.seed = std::strtoull(v.c_str() + 5, nullptr, 10);
      } else {
        fail("emu", cat("HONE_EMU_SCHEDULE = '", v, "': expected fwd, rev or rand[:seed]"));
      }
    }
  }
  return s;
}

std::uint64_t splitmix(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// ---- pooled guard-paged fiber stacks --------------------------------------------------
#if defined(HONE_EMU_ASAN)
constexpr std::size_t kStackBytes = 256 * 1024;
#else
constexpr std::size_t kStackBytes = 64 * 1024;
#endif

struct StackPool {
  std::vector<void*> free;  // base of each mapping (guard page first)
  std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  ~StackPool() {
    for (void* p : free) munmap(p, kStackBytes + page);
  }
};
thread_local ctx::stack_context g_last_stack;  // the stack most recently handed out

StackPool& stack_pool() {
  thread_local StackPool pool;
  return pool;
}

class PooledStack {
 public:
  ctx::stack_context allocate() {
    StackPool& pool = stack_pool();
    void* base;
    if (!pool.free.empty()) {
      base = pool.free.back();
      pool.free.pop_back();
    } else {
      base = mmap(nullptr, kStackBytes + pool.page, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base == MAP_FAILED) fail("emu", "mmap of a fiber stack failed");
      mprotect(base, pool.page, PROT_NONE);  // guard page below the stack
    }
    ctx::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = static_cast<char*>(base) + pool.page + kStackBytes;
#if defined(HONE_EMU_ASAN)
    // A reused stack keeps the shadow (redzones) of its previous fiber's frames.
    __asan_unpoison_memory_region(static_cast<char*>(base) + pool.page, kStackBytes);
#endif
    g_last_stack = sc;
    return sc;
  }
  void deallocate(ctx::stack_context& sc) noexcept {
    StackPool& pool = stack_pool();
    pool.free.push_back(static_cast<char*>(sc.sp) - kStackBytes - pool.page);
  }
};

// ---- block state ------------------------------------------------------------------------
enum class State { runnable, barrier, collective, exited };

struct Thread {
  ctx::fiber fiber;  // the suspended fiber (empty while it runs)
  ctx::fiber sink;   // where the fiber returns to (valid while it runs)
  State state = State::runnable;
  Site site;
  const char* kind = "";
  unsigned mask = 0;
  LaneRequest* req = nullptr;
  CollectiveFn fn = nullptr;
  const void* fn_ctx = nullptr;
  uint3 tid{0, 0, 0};
  AsyncQueue queue;
#if defined(HONE_EMU_ASAN)
  const void* stack_bottom = nullptr;
  std::size_t stack_size = 0;
#endif
};

struct Block {
  std::vector<Thread> threads;
  int n = 0;
  int exited = 0;
  int waiting = 0;
  Site barrier;
  std::string error;
  std::exception_ptr exception;
  int current = -1;
  unsigned char* smem = nullptr;
  std::size_t smem_bytes = 0;
  bool unwinding = false;  // after an error: suspended fibers unwind their stacks
  std::vector<unsigned> live;     // per warp: lanes that exist and have not exited
  std::vector<unsigned> pending;  // per warp: lanes waiting in a collective
#if defined(HONE_EMU_ASAN)
  const void* main_bottom = nullptr;
  std::size_t main_size = 0;
#endif
};

thread_local Block* g_block = nullptr;

// Thrown in a suspended fiber to unwind it after an error (not a std::exception).
struct FiberUnwind {};

Thread& me() { return g_block->threads[g_block->current]; }

bool same_site(const Site& a, const Site& b) {
  return a.line == b.line && std::strcmp(a.file, b.file) == 0;
}

std::string tid_str(const uint3& t) { return cat("(", t.x, ",", t.y, ",", t.z, ")"); }

#if defined(HONE_EMU_ASAN)
// Frames below this one are dead but keep the redzones they had when the fiber switched away;
// GCC 12's __asan_handle_no_return (on a throw) writes there before it unpoisons the stack.
__attribute__((noinline)) void unpoison_dead_frames(const void* bottom) {
  char* const here = static_cast<char*>(__builtin_frame_address(0)) - 256;
  char* const low = static_cast<char*>(const_cast<void*>(bottom));
  if (here > low) __asan_unpoison_memory_region(low, static_cast<std::size_t>(here - low));
}
#endif

// Suspends the running fiber and returns to the scheduler.
void yield_to_scheduler() {
  Thread& t = me();
#if defined(HONE_EMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, g_block->main_bottom, g_block->main_size);
#endif
  t.sink = std::move(t.sink).resume();
#if defined(HONE_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
  unpoison_dead_frames(me().stack_bottom);
#endif
  if (g_block->unwinding) throw FiberUnwind{};
}

// Records an error and parks the fiber forever: the scheduler throws it.
// Not [[noreturn]]: ASan's no-return hook misreads fiber stacks (google/sanitizers#189).
void block_fail(const std::string& msg) {
  if (g_block->error.empty()) g_block->error = msg;
  for (;;) yield_to_scheduler();
}

// Where each thread is, grouped: "threads 0-31 at __shfl_sync file:12; thread 40 exited".
std::string where_report(const Block& b) {
  std::ostringstream os;
  int i = 0;
  while (i < b.n) {
    const Thread& t = b.threads[i];
    auto desc = [&](const Thread& u) {
      switch (u.state) {
        case State::runnable: return std::string("runnable (not yet at a sync point)");
        case State::exited: return std::string("exited");
        case State::barrier: return "at __syncthreads " + site_str(u.site);
        case State::collective:
          return cat("at ", u.kind, " mask 0x", std::hex, u.mask, std::dec, " ", site_str(u.site));
      }
      return std::string();
    };
    const std::string d = desc(t);
    int j = i + 1;
    while (j < b.n && desc(b.threads[j]) == d) ++j;
    os << "\n  threads " << i << "-" << j - 1 << " (warp " << i / 32;
    if ((j - 1) / 32 != i / 32) os << "-" << (j - 1) / 32;
    os << "): " << d;
    i = j;
  }
  return os.str();
}

// Completes the pending collective of `warp` whose mask is `mask` if every live lane of it
// has posted. Returns true when it ran.
bool try_complete(Block& b, int warp, unsigned mask) {
  if ((mask & b.live[warp]) & ~b.pending[warp]) return false;  // a lane has yet to arrive
  const int base = warp * 32;
  unsigned live = 0, present = 0;
  for (int l = 0; l < 32 && base + l < b.n; ++l) {
    const Thread& t = b.threads[base + l];
    if (t.state != State::exited) live |= 1u << l;
    if (t.state == State::collective && t.mask == mask) present |= 1u << l;
  }
  if ((mask & live) != present || present == 0) return false;
  LaneRequest* lanes[32] = {};
  const Thread* first = nullptr;
  for (int l = 0; l < 32; ++l)
    if (present >> l & 1) {
      const Thread& t = b.threads[base + l];
      if (!first) first = &t;
      if (std::strcmp(t.kind, first->kind) != 0)
        block_fail(cat("warp ", warp, ": lanes in one collective (mask 0x", std::hex, mask,
                       std::dec, ") call different operations:", where_report(b)));
      lanes[l] = t.req;
    }
  first->fn(lanes, present, first->fn_ctx);
  for (int l = 0; l < 32; ++l)
    if (present >> l & 1) b.threads[base + l].state = State::runnable;
  b.pending[warp] &= ~present;
  return true;
}

void check_barrier_release(Block& b) {
  if (b.waiting == 0 || b.waiting != b.n - b.exited) return;
  if (b.exited > 0)
    block_fail(cat(b.exited, " thread(s) exited while ", b.waiting,
                   " wait at __syncthreads ", site_str(b.barrier), ":", where_report(b)));
  for (Thread& t : b.threads)
    if (t.state == State::barrier) t.state = State::runnable;
  b.waiting = 0;
}

void fiber_exit(Block& b) {
  Thread& t = me();
  t.state = State::exited;
  t.queue = AsyncQueue{};
  ++b.exited;
  b.live[b.current / 32] &= ~(1u << (b.current % 32));
  if (b.waiting > 0)
    block_fail(cat("thread ", tid_str(t.tid), " exited while ", b.waiting,
                   " thread(s) wait at __syncthreads ", site_str(b.barrier), ":",
                   where_report(b)));
  const int warp = b.current / 32;
  for (int l = 0; l < 32 && warp * 32 + l < b.n; ++l) {
    const Thread& u = b.threads[warp * 32 + l];
    if (u.state == State::collective && try_complete(b, warp, u.mask)) break;
  }
}

void resume(Block& b, int i) {
  b.current = i;
  Thread& t = b.threads[i];
  threadIdx = t.tid;
#if defined(HONE_EMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, t.stack_bottom, t.stack_size);
#endif
  t.fiber = std::move(t.fiber).resume();
#if defined(HONE_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  b.current = -1;
}

// Resumes every suspended fiber once so that it unwinds its stack and finishes.
void unwind_all(Block& b) {
#if defined(HONE_EMU_ASAN)
  // GCC 12's ASan misreports exceptions unwinding fiber frames (__asan_handle_no_return's
  // sigaltstack check hits stale redzones), so after an error the suspended fibers are parked,
  // not unwound: their stacks stay mapped and are LSan roots (what they own stays reachable).
  static auto* graveyard = new std::vector<ctx::fiber>();
  for (Thread& t : b.threads)
    if (t.fiber) {
      __lsan_register_root_region(t.stack_bottom, t.stack_size);
      graveyard->push_back(std::move(t.fiber));
      t.state = State::exited;
    }
  return;
#endif
  b.unwinding = true;
  for (int i = 0; i < b.n; ++i)
    if (b.threads[i].fiber) resume(b, i);
}

void run_block(Block& b, const std::function<void()>& body, std::uint64_t block_seed) {
  const Settings& s = settings();
  b.live.assign((b.n + 31) / 32, 0u);
  b.pending.assign(b.live.size(), 0u);
  for (int i = 0; i < b.n; ++i) b.live[i / 32] |= 1u << (i % 32);
  for (int i = 0; i < b.n; ++i) {
    Thread& t = b.threads[i];
    t.fiber = ctx::fiber(std::allocator_arg, PooledStack(), [&b, &body, i](ctx::fiber&& sink) {
      Thread& self = b.threads[i];
      self.sink = std::move(sink);
#if defined(HONE_EMU_ASAN)
      __sanitizer_finish_switch_fiber(nullptr, &b.main_bottom, &b.main_size);
#endif
      try {
        try {
          body();
        } catch (const std::exception&) {
          if (!b.exception) b.exception = std::current_exception();
          for (;;) yield_to_scheduler();
        }
        fiber_exit(b);
      } catch (const FiberUnwind&) {
        self.state = State::exited;
      }
#if defined(HONE_EMU_ASAN)
      __sanitizer_start_switch_fiber(nullptr, b.main_bottom, b.main_size);
#endif
      return std::move(self.sink);
    });
#if defined(HONE_EMU_ASAN)
    t.stack_bottom = static_cast<char*>(g_last_stack.sp) - g_last_stack.size;
    t.stack_size = g_last_stack.size;
#endif
  }
  std::vector<int> order(b.n);
  std::uint64_t rng = block_seed;
  for (;;) {
    for (int i = 0; i < b.n; ++i) order[i] = s.schedule == Schedule::rev ? b.n - 1 - i : i;
    if (s.schedule == Schedule::rand)
      for (int i = b.n - 1; i > 0; --i)
        std::swap(order[i], order[splitmix(rng) % static_cast<std::uint64_t>(i + 1)]);
    bool ran = false;
    for (int i : order) {
      if (b.threads[i].state != State::runnable) continue;
      ran = true;
      resume(b, i);
      if (b.exception) {
        const std::exception_ptr e = b.exception;
        unwind_all(b);
        std::rethrow_exception(e);
      }
      if (!b.error.empty()) {
        const std::string msg = b.error;
        unwind_all(b);
        fail("emu", msg);
      }
    }
    if (b.exited == b.n) return;
    if (!ran) {
      const std::string msg = cat("deadlock in block ", tid_str(blockIdx),
                                  ": no thread can run;", where_report(b));
      unwind_all(b);
      fail("emu", msg);
    }
  }
}

}  // namespace

void set_schedule(Schedule s, std::uint64_t seed) {
  settings().schedule = s;
  settings().seed = seed;
}
Schedule schedule() { return settings().schedule; }
std::uint64_t schedule_seed() { return settings().seed; }

ScopedSchedule::ScopedSchedule(Schedule s, std::uint64_t seed)
    : old_(schedule()), old_seed_(schedule_seed()) {
  set_schedule(s, seed);
}
ScopedSchedule::~ScopedSchedule() { set_schedule(old_, old_seed_); }

void disable_barrier(const std::string& spec) { settings().disabled.push_back(spec); }
void enable_all_barriers() { settings().disabled.clear(); }

std::string site_str(const Site& s) {
  const char* slash = std::strrchr(s.file, '/');
  std::string r = cat(slash ? slash + 1 : s.file, ":", s.line);
  if (s.name) r += cat(" (\"", s.name, "\")");
  return r;
}

namespace {
LaunchHooks g_hooks;
// Calls the hooks around a launch, `after` also when the launch throws.
struct HookScope {
  HookScope() {
    if (g_hooks.before) g_hooks.before();
  }
  ~HookScope() {
    if (g_hooks.after) g_hooks.after();
  }
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;
};
}  // namespace

void set_launch_hooks(LaunchHooks hooks) { g_hooks = hooks; }

void run_grid(dim3 grid, dim3 block, std::size_t smem_bytes, const std::function<void()>& body) {
  HONE_CHECK(g_block == nullptr, "emu", "launch from inside a kernel is not supported");
  const HookScope hooks;
  const long n = static_cast<long>(block.x) * block.y * block.z;
  HONE_CHECK(n >= 1 && n <= 1024, "emu", "block of ", block.x, "x", block.y, "x", block.z,
             " threads: must be 1..1024");
  HONE_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1, "emu", "empty grid");
  gridDim = grid;
  blockDim = block;
#if defined(HONE_EMU_ASAN)
  std::vector<unsigned char> smem_storage;
#else
  thread_local std::vector<unsigned char> smem_storage;
#endif
  const Settings& s = settings();
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = uint3{bx, by, bz};
        Block b;
        b.n = static_cast<int>(n);
        b.threads.resize(n);
        for (int i = 0; i < b.n; ++i)
          b.threads[i].tid = uint3{static_cast<unsigned>(i % block.x),
                                   static_cast<unsigned>(i / block.x % block.y),
                                   static_cast<unsigned>(i / (block.x * block.y))};
#if defined(HONE_EMU_ASAN)
        std::unique_ptr<unsigned char[]> smem(new unsigned char[smem_bytes ? smem_bytes : 1]);
        b.smem = smem.get();
#else
        if (smem_storage.size() < smem_bytes + 128) smem_storage.resize(smem_bytes + 128);
        b.smem = reinterpret_cast<unsigned char*>(
            (reinterpret_cast<std::uintptr_t>(smem_storage.data()) + 127) & ~std::uintptr_t(127));
#endif
        b.smem_bytes = smem_bytes;
        std::memset(b.smem, 0xFF, smem_bytes);
        g_block = &b;
        std::uint64_t seed = s.seed ^ (((static_cast<std::uint64_t>(bz) * grid.y + by) * grid.x + bx) * 0x9E3779B97F4A7C15ull);
        try {
          run_block(b, body, seed);
        } catch (...) {
          g_block = nullptr;
          throw;  // Block's destructor unwinds the suspended fibers
        }
        g_block = nullptr;
      }
}

void syncthreads(const Site& site) {
  Block& b = *g_block;
  for (const std::string& d : settings().disabled)
    if ((site.name && d == site.name) || d == site_str(Site{site.file, site.line, nullptr}))
      return;
  if (b.waiting > 0 && !same_site(b.barrier, site))
    block_fail(cat("divergent __syncthreads: thread ", tid_str(me().tid), " at ",
                   site_str(site), " while ", b.waiting, " thread(s) wait at ",
                   site_str(b.barrier), ":", where_report(b)));
  Thread& t = me();
  t.state = State::barrier;
  t.site = site;
  b.barrier = site;
  ++b.waiting;
  check_barrier_release(b);
  if (t.state != State::runnable) yield_to_scheduler();
}

unsigned char* dynamic_smem() { return g_block->smem; }
std::size_t dynamic_smem_bytes() { return g_block->smem_bytes; }
int linear_tid() { return g_block->current; }
int lane_id() { return g_block->current % 32; }

unsigned live_lanes() { return g_block->live[g_block->current / 32]; }

void warp_collective(const char* kind, unsigned mask, LaneRequest* req, CollectiveFn fn,
                     const void* fn_ctx, const Site& s) {
  Block& b = *g_block;
  Thread& t = me();
  const int lane = b.current % 32;
  if (!(mask >> lane & 1))
    block_fail(cat(kind, " at ", site_str(s), ": lane ", lane, " calls it with mask 0x",
                   std::hex, mask, std::dec, " that does not include itself"));
  t.state = State::collective;
  t.kind = kind;
  t.mask = mask;
  t.req = req;
  t.fn = fn;
  t.fn_ctx = fn_ctx;
  t.site = s;
  b.pending[b.current / 32] |= 1u << lane;
  try_complete(b, b.current / 32, mask);
  if (t.state != State::runnable) yield_to_scheduler();
}

AsyncQueue& async_queue() { return me().queue; }

void async_wait(int newest_kept) {
  AsyncQueue& q = me().queue;
  const int n = static_cast<int>(q.groups.size()) - newest_kept;
  for (int g = 0; g < n; ++g)
    for (const AsyncCopy& c : q.groups[g]) {
      std::memcpy(c.dst, c.src, c.src_bytes);
      std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
    }
  if (n > 0) q.groups.erase(q.groups.begin(), q.groups.begin() + n);
}

}  // namespace hone::emu

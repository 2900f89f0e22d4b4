// The CUDA execution-model emulator's runtime API: grids of fibers, barriers, warp collectives.
// Kernel authors use kernels/common/compat.cuh; this header is what compat.cuh and ptx.cuh call.
#pragma once
#include <vector_types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

// The CUDA built-in variables: set by the scheduler before each fiber resume.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

namespace hone::emu {

// The order in which runnable fibers are resumed between synchronisation points.
enum class Schedule { fwd, rev, rand };

// Sets the schedule for later launches (overrides HONE_EMU_SCHEDULE = fwd | rev | rand[:seed]).
void set_schedule(Schedule s, std::uint64_t seed = 1);
Schedule schedule();
std::uint64_t schedule_seed();

// Sets the schedule for one scope and restores the previous one after.
class ScopedSchedule {
 public:
  explicit ScopedSchedule(Schedule s, std::uint64_t seed = 1);
  ~ScopedSchedule();
  ScopedSchedule(const ScopedSchedule&) = delete;
  ScopedSchedule& operator=(const ScopedSchedule&) = delete;

 private:
  Schedule old_;
  std::uint64_t old_seed_;
};

// Mutation testing: a disabled barrier returns at once. `spec` is the barrier's name
// (HONE_SYNC("name")) or "file-basename:line" of a __syncthreads() call.
void disable_barrier(const std::string& spec);
void enable_all_barriers();

// Where a synchronisation call is in the source.
struct Site {
  const char* file = "";
  int line = 0;
  const char* name = nullptr;  // HONE_SYNC("name"), else null
};
std::string site_str(const Site& s);

// Runs `body` once per CUDA thread of every block of `grid`, one block at a time.
void run_grid(dim3 grid, dim3 block, std::size_t smem_bytes, const std::function<void()>& body);

// Called around every run_grid (null: nothing). The emulated engine's CUDA runtime opens its
// device memory to the host for the length of a launch and closes it again afterwards, so host
// code that reads device memory outside kernels and copies faults there as it would on a GPU.
struct LaunchHooks {
  void (*before)() = nullptr;
  void (*after)() = nullptr;
};
void set_launch_hooks(LaunchHooks hooks);

// __syncthreads: waits until every live thread of the block is at the same barrier.
void syncthreads(const Site& s);

// The block's dynamic shared memory (poisoned with 0xFF bytes at block start).
unsigned char* dynamic_smem();
std::size_t dynamic_smem_bytes();

// Linear thread index in the block, warp index and lane of the current CUDA thread.
int linear_tid();
int lane_id();
unsigned live_lanes();  // lanes of the current warp that exist and have not exited

// One lane's part of a warp collective. `in` and `out` point to the lane's own storage.
struct LaneRequest {
  const void* in = nullptr;
  void* out = nullptr;
};
// Computes every present lane's result: lanes[l] is null for lanes not taking part.
using CollectiveFn = void (*)(LaneRequest* const* lanes, unsigned present, const void* ctx);

// Posts this lane's request and returns once all lanes of `mask` (less exited lanes) have
// posted and the last of them ran `fn`. `kind` names the operation (all lanes must agree).
void warp_collective(const char* kind, unsigned mask, LaneRequest* req, CollectiveFn fn,
                     const void* ctx, const Site& s);

// The cp.async queue of the current CUDA thread.
struct AsyncCopy {
  void* dst;
  const void* src;
  int bytes;      // copied bytes
  int src_bytes;  // bytes read from src; the rest zero-filled
};
struct AsyncQueue {
  std::vector<AsyncCopy> open;                   // not yet committed
  std::vector<std::vector<AsyncCopy>> groups;    // committed, oldest first
};
AsyncQueue& async_queue();
void async_wait(int newest_kept);  // performs all committed groups but the newest `n`

}  // namespace hone::emu

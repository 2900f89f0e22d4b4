// Deliberately broken kernels (and their correct twins) proving the emulator catches missing
// barriers, divergent barriers, early exits, missing shuffle lanes and missing cp.async waits.
#include "kernels/common/compat.cuh"
#include "kernels/common/ptx.cuh"

namespace hone::kernels::emu_test {

// out[i] = in[i+1 (mod block)] through shared memory; without the barrier it races.
__global__ void rotate_kernel(const float* in, float* out, int sync) {
  HONE_DYNAMIC_SMEM(float, s);
  const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
  s[t] = in[base + t];
  if (sync) HONE_SYNC("rotate");
  out[base + t] = s[(t + 1) % blockDim.x];
}

__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void early_exit_kernel(int* out) {
  if (threadIdx.x == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void missing_lane_kernel(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x % 32 != 5) v = __shfl_xor_sync(0xffffffffu, v, 1);
  __syncthreads();
  out[threadIdx.x] = v;
}

// Lanes that exited drop out of the mask: the other lanes' shuffle completes.
__global__ void exited_lane_kernel(int* out) {
  if (threadIdx.x % 32 == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 2);
}

// Each thread copies 4 floats with cp.async and reads them back (with or without the wait).
__global__ void cp_async_kernel(const float* in, float* out, int wait) {
  HONE_DYNAMIC_SMEM(float, s);
  const int t = threadIdx.x;
  ptx::cp_async<16>(&s[4 * t], &in[4 * t]);
  ptx::cp_async<8>(&s[4 * blockDim.x + 2 * t], &in[4 * t]);
  ptx::cp_async_commit();
  ptx::cp_async<4>(&s[6 * blockDim.x + t], &in[4 * t]);
  ptx::cp_async_commit();
  if (wait == 2) ptx::cp_async_wait<0>();
  if (wait == 1) ptx::cp_async_wait<1>();  // the newest group (4-byte copy) stays in flight
  for (int j = 0; j < 4; ++j) out[7 * t + j] = s[4 * t + j];
  for (int j = 0; j < 2; ++j) out[7 * t + 4 + j] = s[4 * blockDim.x + 2 * t + j];
  out[7 * t + 6] = s[6 * blockDim.x + t];
}

void run_rotate(const float* in, float* out, int blocks, int threads, bool sync) {
  launch(rotate_kernel, dim3(blocks), dim3(threads), threads * sizeof(float), nullptr, in, out,
         sync ? 1 : 0);
}
void run_divergent_barrier(int* out) {
  launch(divergent_barrier_kernel, dim3(1), dim3(8), 0, nullptr, out);
}
void run_early_exit(int* out) { launch(early_exit_kernel, dim3(1), dim3(8), 0, nullptr, out); }
void run_missing_lane(int* out) {
  launch(missing_lane_kernel, dim3(1), dim3(64), 0, nullptr, out);
}
void run_exited_lane(int* out) { launch(exited_lane_kernel, dim3(1), dim3(32), 0, nullptr, out); }
void run_cp_async(const float* in, float* out, int threads, int wait) {
  launch(cp_async_kernel, dim3(1), dim3(threads), 7 * threads * sizeof(float), nullptr, in, out,
         wait);
}

}  // namespace hone::kernels::emu_test

// Test kernels for the emulator's basics: vector add, shared-memory block reduction, warp
// shuffle reduction, votes and atomics. Compiled by g++ (emulated) and by nvcc (compile check).
#include "kernels/common/compat.cuh"

namespace hone::kernels::emu_test {

__global__ void vector_add_kernel(const float* a, const float* b, float* c, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

// out[block] = sum of the block's elements; blockDim.x is a power of two.
__global__ void block_sum_kernel(const float* x, float* out, int n) {
  HONE_DYNAMIC_SMEM(float, s);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  s[threadIdx.x] = i < n ? x[i] : 0.0f;
  HONE_SYNC("block_sum.load");
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
    HONE_SYNC("block_sum.step");
  }
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// Each warp: out_xor[warp] by butterfly, out_down[warp] by shift-down, prefix[i] by shift-up.
__global__ void warp_sum_kernel(const int* x, int* out_xor, int* out_down, int* prefix,
                                int* broadcast) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % 32, warp = i / 32;
  int a = x[i], b = x[i], p = x[i];
  for (int off = 16; off > 0; off /= 2) a += __shfl_xor_sync(0xffffffffu, a, off);
  for (int off = 16; off > 0; off /= 2) b += __shfl_down_sync(0xffffffffu, b, off);
  for (int off = 1; off < 32; off *= 2) {
    const int v = __shfl_up_sync(0xffffffffu, p, off);
    if (lane >= off) p += v;
  }
  prefix[i] = p;
  broadcast[i] = __shfl_sync(0xffffffffu, x[i], 7);
  if (lane == 0) {
    out_xor[warp] = a;
    out_down[warp] = b;
  }
}

__global__ void vote_kernel(const int* x, unsigned* ballot, int* any, int* all) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned b = __ballot_sync(0xffffffffu, x[i] > 0);
  const int y = __any_sync(0xffffffffu, x[i] > 0);
  const int z = __all_sync(0xffffffffu, x[i] > 0);
  __syncwarp();
  if (threadIdx.x % 32 == 0) {
    ballot[i / 32] = b;
    any[i / 32] = y;
    all[i / 32] = z;
  }
}

__global__ void atomic_kernel(int* count, float* sum, int* max_index, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  atomicAdd(count, 1);
  atomicAdd(sum, 0.5f);
  atomicMax(max_index, i);
}

// Static __shared__ (one copy per block; unlike dynamic shared memory it is not poisoned).
__global__ void shared_count_kernel(int* out) {
  __shared__ int count;
  if (threadIdx.x == 0) count = 0;
  __syncthreads();
  atomicAdd(&count, 1);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = count;
}

void run_shared_count(int* out, int blocks, int threads) {
  launch(shared_count_kernel, dim3(blocks), dim3(threads), 0, nullptr, out);
}
void run_vector_add(const float* a, const float* b, float* c, int n) {
  const int threads = 64;
  launch(vector_add_kernel, dim3((n + threads - 1) / threads), dim3(threads), 0, nullptr, a, b,
         c, n);
}
void run_block_sum(const float* x, float* out, int n, int threads) {
  launch(block_sum_kernel, dim3((n + threads - 1) / threads), dim3(threads),
         threads * sizeof(float), nullptr, x, out, n);
}
void run_warp_sum(const int* x, int* out_xor, int* out_down, int* prefix, int* broadcast,
                  int n) {
  launch(warp_sum_kernel, dim3(n / 64), dim3(64), 0, nullptr, x, out_xor, out_down, prefix,
         broadcast);
}
void run_vote(const int* x, unsigned* ballot, int* any, int* all, int n) {
  launch(vote_kernel, dim3(n / 64), dim3(64), 0, nullptr, x, ballot, any, all);
}
void run_atomic(int* count, float* sum, int* max_index, int n) {
  launch(atomic_kernel, dim3((n + 31) / 32), dim3(32), 0, nullptr, count, sum, max_index, n);
}

}  // namespace hone::kernels::emu_test

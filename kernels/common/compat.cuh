// One header for kernel sources: real CUDA under nvcc, the CPU emulator (kernels/emu) under g++.
// Kernel-author API beyond CUDA itself:
//   HONE_DYNAMIC_SMEM(Type, name)  declares `Type* name` on the block's dynamic shared memory
//   HONE_SYNC("name")              a __syncthreads() with a name (for emu::disable_barrier)
//   hone::kernels::launch(kernel, grid, block, smem_bytes, stream, args...)
//   kernels/common/ptx.cuh         mma.sync, ldmatrix, cp.async (the only inline PTX)
// Under the emulator (kernels/emu/emu.h): blocks run one after another on the calling OS
// thread; schedules fwd/rev/rand[:seed] via hone::emu::set_schedule / ScopedSchedule or the
// env var HONE_EMU_SCHEDULE; hone::emu::disable_barrier("name" or "file.cu:line") for mutation
// tests; -DHONE_EMU_ASAN=ON for AddressSanitizer. Emulated sources must not include
// cuda_runtime.h. Static __shared__ keeps the previous block's contents (not poisoned): prefer
// one dynamic SharedStorage struct through HONE_DYNAMIC_SMEM.
#pragma once

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#define HONE_DYNAMIC_SMEM(Type, name)                                     \
  extern __shared__ __align__(128) unsigned char hone_dynamic_smem_raw_[]; \
  Type* name = reinterpret_cast<Type*>(hone_dynamic_smem_raw_)
#define HONE_SYNC(name) __syncthreads()

namespace hone::kernels {

template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem_bytes,
            cudaStream_t stream, A&&... args) {
  kernel<<<grid, block, smem_bytes, stream>>>(std::forward<A>(args)...);
}

}  // namespace hone::kernels

#else  // the emulator

#include "kernels/emu/device_api.h"

#define HONE_DYNAMIC_SMEM(Type, name) \
  Type* name = reinterpret_cast<Type*>(::hone::emu::dynamic_smem())
#define HONE_SYNC(name) \
  ::hone::emu::syncthreads(::hone::emu::Site{__FILE__, __LINE__, (name)})

#endif

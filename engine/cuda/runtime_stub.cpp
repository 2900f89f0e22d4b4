// CUDA runtime services when hone is built without CUDA: no devices; everything else throws.
#include "cuda/runtime.h"

#include "hone/error.h"

namespace hone::cuda {

bool built_with_cuda() { return false; }
int device_count() { return 0; }
void* device_malloc(int, std::size_t) { fail("cuda", "hone was built without CUDA"); }
void device_free(int, void*) {}
void copy(void*, const void*, std::size_t, CopyKind) { fail("cuda", "hone was built without CUDA"); }
void memset_zero(void*, std::size_t) { fail("cuda", "hone was built without CUDA"); }
void device_synchronize(int) {}

}  // namespace hone::cuda

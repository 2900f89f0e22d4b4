// Scratch buffers for the CPU reference, 64-byte aligned: Eigen's vectorised reductions peel
// unaligned heads at run time, so a buffer whose alignment varied from run to run (malloc gives
// 16 bytes) would change the summation order, and the results, with AVX.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace hone::cpu {

template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};

template <class T>
using ScratchVector = std::vector<T, Aligned64<T>>;

}  // namespace hone::cpu

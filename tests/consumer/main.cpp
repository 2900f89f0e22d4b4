// Uses the installed hone headers (no CUDA types needed) and library; exits non-zero on any
// wrong value.
#include <cstdio>

#include "hone/hone.h"

int main() {
  using hone::Tensor;
  const Tensor t = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor row = t.select(1);
  const auto v = row.to(hone::DType::f64).to_vector<double>();
  if (v.size() != 3 || v[0] != 4.0 || v[2] != 6.0) {
    std::fprintf(stderr, "consumer: wrong tensor values\n");
    return 1;
  }
  try {
    (void)t.view({4, 2});
    std::fprintf(stderr, "consumer: bad view did not throw\n");
    return 1;
  } catch (const hone::Error& e) {
    std::printf("caught as expected: %s\n", e.what());
  }
  const hone::Philox4 r = hone::philox_block(0, 0);
  std::printf("hone %s, philox word %08x, %s\n", hone::version(), r.x[0], t.str().c_str());
  return 0;
}

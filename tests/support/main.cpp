// Catch2 main shared by the test binaries. A binary built with HONE_TEST_NEEDS_GPU exits with
// the skip code (77, registered as ctest's SKIP_RETURN_CODE) when no CUDA device is present, so
// its tests show as skipped rather than passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "hone/device.h"

int main(int argc, char** argv) {
#ifdef HONE_TEST_NEEDS_GPU
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]).rfind("--list", 0) == 0) listing = true;
  if (!listing && hone::cuda_device_count() == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 77;
  }
#endif
  return Catch::Session().run(argc, argv);
}

// The Catch2 tag of a device test: "[gpu]" when it runs on a CUDA device (skipped without one),
// "[emu]" when the same source is compiled against the emulated engine (tests/emulated), where
// cuda:0 is the kernel emulator on the CPU — tens of times slower than a CPU loop, so the
// largest shapes of a test may shrink there (kEmulatedDevice).
#pragma once

#ifdef HONE_EMU
#define HONE_DEVICE_TAG "[emu]"
#else
#define HONE_DEVICE_TAG "[gpu]"
#endif

namespace hone::test {
#ifdef HONE_EMU
inline constexpr bool kEmulatedDevice = true;
#else
inline constexpr bool kEmulatedDevice = false;
#endif
}  // namespace hone::test

// Warp votes (__ballot_sync, __any_sync, __all_sync, __syncwarp) on the emulator's collectives.
#include "kernels/emu/device_api.h"

namespace hone::emu {

void vote_fn(LaneRequest* const* lanes, unsigned present, const void*) {
  unsigned ballot = 0;
  for (int l = 0; l < 32; ++l)
    if ((present >> l & 1) && *static_cast<const int*>(lanes[l]->in)) ballot |= 1u << l;
  for (int l = 0; l < 32; ++l)
    if (present >> l & 1) *static_cast<unsigned*>(lanes[l]->out) = ballot;
}

unsigned vote(const char* kind, unsigned mask, int pred, const Site& s) {
  const int in = pred != 0;
  unsigned out = 0;
  LaneRequest req{&in, &out};
  warp_collective(kind, mask, &req, &vote_fn, nullptr, s);
  return out;
}

}  // namespace hone::emu

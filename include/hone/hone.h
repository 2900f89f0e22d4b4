// The hone public API in one include.
#pragma once
#include "hone/device.h"
#include "hone/dtype.h"
#include "hone/error.h"
#include "hone/log.h"
#include "hone/random.h"
#include "hone/tensor.h"

namespace hone {
const char* version();  // "0.1.0"
}

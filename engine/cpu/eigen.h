// Eigen for the CPU reference: include it through this header. GCC 12 reports Eigen's AVX-512
// packet code, which starts from _mm512_undefined_*(), as possibly uninitialised wherever it is
// inlined; the values are defined. The warning is placed at the intrinsics' own lines, so it is
// turned off before Eigen is read, for the rest of the including file.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <Eigen/Dense>

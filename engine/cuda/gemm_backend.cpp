// GEMM backend selection (see gemm_backend.h).
#include "cuda/gemm_backend.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "cuda/runtime.h"
#include "hone/error.h"

namespace hone::ops {

namespace {

std::once_flag g_env_read;
std::atomic<GemmBackend> g_backend{GemmBackend::cublas};

void read_env_once() {
  std::call_once(g_env_read, [] { g_backend = gemm_backend_from_env(std::getenv("HONE_GEMM")); });
}

}  // namespace

std::string_view gemm_backend_name(GemmBackend b) {
  return b == GemmBackend::hone ? "hone" : "cublas";
}

GemmBackend parse_gemm_backend(std::string_view name) {
  if (name == "hone") return GemmBackend::hone;
  if (name == "cublas") return GemmBackend::cublas;
  fail("gemm", cat("unknown GEMM backend '", name, "' (expected hone or cublas)"));
}

bool gemm_backend_available(GemmBackend b) {
  if (!cuda::built_with_cuda()) return false;
#ifdef HONE_HAVE_GEMM_KERNEL
  return true;
#else
  return b == GemmBackend::cublas;
#endif
}

GemmBackend default_gemm_backend() {
  return gemm_backend_available(GemmBackend::hone) ? GemmBackend::hone : GemmBackend::cublas;
}

GemmBackend gemm_backend_from_env(const char* value) {
  if (value == nullptr || *value == '\0') return default_gemm_backend();
  const std::string_view name(value);
  HONE_CHECK(name == "hone" || name == "cublas", "gemm", "HONE_GEMM='", name,
             "' is not a GEMM backend (expected hone or cublas)");
  const GemmBackend b = parse_gemm_backend(name);
  HONE_CHECK(gemm_backend_available(b), "gemm", "HONE_GEMM='", name,
             "' asks for a backend this build lacks (",
             cuda::built_with_cuda() ? "kernels/gemm is not compiled in" : "built without CUDA",
             ")");
  return b;
}

void set_gemm_backend(GemmBackend b) {
  HONE_CHECK(gemm_backend_available(b), "gemm", "GEMM backend '", gemm_backend_name(b),
             "' is not available in this build (",
             cuda::built_with_cuda() ? "kernels/gemm is not compiled in" : "built without CUDA",
             ")");
  std::call_once(g_env_read, [] {});  // an explicit choice wins: HONE_GEMM is never read
  g_backend = b;
}

GemmBackend gemm_backend() {
  read_env_once();
  return g_backend;
}

}  // namespace hone::ops

#!/usr/bin/env bash
# Builds the GPU check's binaries here, for a GPU machine that has the CUDA driver and cuBLAS but
# none of the project's build dependencies: every tests/gpu/test_gpu*.cpp binary, the device
# benchmarks (bench_gpu, bench_gpu_kernels, bench_generate, bench_train, bench_memory) and the
# hone command, for sm_90a (Hopper), into .gpu/bin.tar.xz (ignored by git; xz-compressed, about
# 20 MiB for 110 MiB of binaries). benchmarks/gpu_check.sh unpacks and runs them there.
#
#   scripts/build_gpu_bundle.sh [--out DIR] [--build-dir DIR] [--families "random;gemm"]
#                               [--cudnn-frontend DIR|none]
#
# Linked in: the CUDA runtime (libcudart_static), libstdc++, libgcc and libgomp; the static
# library of hone itself. Left shared: cuBLAS and cuBLASLt (hundreds of MB as static libraries;
# gpu_check.sh finds them in the machine's NVIDIA pip wheels or CUDA toolkit), and for the cuDNN
# attention baseline cuDNN and NVRTC (found the same way), and glibc. The bundle is kept under
# 64 MiB so that it travels with a checkout; the script checks.
#
# The cuDNN attention baseline (benchmarks/cudnn_attention.h, in bench_gpu and
# test_gpu_attention_cudnn) needs the header-only cuDNN frontend at build time only: it is
# fetched once as PyPI's nvidia-cudnn-frontend wheel (pip download, pinned) into the build
# directory and its include/ folder passed as HONE_CUDNN_FRONTEND_INCLUDE (and packed into
# OUT/cudnn-frontend.tar.gz for gpu_check.sh's source mode). --cudnn-frontend DIR takes headers
# already at hand; none builds without the baseline. Without network the fetch fails with a
# warning, and the baseline is left out unless CMake finds the headers itself.
set -euo pipefail

out=.gpu
build_dir=build-gpu-bundle
families=""
cudnn_frontend=fetch
cudnn_frontend_version=1.32.0  # the version benchmarks/CMakeLists.txt asks for at least
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --families) families=$2; shift ;;
    --cudnn-frontend) cudnn_frontend=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_gpu_bundle: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/cuda/bin"
command -v nvcc >/dev/null || { echo "build_gpu_bundle: nvcc not found" >&2; exit 1; }
cuda_lib=$(dirname "$(dirname "$(command -v nvcc)")")/lib64
gomp=$(g++ -print-file-name=libgomp.a)

cmake_args=(-S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DHONE_CUDA=ON
  -DCMAKE_CUDA_ARCHITECTURES=90a -DHONE_BUILD_CLI=ON -DHONE_BUILD_TESTS=ON
  -DHONE_BUILD_BENCHMARKS=ON "-DHONE_KERNEL_FAMILIES=$families" -DHONE_CPU_ARCH=x86-64-v3
  # The CUDA runtime and OpenMP as static archives; the C++ runtime linked in.
  "-DCUDA_cudart_LIBRARY=$cuda_lib/libcudart_static.a"
  "-DOpenMP_gomp_LIBRARY=$gomp"
  "-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc -Wl,--as-needed")
command -v ninja >/dev/null && cmake_args+=(-G Ninja)

# The cuDNN frontend headers (build time only; the binaries carry what they use of them).
fetch_cudnn_frontend() {
  local dir="$build_dir/cudnn-frontend/$cudnn_frontend_version"
  if [[ ! -f "$dir/include/cudnn_frontend.h" ]]; then
    mkdir -p "$dir/wheel"
    # Any CPython tag will do: the headers are the same in every wheel of a version.
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --implementation cp --platform manylinux_2_28_x86_64 -d "$dir/wheel" \
        "nvidia-cudnn-frontend==$cudnn_frontend_version" >&2 || return 1
    python3 - "$dir" <<'PY' || return 1
import glob, sys, zipfile
dest = sys.argv[1]
(wheel,) = glob.glob(dest + "/wheel/nvidia_cudnn_frontend-*.whl")
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("include/")])
PY
  fi
  [[ -f "$dir/include/cudnn_frontend.h" ]] && echo "$dir/include"
}
fe_include=""
case "$cudnn_frontend" in
  none) cmake_args+=(-DHONE_CUDNN_ATTENTION=OFF) ;;
  fetch)
    cmake_args+=(-DHONE_CUDNN_ATTENTION=ON)
    if ! fe_include=$(fetch_cudnn_frontend); then
      fe_include=""
      echo "build_gpu_bundle: warning: could not fetch nvidia-cudnn-frontend==$cudnn_frontend_version (no network?); the cuDNN attention baseline is built only if CMake finds the headers itself" >&2
    fi ;;
  *)
    [[ -f "$cudnn_frontend/cudnn_frontend.h" ]] || { echo "build_gpu_bundle: no cudnn_frontend.h in $cudnn_frontend" >&2; exit 2; }
    cmake_args+=(-DHONE_CUDNN_ATTENTION=ON)
    fe_include=$cudnn_frontend ;;
esac
if [[ -n "$fe_include" ]]; then
  fe_include=$(cd "$fe_include" && pwd)
  cmake_args+=("-DHONE_CUDNN_FRONTEND_INCLUDE=$fe_include")
fi
configure_log=$(cmake "${cmake_args[@]}")
baseline=$(grep -o 'cuDNN attention baseline.*' <<<"$configure_log" || echo 'cuDNN attention baseline: not reported')
echo "build_gpu_bundle: $baseline"

benches=(bench_gpu bench_gpu_kernels bench_generate bench_train bench_memory)
targets=("${benches[@]}")
for src in tests/gpu/test_gpu*.cpp; do targets+=("$(basename "$src" .cpp)"); done
cmake --build "$build_dir" --target "${targets[@]}" hone_cli -j "$(nproc)"

rm -rf "$out/bin"
mkdir -p "$out/bin"
for b in "${benches[@]}"; do cp "$build_dir/benchmarks/$b" "$out/bin/"; done
for t in "${targets[@]:${#benches[@]}}"; do cp "$build_dir/tests/$t" "$out/bin/"; done
cp "$build_dir/bindings/cli/hone" "$out/bin/"  # gpu_check's end-to-end run of the command
strip --strip-unneeded "$out"/bin/*
# The frontend headers too (0.5 MB compressed), for gpu_check.sh's source mode on a machine
# without network.
rm -f "$out/cudnn-frontend.tar.gz"
[[ -n "$fe_include" ]] && tar -C "$fe_include" -czf "$out/cudnn-frontend.tar.gz" .
{
  echo "hone $(git describe --always --dirty 2>/dev/null || echo unknown), built $(date -u +%Y-%m-%dT%H:%MZ), sm_90a, nvcc $(nvcc --version | grep -o 'release [0-9.]*' | cut -d' ' -f2)"
  echo "kernel families: ${families:-all}"
  echo "$baseline"
  for f in "$out"/bin/*; do
    echo "$(basename "$f") needs: $(ldd "$f" 2>/dev/null | awk '/=>/ {print $1}' | grep -v -E '^(linux-vdso|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|ld-linux)' | paste -sd' ' -)"
  done
} >"$out/BUILD_INFO"
cat "$out/BUILD_INFO"
# The binaries travel compressed (xz: about a fifth of their size); gpu_check.sh unpacks them.
tar -C "$out" -cf - bin | xz -T0 -6 >"$out/bin.tar.xz"
rm -rf "$out/bin"

size_kib=$(du -sk "$out" | cut -f1)
echo "build_gpu_bundle: $out is $(( size_kib / 1024 )) MiB ($size_kib KiB)"
if (( size_kib > 64 * 1024 )); then
  echo "build_gpu_bundle: over the 64 MiB limit of a bundle" >&2
  exit 1
fi

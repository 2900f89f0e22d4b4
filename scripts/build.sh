#!/usr/bin/env bash
# Configures (once) and builds hone in ./build (Release, ccache when present).
# Usage: scripts/build.sh [cmake --build arguments, e.g. --target hone_cli]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${HONE_BUILD_DIR:-build}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${HONE_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" --parallel "$(nproc)" "$@"

#!/usr/bin/env bash
# Sets up, builds everything and runs every test under ctest. Tests labelled gpu report
# "Skipped" on a machine without a CUDA device. Usage: scripts/test.sh [ctest options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd "${HONE_BUILD_DIR:-build}"
ctest --output-on-failure --parallel "$(nproc)" "$@"

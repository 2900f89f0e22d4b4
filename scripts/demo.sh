#!/usr/bin/env bash
# The main job on its embedded default: sets up, builds the hone command and runs the demo
# (a small language model trained end to end on the CPU). Usage: scripts/demo.sh [demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh --target hone_cli
exec "${HONE_BUILD_DIR:-build}/bindings/cli/hone" demo "$@"

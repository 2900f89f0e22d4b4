#!/usr/bin/env bash
# Installs what building and testing hone needs on a Debian machine, and nothing when it is
# all present (a few dpkg queries). The CUDA toolkit is optional: without nvcc the CPU backend
# is built alone. Usage: scripts/setup.sh
set -euo pipefail

packages=(cmake g++ make pkg-config ccache libeigen3-dev catch2 libcli11-dev nlohmann-json3-dev
          libpcre2-dev libboost-context-dev liblzma-dev)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake_version=$(cmake --version | head -n1 | awk '{print $3}')
if [ "$(printf '%s\n3.25\n' "$cmake_version" | sort -V | head -n1)" != "3.25" ]; then
  echo "setup: cmake $cmake_version is older than 3.25" >&2
  exit 1
fi
if command -v nvcc >/dev/null 2>&1; then
  echo "setup: ok ($(nvcc --version | grep -o 'release [0-9.]*'); CUDA backend will be built)"
else
  echo "setup: ok (no nvcc on PATH: CPU backend only)"
fi

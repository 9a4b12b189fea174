#!/usr/bin/env bash
# Installs p2l's Debian 12 build dependencies (only those missing) and builds into build/
# (or $BUILD_DIR). Extra arguments go to CMake, e.g. -DTorch_DIR=/opt/libtorch/share/cmake/Torch.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build ccache pkg-config
          libtorch-dev libopenblas0-pthread libpng-dev libjpeg62-turbo-dev nlohmann-json3-dev libyaml-cpp-dev
          libcli11-dev libgtest-dev libicu-dev libzip-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build_dir" -j"$(nproc)"

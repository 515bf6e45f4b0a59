#!/usr/bin/env bash
# Configures and builds pmpd into ${BUILD_DIR:-build} (Release, Ninja). Extra arguments go to cmake.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
torch_prefix=$("$root/scripts/pmpd-env.sh" | sed -n 2p)
mkdir -p "$build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_PREFIX_PATH="$torch_prefix" "$@" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)"

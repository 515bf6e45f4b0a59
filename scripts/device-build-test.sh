#!/usr/bin/env bash
# On the GPU machine (device tool, with `.device` carried; see scripts/prepare-device-extras.sh):
# builds pmpd against PyTorch's LibTorch with CUDA for sm_90a and runs every test, GPU ones included.
# Logs go to $OUT when set. Usage: scripts/device-build-test.sh [extra ctest args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp}
source "$root/scripts/device-env.sh"
T=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake -S "$root" -B "$root/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
      -DCMAKE_PREFIX_PATH="$T;$root/.device/absl/usr" >"$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
cmake --build "$root/build-gpu" -j16 >"$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
cd "$root/build-gpu"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} ctest --output-on-failure -j4 "$@" 2>&1 | tee "$out/ctest.log" | tail -15

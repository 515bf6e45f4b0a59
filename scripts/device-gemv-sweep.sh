#!/usr/bin/env bash
# On the GPU machine: build and run the GEMV configuration sweep (bench/sweeps/gemv_mma_sweep.cu;
# standalone nvcc build, no CMake). Usage: scripts/device-gemv-sweep.sh [CONFIG]: every configuration,
# or only those whose name contains CONFIG (v7, the reference, always runs). Output: a markdown table
# on stdout and in ${OUT:-/tmp}/gemv_mma_sweep.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
nvcc -O3 -std=c++17 -arch=sm_90a -lineinfo -I. bench/sweeps/gemv_mma_sweep.cu -o /tmp/gemv_mma_sweep
if [[ $# -eq 0 ]]; then
  /tmp/gemv_mma_sweep | tee "$out/gemv_mma_sweep.md"
  exit 0
fi
for shape in "4096 4096" "12288 4096" "22016 4096" "11008 4096" "4096 11008"; do
  for bits in 2 3 4; do
    # shellcheck disable=SC2086
    /tmp/gemv_mma_sweep "$bits" $shape "$1" | if [[ $shape == "4096 4096" && $bits == 2 ]]; then cat; else grep "^| [0-9]"; fi
  done
done | tee "$out/gemv_mma_sweep.md"

#!/usr/bin/env bash
# On the GPU machine: build and run the GEMV sweep (bench/sweeps/gemv_mma_sweep.cu; standalone nvcc
# build, no CMake): v7 against the tensor-core kernel over the issue-15 shapes, p = 2..4 and 1, 2,
# 4, 8 tokens. Usage: scripts/device-gemv-sweep.sh [ARGS of gemv_mma_sweep]. Output: a markdown
# table on stdout and in ${OUT:-/tmp}/gemv_mma_sweep.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
nvcc -O3 -std=c++17 -arch=sm_90a -lineinfo -I. bench/sweeps/gemv_mma_sweep.cu -o /tmp/gemv_mma_sweep
/tmp/gemv_mma_sweep "$@" | tee "$out/gemv_mma_sweep.md"

#!/usr/bin/env bash
# The README's test command: install dependencies, build, run every test through ctest.
# GPU tests (label `gpu`) skip with a message on machines without a CUDA device.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/check_format.sh"  # clang-format --dry-run -Werror over the tree (seconds)
"$root/scripts/build.sh" "$@"
cd "${BUILD_DIR:-$root/build}"
# One intra-op thread per test process: ctest already runs one test per core, and LibTorch's OpenMP
# threads spinning on an oversubscribed machine made heavy tests several times slower.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} ctest --output-on-failure -j"$(nproc)"

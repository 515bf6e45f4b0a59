#!/usr/bin/env bash
# The README's test command: install dependencies, build, run every test through ctest.
# GPU tests (label `gpu`) skip with a message on machines without a CUDA device.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$@"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j"$(nproc)"

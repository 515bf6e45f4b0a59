#!/usr/bin/env bash
# Prints two lines: the Python that holds torch 2.11.0, and LibTorch's CMake prefix path.
# `pmpd-env.sh smollm2` prints the path of the SmolLM2-135M-Instruct GGUF that install-deps.sh
# unpacked (exit 1 when it is not there).
set -euo pipefail
if [ "${1:-}" = smollm2 ]; then
  f="${PMPD_CACHE:-$HOME/.cache/pmpd}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
  [ -s "$f" ] || { echo "pmpd-env: $f missing; run scripts/install-deps.sh" >&2; exit 1; }
  echo "$f"
  exit 0
fi
for py in python3 "${PMPD_VENV:-$HOME/.cache/pmpd/venv}/bin/python"; do
  if prefix=$("$py" -c "import torch;print(torch.utils.cmake_prefix_path)" 2>/dev/null); then
    command -v "$py" || echo "$py"
    echo "$prefix"
    exit 0
  fi
done
echo "pmpd-env: no Python with torch found; run scripts/install-deps.sh" >&2
exit 1

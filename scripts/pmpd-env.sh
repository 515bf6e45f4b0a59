#!/usr/bin/env bash
# Prints two lines: the Python that holds torch 2.11.0, and LibTorch's CMake prefix path.
set -euo pipefail
for py in python3 "${PMPD_VENV:-$HOME/.cache/pmpd/venv}/bin/python"; do
  if prefix=$("$py" -c "import torch;print(torch.utils.cmake_prefix_path)" 2>/dev/null); then
    command -v "$py" || echo "$py"
    echo "$prefix"
    exit 0
  fi
done
echo "pmpd-env: no Python with torch found; run scripts/install-deps.sh" >&2
exit 1

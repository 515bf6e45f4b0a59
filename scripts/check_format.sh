#!/usr/bin/env bash
# Every tracked C++/CUDA source is formatted by the repository's .clang-format (Google style,
# 100 columns). Pinned to clang-format 14, Debian 12's (other versions format a few constructs
# differently). Usage: scripts/check_format.sh [--fix]
#   exit 0: formatted; 1: files differ (listed, with the command that fixes them);
#   77: no clang-format 14 here (ctest counts it as skipped; CI installs it, so CI never skips).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cf=""
for c in clang-format-14 clang-format; do
  if command -v "$c" >/dev/null && "$c" --version | grep -q "version 14\."; then cf=$c; break; fi
done
if [ -z "$cf" ]; then
  echo "check_format: clang-format 14 not found (apt-get install clang-format on Debian 12); skipped"
  exit 77
fi
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cu' '*.cuh')
if [ "${1:-}" = "--fix" ]; then
  "$cf" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$cf" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'check_format: not formatted: %s\n' "${bad[@]}"
  echo "check_format: ${#bad[@]} of ${#files[@]} files differ; fix with scripts/check_format.sh --fix"
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"

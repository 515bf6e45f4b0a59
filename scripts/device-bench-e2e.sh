#!/usr/bin/env bash
# On the GPU machine, after a build in build-gpu (scripts/device-build-test.sh, or a build of the
# pmpd-bench target): the issue-15 end-to-end tables in one run. Batch 1 and batch 4 at context
# 512, fp32 and fp16 KV cache; batch 1 at context 3968 (+ 128 new = 4096, the shape's limit); and the GEMVs at 4 tokens (kernel mode).
# Output: the tables on stdout, JSON per run in ${OUT:-/tmp}.
set -euo pipefail
cd "$(dirname "$0")/../build-gpu"
out=${OUT:-/tmp}
bench=./bench/pmpd-bench
run() {
  local name=$1
  shift
  echo "== $name: pmpd-bench $*"
  "$bench" "$@" --json-out="$out/$name.json" | grep -E "^\||^e2e|GB on"
}
run e2e_b1_ctx512 --mode e2e
run e2e_b4_ctx512 --mode e2e --batch 4
run e2e_b4_ctx512_kv16 --mode e2e --batch 4 --kv-fp16
run e2e_b1_ctx3968 --mode e2e --context 3968 --repeats 2
run e2e_b1_ctx3968_kv16 --mode e2e --context 3968 --repeats 2 --kv-fp16
run kernel_m4 --mode kernel --tokens 4 --bits 2,3,4

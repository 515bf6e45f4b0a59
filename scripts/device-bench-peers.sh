#!/usr/bin/env bash
# On the GPU machine (device tool, with .device carried; gemlite and tqdm under .device/pylib, see
# scripts/prepare-device-extras.sh): issue 15's tables with the peers from one device run.
#   1. pmpd-bench --mode kernel at 1 token (every issue shape, p = 2..4, with cuBLAS fp16 beside);
#   2. the peers per matrix: bench/peers_kernel_bench.py (F.linear, tinygemm int4, gemlite W4/W2);
#   3. pmpd-bench --mode e2e at batch 1 and batch 4 (tensor-core GEMV), context 512;
#   4. the peers end to end: bench/peers_e2e_bench.py (gpt-fast-style decode, one CUDA graph a
#      step), eager ops and torch.compile'd;
#   5. Nsight Compute on the tensor-core GEMV v10 and v7 (scripts/device-gemv-ncu.sh).
# Builds pmpd-bench in build-gpu first if it is missing. Each part has its own time limit so one
# that hangs leaves the others' output. Output: tables on stdout; JSON, logs and Nsight Compute
# reports packed in ${OUT:-/tmp}/bench-peers.tgz (the device tool returns at most 8 files).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp}
source "$root/scripts/device-env.sh"
if [ ! -x "$root/build-gpu/bench/pmpd-bench" ]; then
  T=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cmake -S "$root" -B "$root/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_PREFIX_PATH="$T;$root/.device/absl/usr" \
    >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  cmake --build "$root/build-gpu" -j16 --target pmpd-bench >"$out/build.log" 2>&1 ||
    { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
fi
bench=$root/build-gpu/bench/pmpd-bench
export PYTHONPATH=$root/.device/pylib:${PYTHONPATH:-}
part() {  # part SECONDS NAME COMMAND...: run with a limit, keep the table lines
  local limit=$1 name=$2
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  grep -E "^\||^e2e|^device|GB on|bandwidth|^==| dram__" "$out/$name.log"
  [ $rc -eq 0 ] || { echo "($name exited $rc)"; tail -5 "$out/$name.log"; }
}
part 120 kernel_m1 "$bench" --mode kernel --bits 2,3,4 --json_out="$out/kernel_m1.json"
part 200 peers_kernel python3 "$root/bench/peers_kernel_bench.py" --json "$out/peers_kernel.json"
part 150 e2e_b1_ctx512 "$bench" --mode e2e --json_out="$out/e2e_b1_ctx512.json"
part 240 peers_e2e python3 "$root/bench/peers_e2e_bench.py" --json "$out/peers_e2e.json"
part 280 peers_e2e_compile python3 "$root/bench/peers_e2e_bench.py" --compile \
  --json "$out/peers_e2e_compile.json"
part 100 e2e_b4_ctx512_tc "$bench" --mode e2e --batch 4 \
  --json_out="$out/e2e_b4_ctx512_tc.json"
part 150 ncu_v10 "$root/scripts/device-gemv-ncu.sh" \
  "v10_p2_m4 2 22016 4096 4 mma AnyprecGemvMma" "v7_p2_m4 2 22016 4096 4 v7 AnyprecGemvLowBit" \
  "v10_p2_m1 2 22016 4096 1 mma AnyprecGemvMma" "prep_m4 2 22016 4096 4 mma MmaPrepareX"
(cd "$out" && tar czf bench-peers.tgz --remove-files ./*.json ./*.log ./ncu_*.txt 2>/dev/null)

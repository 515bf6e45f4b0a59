#!/usr/bin/env bash
# On the GPU machine: Nsight Compute on the GEMV sweep binary (bench/sweeps/gemv_mma_sweep.cu):
# duration, throughput, occupancy and the warp stall breakdown of one launch per configuration.
# Usage: scripts/device-gemv-ncu.sh "name bits N K tokens config kernel-regex" ...
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
nvcc -O3 -std=c++17 -arch=sm_90a -lineinfo -I. bench/sweeps/gemv_mma_sweep.cu -o /tmp/sw
stalls=""
for s in long_scoreboard short_scoreboard wait mio_throttle lg_throttle math_pipe_throttle \
  no_instruction barrier not_selected selected dispatch_stall drain membar sleeping \
  tex_throttle branch_resolving imc_miss misc; do
  stalls+="smsp__average_warps_issue_stalled_${s}_per_issue_active.ratio,"
done
metrics="${stalls}gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,"
metrics+="sm__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum,"
metrics+="sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,"
metrics+="smsp__issue_active.avg.pct_of_peak_sustained_active"
for spec in "$@"; do
  read -r name bits n k tokens config regex <<<"$spec"
  ncu --clock-control none --kernel-name "regex:$regex" --launch-skip 25 --launch-count 1 \
    --metrics "$metrics" /tmp/sw "$bits" "$n" "$k" "$tokens" "$config" >"$out/ncu_$name.txt" 2>&1 || true
  echo "== $name"
  grep -E "^\s+(smsp|gpu|dram|sm__|launch)" "$out/ncu_$name.txt" |
    sed -e 's/smsp__average_warps_issue_stalled_//' -e 's/_per_issue_active.ratio//' -e 's/  */ /g' |
    awk '$NF+0 >= 0.05 || $1 !~ /^[a-z_]+$/' | tr '\n' ';'
  echo
done

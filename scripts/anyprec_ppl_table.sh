#!/usr/bin/env bash
# Perplexity table for issue "any-precision": stories260K in float32, per-row RTN at 2/3/4 bits, and
# any-precision (S=2, P=8, Fisher sensitivities from C4) at every p, on the held-out last 25% of the
# TinyStories sample (256-token chunks). Prints a Markdown table. Usage: scripts/anyprec_ppl_table.sh [WORKDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/cli
shared=${PMPD_SHARED_DIR:-$root/../shared}
work=${1:-$(mktemp -d)}
model=$shared/models/stories260K
data=$shared/data/text/tinystories_train_head2MiB.txt
calib=$shared/data/c4/c4-validation.00000-of-00008.first800.json.gz
ppl() { "$bin/pmpd-perplexity" --model "$1" ${2:+--precision $2} --data "$data" --byte-range 0.75:1 --seq-len 256 --json 2>/dev/null |
        python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["perplexity"])'; }
"$bin/pmpd-quantize" --model "$model" --out "$work/ap" --seed-precision 2 --parent-precision 8 --calib "$calib" \
  --num-calib-seqs 100 --seq-len 512 2>/dev/null
fp=$(ppl "$model")
echo "| bits | any-precision (S=2,P=8, Fisher on C4) | RTN per-row min/max | float32 |"
echo "| --- | --- | --- | --- |"
for p in 2 3 4 5 6 7 8; do
  rtn="-"
  if [ $p -le 4 ]; then
    "$bin/pmpd-quantize" --model "$model" --out "$work/rtn$p" --rtn-bits $p 2>/dev/null
    rtn=$(ppl "$work/rtn$p")
  fi
  echo "| $p | $(ppl "$work/ap" $p) | $rtn | $fp |"
done

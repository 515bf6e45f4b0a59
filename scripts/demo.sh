#!/usr/bin/env bash
# The README's main job, the whole PMPD pipeline on the CPU reference engine with the small real
# model in $PMPD_SHARED_DIR/models/stories260K (default ../shared): generate text, quantize to one
# any-precision copy (2..8 bits), decode 4 -> 3 -> 2 with a static schedule, label switch points
# (pmpd-gen-data), train the learned scheduler's classifiers (pmpd-train), decode with it, and end
# with the evaluation table. Without the shared assets it writes a tiny random-weight Llama and a
# small text file of its own and says so. A few minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
build=${BUILD_DIR:-$root/build}
shared=${PMPD_SHARED_DIR:-$root/../shared}
model="$shared/models/stories260K"
text="$shared/data/text/tinystories_train_head2MiB.txt"
gen_docs=96
eval_task=(--task tinystories --shared-dir "$shared")  # its held-out last quarter: not the stories labelled below
prompt=${PMPD_DEMO_PROMPT:-"Once upon a time"}
if [ ! -f "$model/config.json" ]; then
  model="$build/demo-tiny-model"
  echo "demo: $shared/models/stories260K not found; writing a tiny random-weight Llama to $model instead"
  echo "demo: (its weights are random, so its text is gibberish; set PMPD_SHARED_DIR for the real model)"
  "$build/cli/pmpd-make-tiny-model" --out "$model"
  text="$build/demo-text.jsonl"
  words=(the cat dog sun tree ran saw big small happy red little girl boy park played went home)
  : > "$text"
  for i in $(seq 1 80); do
    line=""
    for j in $(seq 1 80); do line="$line ${words[$(( (i * 7 + j * 13 + i * j) % ${#words[@]} ))]}"; done
    echo "{\"text\": \"${line# }.\"}" >> "$text"
  done
  gen_docs=40                                  # the first half; pmpd-eval's c4 task holds out the second
  eval_task=(--task c4 --data "$text")
fi
echo "demo: pmpd-generate --model $model --prompt \"$prompt\" --max-new-tokens 128"
"$build/cli/pmpd-generate" --model "$model" --prompt "$prompt" --max-new-tokens 128
echo
tag=$(basename "$model")  # outputs per model, so runs with and without ../shared do not mix
ap="$build/demo-anyprec-$tag"
echo "demo: pmpd-quantize --model $model --out $ap --seed-precision 2 --parent-precision 8  (one copy, 2..8 bits)"
"$build/cli/pmpd-quantize" --model "$model" --out "$ap" --seed-precision 2 --parent-precision 8
echo "demo: PMPD decoding 4 -> 3 -> 2 bits (switch at tokens 32 and 96), tokens colored by precision"
"$build/cli/pmpd-generate" --model "$ap" --prompt "$prompt" --max-new-tokens 128 --precisions 4,3,2 \
  --switch-steps 32,96 --color always
echo
data="$build/demo-gen-data-$tag.h5"
echo "demo: pmpd-gen-data: label the earliest good switch step per precision pair on $gen_docs documents"
"$build/cli/pmpd-gen-data" --model "$ap" --reference-model "$model" --c4 "$text" --num-docs "$gen_docs" \
  --max-new-tokens 96 --precisions 4,3,2 --out "$data"
cls="$build/demo-classifiers-$tag"
echo "demo: pmpd-train: one KV-cache classifier per pair"
"$build/cli/pmpd-train" --data "$data" --precisions 4,3,2 --out "$cls" --epochs 30 2>&1 | grep -v "^      "
echo "demo: PMPD decoding with the learned scheduler (switch steps predicted from the prefill KV cache)"
"$build/cli/pmpd-generate" --model "$ap" --prompt "$prompt" --max-new-tokens 128 --precisions 4,3,2 \
  --scheduler learned --classifier "$cls" --color always
echo
echo "demo: pmpd-eval: quality against average bits (reference: the full-precision model's output)"
"$build/cli/pmpd-eval" --model "$ap" "${eval_task[@]}" --n 40 --max-new-tokens 96 --precisions 4,3,2 \
  --methods high,low,static,learned --switch-steps 32,64 --classifier "$cls" --reference model \
  --reference-model "$model" --out "$build/demo-eval-$tag"
echo "demo: table and plot in $build/demo-eval-$tag (results.csv, quality_vs_bits.svg)"

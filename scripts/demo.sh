#!/usr/bin/env bash
# The README's main job: the PMPD pipeline on the CPU reference engine, on the best model at hand.
#
# SmolLM2-135M-Instruct (the GGUF that install-deps.sh unpacks; `scripts/pmpd-env.sh smollm2`), with
# the shared assets in $PMPD_SHARED_DIR (default ../shared) for its calibration text and task data:
# the float model answers a chat prompt; it is quantized once to any-precision (3..8 bits, Fisher
# sensitivities from 32 x 512 C4 tokens: about 4 minutes on 2 cores the first time, then cached in
# build/demo-anyprec-smollm2); PMPD decodes the same prompt 5 -> 4 -> 3 bits (tokens colored by
# precision) with the static schedule and with the learned scheduler's committed classifiers
# (bench/results/smollm2_classifiers); pmpd-eval ends with a small evaluation table on dialogsum
# (uniform 5/4/3 bits, static, learned; Rouge-L against the references and against the 8-bit
# output). About 10 minutes on 2 cores after the build the first time (4 of them quantizing), 6 later.
#
# Without the GGUF: the small real model in $PMPD_SHARED_DIR/models/stories260K: generate text,
# quantize (2..8 bits), decode 4 -> 3 -> 2 with a static schedule, label switch points
# (pmpd-gen-data), train the learned scheduler's classifiers (pmpd-train), decode with it, and end
# with the evaluation table. Without the shared assets too it writes a tiny random-weight Llama and
# a small text file of its own and says so. A few minutes on 2 cores.
#
# Environment:
#   PMPD_DEMO_MODEL=auto|smollm2|stories260K|tiny   which of the three (default auto: the first
#                    one whose files are there); smollm2 fails when they are not, stories260K falls
#                    back to tiny without ../shared, tiny always uses the random-weight model
#   PMPD_DEMO_PROMPT   the prompt (default: a chat question for SmolLM2, "Once upon a time" else)
#   PMPD_DEMO_EVAL_N   SmolLM2's dialogsum prompts in the evaluation table (default 8: 3-5 minutes)
#   PMPD_SHARED_DIR, BUILD_DIR   as for the other scripts
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo_model=${PMPD_DEMO_MODEL:-auto}
case "$demo_model" in
  auto | smollm2 | stories260K | tiny) ;;
  *) echo "demo: PMPD_DEMO_MODEL must be auto, smollm2, stories260K or tiny, got \"$demo_model\"" >&2; exit 2 ;;
esac
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
build=${BUILD_DIR:-$root/build}
shared=${PMPD_SHARED_DIR:-$root/../shared}
# LibTorch's OpenMP threads otherwise spin between parallel regions: on 2 cores shared with
# anything else, decoding then runs 20-40x slower (measured: 0.5 instead of 25 tokens/s).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

smollm2_demo() {  # gguf calib: the SmolLM2 pipeline
  local gguf=$1 calib=$2 t0=$SECONDS t
  local prompt=${PMPD_DEMO_PROMPT:-"Explain in two sentences why the sky is blue."}
  local n=${PMPD_DEMO_EVAL_N:-8}
  local ap="$build/demo-anyprec-smollm2"
  local cls="$root/bench/results/smollm2_classifiers"
  local out="$build/demo-eval-smollm2"
  echo "demo: SmolLM2-135M-Instruct ($gguf), CPU engine"
  echo "demo: pmpd-generate --model $gguf --chat --prompt \"$prompt\" --max-new-tokens 96  (float weights)"
  "$build/cli/pmpd-generate" --model "$gguf" --chat --prompt "$prompt" --max-new-tokens 96
  echo
  if [ -f "$ap/config.json" ] && [ ! -e "$ap/.partial" ]; then
    echo "demo: reusing the any-precision copy in $ap (3..8 bits; delete it to quantize again)"
  else
    echo "demo: pmpd-quantize --model $gguf --out $ap --seed-precision 3 --parent-precision 8" \
      "--calib $calib --num-calib-seqs 32 --seq-len 512"
    echo "demo: (one copy, 3..8 bits; about 4 minutes on 2 cores, once: later runs reuse it; resumes if stopped)"
    t=$SECONDS
    "$build/cli/pmpd-quantize" --model "$gguf" --out "$ap" --seed-precision 3 --parent-precision 8 \
      --calib "$calib" --num-calib-seqs 32 --seq-len 512
    echo "demo: quantized in $((SECONDS - t)) s"
  fi
  echo
  local pmpd=(--model "$ap" --chat --prompt "$prompt" --max-new-tokens 96 --precisions 5,4,3 --prefill-precision 5
              --color always)
  echo "demo: PMPD decoding 5 -> 4 -> 3 bits, static schedule (prefill at 5 bits, switch at tokens 12 and 48:"
  echo "demo: the schedule pmpd-eval's calibration chose on cnn_dm), tokens colored by precision"
  "$build/cli/pmpd-generate" "${pmpd[@]}" --switch-steps 12,48
  echo
  local methods=uniform,static learned=()
  if [ -f "$cls/manifest.json" ]; then
    echo "demo: PMPD decoding with the learned scheduler: switch steps predicted from the prefill KV cache by"
    echo "demo: the classifiers in $cls (trained on 512 SmolLM2 gen-data samples)"
    # --force: the committed classifiers were trained on labels from scripts/smollm2_pmpd.sh's copy of
    # this quantization, whose fingerprint differs from this copy's (a checkpoint records the paths of
    # its GGUF and calibration file), so the tools' refusal of another model's classifiers is overridden.
    "$build/cli/pmpd-generate" "${pmpd[@]}" --scheduler learned --classifier "$cls" --force
    echo
    methods=uniform,static,learned
    learned=(--classifier "$cls" --force)
  else
    echo "demo: $cls/manifest.json not found: no learned scheduler in this run"
  fi
  echo "demo: pmpd-eval on dialogsum, $n prompts, 96 new tokens: uniform 5/4/3 bits, PMPD static (prefill 5,"
  echo "demo: 5->4->3 at 12,12: the calibrated dialogsum schedule)${learned:+ and learned}; Rouge-L against the"
  echo "demo: references and against the 8-bit model's own output (a few minutes)"
  t=$SECONDS
  "$build/cli/pmpd-eval" --model "$ap" --task dialogsum --num-prompts "$n" --max-new-tokens 96 --precisions 5,4,3 \
    --methods "$methods" --switch-steps 12,12 --prefill-precision 5 "${learned[@]}" --reference both \
    --shared-dir "$shared" --out "$out"
  echo "demo: evaluated in $((SECONDS - t)) s; table and plot in $out (results.csv, results.json, quality_vs_bits.svg)"
  echo "demo: $n prompts is a look, not a measurement: the full-size figures (60 prompts per task, calibrated"
  echo "demo: static, GPU) are in README.md's \"SmolLM2\" section and bench/results/smollm2_pmpd.json"
  echo "demo: SmolLM2 demo done in $((SECONDS - t0)) s"
}

if [ "$demo_model" = auto ] || [ "$demo_model" = smollm2 ]; then
  gguf=$("$root/scripts/pmpd-env.sh" smollm2 2>/dev/null) || gguf=""
  calib="$shared/data/c4/c4-validation.00000-of-00008.first800.json.gz"
  if [ -n "$gguf" ] && [ -f "$calib" ] && [ -f "$shared/data/eval/dialogsum.test.jsonl" ]; then
    smollm2_demo "$gguf" "$calib"
    exit 0
  fi
  why="the SmolLM2 GGUF (scripts/install-deps.sh unpacks it)"
  [ -n "$gguf" ] && why="$calib or $shared/data/eval/dialogsum.test.jsonl"
  if [ "$demo_model" = smollm2 ]; then
    echo "demo: PMPD_DEMO_MODEL=smollm2 but $why is missing" >&2
    exit 1
  fi
  echo "demo: $why not found; running the pipeline on stories260K instead"
fi

model="$shared/models/stories260K"
text="$shared/data/text/tinystories_train_head2MiB.txt"
gen_docs=96
eval_task=(--task tinystories --shared-dir "$shared")  # its held-out last quarter: not the stories labelled below
prompt=${PMPD_DEMO_PROMPT:-"Once upon a time"}
if [ "$demo_model" = tiny ] || [ ! -f "$model/config.json" ]; then
  if [ "$demo_model" = tiny ]; then
    echo "demo: PMPD_DEMO_MODEL=tiny: writing a tiny random-weight Llama to $build/demo-tiny-model"
  else
    echo "demo: $model not found; writing a tiny random-weight Llama to $build/demo-tiny-model instead"
  fi
  model="$build/demo-tiny-model"
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
"$build/cli/pmpd-eval" --model "$ap" "${eval_task[@]}" --num-prompts 40 --max-new-tokens 96 --precisions 4,3,2 \
  --methods high,low,static,learned --switch-steps 32,64 --classifier "$cls" --reference model \
  --reference-model "$model" --out "$build/demo-eval-$tag"
echo "demo: table and plot in $build/demo-eval-$tag (results.csv, quality_vs_bits.svg)"

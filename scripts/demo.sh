#!/usr/bin/env bash
# The README's main job: install dependencies, build, and generate text on the CPU reference engine
# from the small real model in $PMPD_SHARED_DIR/models/stories260K (default ../shared). Without the
# shared assets it writes a tiny random-weight Llama of its own and says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
build=${BUILD_DIR:-$root/build}
shared=${PMPD_SHARED_DIR:-$root/../shared}
model="$shared/models/stories260K"
prompt=${PMPD_DEMO_PROMPT:-"Once upon a time"}
if [ ! -f "$model/config.json" ]; then
  model="$build/demo-tiny-model"
  echo "demo: $shared/models/stories260K not found; writing a tiny random-weight Llama to $model instead"
  echo "demo: (its weights are random, so its text is gibberish; set PMPD_SHARED_DIR for the real model)"
  "$build/cli/pmpd-make-tiny-model" --out "$model"
fi
echo "demo: pmpd-generate --model $model --prompt \"$prompt\" --max-new-tokens 128"
"$build/cli/pmpd-generate" --model "$model" --prompt "$prompt" --max-new-tokens 128
echo
ap="$build/demo-anyprec"
echo "demo: pmpd-quantize --model $model --out $ap --seed-precision 2 --parent-precision 8  (one copy, 2..8 bits)"
"$build/cli/pmpd-quantize" --model "$model" --out "$ap" --seed-precision 2 --parent-precision 8
echo "demo: PMPD decoding 4 -> 3 -> 2 bits (switch at tokens 32 and 96), tokens colored by precision"
"$build/cli/pmpd-generate" --model "$ap" --prompt "$prompt" --max-new-tokens 128 --precisions 4,3,2 \
  --switch-steps 32,96 --color always

#!/usr/bin/env bash
# The PMPD method on a real instruct model, end to end: SmolLM2-135M-Instruct (the GGUF that
# scripts/install-deps.sh unpacks) quantized to one any-precision copy, perplexity at every
# precision, switch-point labels on C4 (pmpd-gen-data), classifiers (pmpd-train), tuned classifiers
# (pmpd-hypertune), and the evaluation on cnn_dm and dialogsum (pmpd-eval: uniform baselines at
# every precision of the ladder, PMPD-static calibrated, PMPD-learned). Writes $WORK/summary.json
# (commit, machine, data sizes, wall time per stage, every table) and $WORK/summary.md.
#
# Usage: scripts/smollm2_pmpd.sh            (settings below; each can be overridden from the env)
#   DEVICE=cuda  runs the decoding on the CUDA engine (the GPU machine; SHARDS gen-data processes
#                share the GPU, each a slice --shard i/SHARDS, then merged). DEVICE=cpu works too,
#                at CPU speed (hours at the full sizes: shrink DOCS, EVAL_N, ...).
#   STAGES=quantize,ppl,gendata,train,tune,eval   any subset, in this order; outputs of earlier
#                stages are reused when present (every tool resumes or recognises finished work).
# The figures in README.md's "SmolLM2" section come from one run of this script; summary.json
# names it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-${BUILD_DIR:-$root/build}/cli}
WORK=${WORK:-$root/out/smollm2}
SHARED=${PMPD_SHARED_DIR:-$root/../shared}
GGUF=${GGUF:-$("$root/scripts/pmpd-env.sh" smollm2)}
DEVICE=${DEVICE:-cpu}
STAGES=${STAGES:-quantize,ppl,gendata,train,tune,eval}
SEED_P=${SEED_P:-3}
PARENT_P=${PARENT_P:-8}
CALIB_SAMPLES=${CALIB_SAMPLES:-32}
LADDER=${LADDER:-5,4,3}
PPL_RANGE=${PPL_RANGE:-0:0.05}     # the first 5 % of wikitext-2 test (bytes)
DOCS=${DOCS:-512}
NEW=${NEW:-96}
CANDIDATES=${CANDIDATES:-}         # default: 0, NEW/3, 2*NEW/3
INSTRUCTION=${INSTRUCTION:-Summarize the following text.}
SHARDS=${SHARDS:-1}
TRIALS=${TRIALS:-24}
EVAL_N=${EVAL_N:-60}               # test prompts per task (EVAL_N_<task> overrides it for one task)
CALIB_N=${CALIB_N:-16}             # calibration prompts per task, held out (CALIB_N_<task> likewise)
TASKS=${TASKS:-cnn_dm dialogsum}
EPSILON=${EPSILON:-1.0}           # static calibration: allowed Rouge-L drop (points)
LABEL_METRIC=${LABEL_METRIC:-rouge_l}  # gen-data --label-metric: rouge_l or excess_nll (teacher-forced)
LABEL_TOL=${LABEL_TOL:-0.01}       # classifiers: relabel at this tolerance (rouge_l: Rouge-L F, 0.01 = 1 point;
                                   # excess_nll: nats per token); one value or one per pair
TEST_FRACTION=${TEST_FRACTION:-0.2} # classifiers: a test split scored once, next to the majority class
THREADS=${THREADS:-$(nproc)}
PARALLEL_PPL=${PARALLEL_PPL:-0}    # 1: the perplexity stage runs beside the labelling (CPU vs GPU)
PARALLEL_EVAL=${PARALLEL_EVAL:-0}  # 1: the tasks are evaluated by concurrent processes (one GPU)
MPS=${MPS:-0}                      # 1: run the CUDA processes under an MPS daemon started here (below)
CLASSIFIERS=${CLASSIFIERS:-}       # eval: these classifiers (default: the tuned ones, else the trained ones)
LEARNED_CALIBRATION=${LEARNED_CALIBRATION:-static-bits}  # eval: pmpd-eval --calibrate-learned
EVAL_TAG=${EVAL_TAG:-}             # eval: outputs eval$EVAL_TAG-<task>* (several evaluations in one WORK)
EVAL_SETS=${EVAL_SETS:-}           # eval: several classifier sets, "tag=dir ..." (outputs eval-<tag>-<task>*)
EVAL_METHODS=${EVAL_METHODS:-uniform,static,learned,learned-sweep}  # eval: pmpd-eval --methods
TRAIN_FLAGS=${TRAIN_FLAGS:-}       # train: extra pmpd-train flags (e.g. "--balance none")
EVAL_FLAGS=${EVAL_FLAGS:-}         # eval: extra pmpd-eval flags (e.g. "--force" for classifiers of another copy)
CLS_OUT=${CLS_OUT:-}               # train: output directory (default: $WORK/classifiers)

mkdir -p "$WORK"
# The shards (and PARALLEL_EVAL's tasks) decode a 135M model: small kernels, latency-bound. Without
# MPS one GPU time-slices the processes (16 gen-data processes label no faster than 8, about 1
# sample/s on the H200); under MPS their kernels run side by side (800 samples in 330 s, 2.4/s).
# The daemon is this run's own (pipe, log and lock under /tmp/pmpd-mps-<checksum of $WORK>: short,
# as a socket path must stay under 108 characters) and is stopped at exit. One MPS run at a time
# per WORK (the lock); a daemon a killed run left on that pipe is quit first.
if [ "$MPS" = 1 ]; then
  mps_dir=/tmp/pmpd-mps-$(printf %s "$WORK" | cksum | cut -d' ' -f1)
  export CUDA_MPS_PIPE_DIRECTORY=$mps_dir/pipe CUDA_MPS_LOG_DIRECTORY=$mps_dir/log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  exec 9>"$mps_dir/lock"
  flock -n 9 || { echo "smollm2_pmpd: another MPS=1 run uses $WORK" >&2; exit 1; }
  echo quit | nvidia-cuda-mps-control 2>/dev/null && sleep 1
  nvidia-cuda-mps-control -d || { echo "smollm2_pmpd: MPS=1: nvidia-cuda-mps-control -d failed" >&2; exit 1; }
  trap 'echo quit | nvidia-cuda-mps-control' EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT HUP
fi
ap="$WORK/anyprec-s${SEED_P}p${PARENT_P}"
# One label file per metric (a WORK that holds Rouge-L labels must not feed a LABEL_METRIC=excess_nll
# run, whose tolerances are in nats): gen-data.h5 for rouge_l, gen-data-excess_nll.h5 otherwise.
gd=gen-data$([ "$LABEL_METRIC" = rouge_l ] || echo "-$LABEL_METRIC")
data="$WORK/$gd.h5"
cls="${CLS_OUT:-$WORK/classifiers}"
tuned="$WORK/tuned"
timing="$WORK/timing.txt"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
stamp() { echo "$1 $2" >>"$timing"; }
run_stage() {  # name command...: times it into $timing
  local name=$1 t0
  shift
  t0=$(date +%s)
  echo "smollm2_pmpd: $name: $*" >&2
  "$@"
  stamp "$name" $(($(date +%s) - t0))
}

if has quantize; then
  run_stage quantize "$BIN/pmpd-quantize" --model "$GGUF" --out "$ap" --seed-precision "$SEED_P" \
    --parent-precision "$PARENT_P" --calib "$SHARED/data/c4/c4-validation.00000-of-00008.first800.json.gz" \
    --num-calib-seqs "$CALIB_SAMPLES" --seq-len 512 --threads "$THREADS" --json >"$WORK/quantize.json"
fi

if has ppl; then
  ppl_stage() {
    : >"$WORK/ppl.jsonl"
    local wiki="$SHARED/data/text/wikitext2-raw-test.jsonl"
    "$BIN/pmpd-perplexity" --model "$GGUF" --data "$wiki" --byte-range "$PPL_RANGE" --seq-len 512 --json \
      2>/dev/null | sed 's/^{/{"precision":"float",/' >>"$WORK/ppl.jsonl"
    for p in $(seq "$SEED_P" "$PARENT_P"); do
      "$BIN/pmpd-perplexity" --model "$ap" --precision "$p" --data "$wiki" --byte-range "$PPL_RANGE" --seq-len 512 \
        --json 2>/dev/null | sed "s/^{/{\"precision\":$p,/" >>"$WORK/ppl.jsonl"
    done
  }
  if [ "$PARALLEL_PPL" = 1 ]; then
    run_stage ppl ppl_stage &
    ppl_pid=$!
  else
    run_stage ppl ppl_stage
  fi
fi

if has gendata; then
  gen_stage() {
    local args=(--model "$ap" --c4 "$SHARED/data/c4/c4-validation.00000-of-00008.first800.json.gz"
                --num-docs "$DOCS" --max-new-tokens "$NEW" --precisions "$LADDER" --device "$DEVICE"
                --label-metric "$LABEL_METRIC" --json)
    [ -n "$CANDIDATES" ] && args+=(--candidate-steps "$CANDIDATES")
    [ -n "$INSTRUCTION" ] && args+=(--chat-instruction "$INSTRUCTION")
    if [ "$SHARDS" -le 1 ]; then
      "$BIN/pmpd-gen-data" "${args[@]}" --out "$data" >"$WORK/$gd.json"
      return
    fi
    local pids=() parts=()
    for i in $(seq 0 $((SHARDS - 1))); do
      parts+=("$WORK/$gd.part$i.h5")
      "$BIN/pmpd-gen-data" "${args[@]}" --shard "$i/$SHARDS" --out "$WORK/$gd.part$i.h5" \
        >"$WORK/$gd.part$i.json" 2>"$WORK/$gd.part$i.log" &
      pids+=($!)
    done
    local failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    if [ $failed = 1 ]; then tail -3 "$WORK/$gd".part*.log >&2; return 1; fi
    "$BIN/pmpd-gen-data" merge --out "$data" --json "${parts[@]}" >"$WORK/$gd.json"
  }
  [ -f "$data" ] || run_stage gendata gen_stage
fi

if has train; then
  run_stage train "$BIN/pmpd-train" --data "$data" --precisions "$LADDER" --out "$cls" --label-tolerance "$LABEL_TOL" \
    --device "$DEVICE" --test-fraction "$TEST_FRACTION" $TRAIN_FLAGS --json >"$WORK/train$EVAL_TAG.json" 2>"$WORK/train$EVAL_TAG.log"
fi

if has tune; then
  run_stage tune "$BIN/pmpd-hypertune" --data "$data" --precisions "$LADDER" --trials "$TRIALS" --out "$tuned" \
    --device "$DEVICE" --label-tolerance "$LABEL_TOL" --json >"$WORK/tune.json" 2>"$WORK/tune.log"
fi

if has eval; then
  best="$CLASSIFIERS"
  if [ -z "$best" ]; then
    best="$tuned"
    [ -f "$best/manifest.json" ] || best="$cls"
  fi
  # One evaluation per classifier set: EVAL_SETS="tag=dir ..." (outputs eval-<tag>-<task>*), else
  # the one set $best with outputs eval$EVAL_TAG-<task>*. With PARALLEL_EVAL=1 every (set, task)
  # runs at once (one GPU, under MPS).
  sets=()
  if [ -n "$EVAL_SETS" ]; then
    [ -z "$EVAL_TAG" ] || { echo "smollm2_pmpd: give EVAL_TAG or EVAL_SETS, not both" >&2; exit 1; }
    read -r -a entries <<<"$EVAL_SETS"
    tags=" "
    for entry in "${entries[@]}"; do
      tag=${entry%%=*}
      [[ "$entry" == *=?* && "$tag" =~ ^[A-Za-z0-9_+]+$ && "$tags" != *" $tag "* ]] ||
        { echo "smollm2_pmpd: EVAL_SETS entry '$entry' is not tag=dir with a new tag (letters, digits, _ +)" >&2; exit 1; }
      tags+="$tag "
      sets+=("-$tag=${entry#*=}")
    done
  else
    sets=("$EVAL_TAG=$best")
  fi
  # The learned scheduler's switch quantile is calibrated on the same held-out prompts as the static
  # schedule (static-bits: the best quality within the static schedule's bits there); the sweep
  # rows give its whole quality-vs-bits curve on the test prompts.
  # pmpd-eval refuses flags that no chosen method uses: the learned ones only with a learned method.
  eval_task() {  # task tag classifiers
    local n_var="EVAL_N_$1" c_var="CALIB_N_$1" learned_flags=()
    case ",$EVAL_METHODS," in
      *,learned,*) learned_flags=(--calibrate-learned "$LEARNED_CALIBRATION" --classifier "$3") ;;
      *,learned-sweep,*) learned_flags=(--classifier "$3") ;;
    esac
    "$BIN/pmpd-eval" --model "$ap" --task "$1" --shared-dir "$SHARED" --num-prompts "${!n_var:-$EVAL_N}" \
      --max-new-tokens "$NEW" --precisions "$LADDER" --methods "$EVAL_METHODS" --calibrate-static \
      "${learned_flags[@]}" $EVAL_FLAGS --num-calib-prompts "${!c_var:-$CALIB_N}" --epsilon "$EPSILON" \
      --reference both --device "$DEVICE" --out "$WORK/eval$2-$1" --json \
      >"$WORK/eval$2-$1.json" 2>"$WORK/eval$2-$1.log"
  }
  eval_pids=()
  for set in "${sets[@]}"; do
    tag=${set%%=*} dir=${set#*=}
    for task in $TASKS; do
      if [ "$PARALLEL_EVAL" = 1 ]; then
        run_stage "eval$tag-$task" eval_task "$task" "$tag" "$dir" &
        eval_pids+=($!)
      else
        run_stage "eval$tag-$task" eval_task "$task" "$tag" "$dir"
      fi
    done
  done
  for p in "${eval_pids[@]}"; do wait "$p"; done
fi

[ -n "${ppl_pid:-}" ] && wait "$ppl_pid"
# The settings summary.json records: named once here, read by the Python below.
settings=(DEVICE LADDER SEED_P PARENT_P CALIB_SAMPLES DOCS NEW INSTRUCTION SHARDS TRIALS EVAL_N CALIB_N PPL_RANGE
          EPSILON LABEL_METRIC LABEL_TOL TEST_FRACTION CANDIDATES LEARNED_CALIBRATION MPS EVAL_FLAGS TRAIN_FLAGS EVAL_SETS)
for task in $TASKS; do settings+=("EVAL_N_$task" "CALIB_N_$task"); done
export TASKS "${settings[@]}"
export PMPD_SUMMARY_SETTINGS="${settings[*]}" PMPD_GEN_DATA_STEM=$gd
python3 - "$WORK" "$root" <<'PY'
import glob, json, os, platform, subprocess, sys
work, root = sys.argv[1], sys.argv[2]
def load(name):
    p = os.path.join(work, name)
    if not os.path.exists(p): return None
    with open(p) as f:
        lines = [l for l in f.read().splitlines() if l.strip().startswith("{")]
    return json.loads(lines[-1]) if lines else None
def sh(cmd):
    try: return subprocess.check_output(cmd, shell=True, text=True, stderr=subprocess.DEVNULL).strip()
    except Exception: return ""
summary = {
    "commit": os.environ.get("PMPD_COMMIT") or sh(f"git -C {root} rev-parse --short HEAD"),
    "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                "gpu": sh("nvidia-smi --query-gpu=name --format=csv,noheader | head -1")},
    "settings": {k: os.environ.get(k) for k in os.environ["PMPD_SUMMARY_SETTINGS"].split()},
    "wall_seconds": {},
}
if os.path.exists(os.path.join(work, "timing.txt")):
    for line in open(os.path.join(work, "timing.txt")):
        k, v = line.split()
        summary["wall_seconds"][k] = summary["wall_seconds"].get(k, 0) + int(v)
if os.path.exists(os.path.join(work, "ppl.jsonl")):
    summary["perplexity"] = [json.loads(l) for l in open(os.path.join(work, "ppl.jsonl")) if l.strip()]
for name in ["quantize", "train", "tune"]:
    summary[name] = load(name + ".json")
summary["gen-data"] = load(os.environ["PMPD_GEN_DATA_STEM"] + ".json")
# Every evaluation in WORK: eval-<tag>-<task>.json -> "eval_<tag>_<task>", eval-<task>.json -> "eval_<task>".
for task in os.environ.get("TASKS", "cnn_dm dialogsum").split():
    for path in sorted(glob.glob(os.path.join(work, f"eval*-{task}.json"))):
        tag = os.path.basename(path)[len("eval"):-len(f"-{task}.json")].strip("-_")
        summary["_".join(["eval"] + ([tag] if tag else []) + [task])] = load(os.path.basename(path))
with open(os.path.join(work, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary["wall_seconds"]))
PY

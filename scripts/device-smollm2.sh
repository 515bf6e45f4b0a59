#!/usr/bin/env bash
# The SmolLM2 PMPD pipeline (scripts/smollm2_pmpd.sh) on the GPU machine through the device tool,
# in calls that each fit its limits (600 s a call, 64 MiB carried, 8 files back; the machine and its
# /tmp stay only while calls follow each other within 30 s). Prepare here first:
#   scripts/prepare-device-extras.sh --smollm2
# then, one call each (carry: .device/absl .device/shared .device/pcre2 .device/xfer/part_00
# .device/xfer/sha256.txt; then .device/xfer/part_01; then .device/xfer/part_02):
#   scripts/device-smollm2.sh setup     copy the tree to /tmp/w (kept between calls), build there and
#                                       run the gpu-labelled tests (scripts/device-build-test.sh -L
#                                       gpu: about 95 + 20 s), check that an MPS client works
#   scripts/device-smollm2.sh part      only keep the GGUF part this call carried
#   scripts/device-smollm2.sh start     join the GGUF, start the pipeline in the background, wait
#   scripts/device-smollm2.sh wait [S]  wait up to S s (default 540), print progress
#   scripts/device-smollm2.sh fetch     results as one $OUT/results.tgz (json, logs, eval dirs,
#                                       classifiers; not the HDF5 labels)
# setup, part and start copy the GGUF part their call carried to /tmp/xfer. The pipeline's settings
# are smollm2_pmpd.sh's environment variables, passed through from the `start` call's environment
# (defaults below: the run_800_docs settings in bench/results/smollm2_pmpd.json). Its output is
# /tmp/smol; its log /tmp/pipe.log; /tmp/pipe.done marks the end.
set -uo pipefail
W=/tmp/w
self=$(readlink -f "$0")
cmd=${1:-}
copy_parts() {  # the GGUF parts this call carried, kept in /tmp/xfer for `start`
  mkdir -p /tmp/xfer
  for f in .device/xfer/part_* .device/xfer/sha256.txt; do [ -f "$f" ] && cp "$f" /tmp/xfer/; done
  return 0
}
case "$cmd" in
  setup)
    t0=$(date +%s)
    copy_parts
    { rm -rf $W && mkdir -p $W && cp -a . $W/ && rm -rf $W/.device/xfer && cd $W; } || exit 1
    bash scripts/device-build-test.sh -L gpu || exit 1
    echo "device-smollm2: built and tested in $(($(date +%s) - t0)) s"
    # smollm2_pmpd.sh MPS=1 starts its own daemon; this check only says whether MPS works here.
    mkdir -p /tmp/mps-check && export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-check CUDA_MPS_LOG_DIRECTORY=/tmp/mps-check
    if nvidia-cuda-mps-control -d 2>/dev/null &&
       timeout 90 python3 -c "import torch; torch.ones(8, device='cuda').sum().item()"; then
      echo "device-smollm2: MPS works"; touch /tmp/mps-ok
    else
      echo "device-smollm2: MPS does not work here; the pipeline runs without it"
    fi
    echo quit | nvidia-cuda-mps-control 2>/dev/null
    ;;
  part)
    copy_parts
    ;;
  start)
    copy_parts
    (cd /tmp/xfer && cat part_00 part_01 part_02 >SmolLM2-135M-Instruct.Q4_1.gguf && sha256sum -c sha256.txt) || exit 1
    cd $W || exit 1
    root=$W
    source scripts/device-env.sh
    export BIN=$W/build-gpu/cli WORK=/tmp/smol GGUF=/tmp/xfer/SmolLM2-135M-Instruct.Q4_1.gguf DEVICE=cuda THREADS=16
    export MPS=${MPS:-$([ -f /tmp/mps-ok ] && echo 1 || echo 0)} SHARDS=${SHARDS:-16} DOCS=${DOCS:-800} NEW=${NEW:-96}
    export CANDIDATES=${CANDIDATES:-0,12,24,48} LABEL_TOL=${LABEL_TOL:-0.01} TEST_FRACTION=${TEST_FRACTION:-0.2}
    export LABEL_METRIC=${LABEL_METRIC:-rouge_l}
    export EVAL_N=${EVAL_N:-60} CALIB_N=${CALIB_N:-16} EVAL_N_dialogsum=${EVAL_N_dialogsum:-200}
    export CALIB_N_dialogsum=${CALIB_N_dialogsum:-40} PARALLEL_EVAL=${PARALLEL_EVAL:-1}
    export STAGES=${STAGES:-quantize,gendata,train,eval} EVAL_METHODS=${EVAL_METHODS:-uniform,static,learned,learned-sweep}
    export PMPD_COMMIT=${PMPD_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}
    rm -f /tmp/pipe.done
    nohup setsid bash -c 'scripts/smollm2_pmpd.sh; echo "device-smollm2: pipeline exit $?"; touch /tmp/pipe.done' \
      >/tmp/pipe.log 2>&1 </dev/null &
    sleep 2
    exec bash "$self" wait "${2:-540}"
    ;;
  wait)
    lim=${2:-540}
    t0=$(date +%s)
    while [ ! -f /tmp/pipe.done ] && [ $(($(date +%s) - t0)) -lt "$lim" ]; do sleep 5; done
    tail -15 /tmp/pipe.log
    for f in /tmp/smol/gen-data*.part0.log /tmp/smol/eval*.log; do
      [ -f "$f" ] && echo "$f: $(tail -c 300 "$f" | tr '\r' '\n' | grep . | tail -1)"
    done
    [ -f /tmp/pipe.done ] && echo "device-smollm2: pipeline done"
    exit 0
    ;;
  fetch)
    cd /tmp/smol && tar czf "$OUT/results.tgz" --exclude='*.h5' --exclude='anyprec-*' --exclude=checkpoints . &&
      ls -la "$OUT"
    ;;
  *)
    sed -n 2,22p "$0"
    exit 2
    ;;
esac

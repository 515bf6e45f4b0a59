#!/usr/bin/env bash
# On the GPU machine (device tool, with .device carried): builds what labelling on sequence slots
# needs in build-gpu, runs its GPU tests (gen-data on CUDA, sequential and on 8 slots, against the
# CPU's file; CopySequence), then `pmpd-bench --mode label` on the random Llama-2-7B shape: the
# sequential labelling path against LabelOnSlots: fp32 KV cache with the code-word GEMV only
# (rows bit-exact: pmpd-gen-data's default) and with the automatic GEMV, then an fp16 cache. Usage: scripts/device-bench-label.sh
# [pmpd-bench flags]. Output: tables on stdout; logs and JSON packed in ${OUT:-/tmp}/label.tgz.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp}
source "$root/scripts/device-env.sh"
T=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake -S "$root" -B "$root/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_PREFIX_PATH="$T;$root/.device/absl/usr" \
  >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$root/build-gpu" -j16 --target pmpd-bench pmpd-gen-data data_gen_gpu_test \
  inference_gpu_test >"$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
cd "$root/build-gpu"
timeout 200 ./tests/data_gen_gpu_test 2>&1 | tail -4
timeout 100 ./tests/inference_gpu_test --gtest_filter='*CopySequence*:*Batched*' 2>&1 | tail -3
run() {
  local name=$1
  shift
  echo "== $name: pmpd-bench --mode label $*"
  timeout 150 ./bench/pmpd-bench --mode label --batch 8 --new-tokens 256 "$@" \
    --json_out="$out/$name.json" >"$out/$name.log" 2>&1
  grep -E "^\||^agreement|^label" "$out/$name.log" || tail -5 "$out/$name.log"
}
run label_kv32_codeword --gemv=code-word "$@"
run label_kv32_auto "$@"
run label_kv16_codeword --gemv=code-word --kv_fp16 "$@"
(cd "$out" && tar czf label.tgz --remove-files ./*.json ./*.log 2>/dev/null)

#!/usr/bin/env bash
# On the GPU machine (device tool, with .device carried): issue 18's quantization at scale.
#   tests  builds build-gpu (quantization targets) and runs the GPU tests of quantization (k-means
#          kernel bit-exact, streamed Fisher on CUDA, pmpd-quantize cuda vs cpu) and the CPU ones
#          of the streamed Fisher
#   make   writes the random Llama-2-7B-shaped checkpoint to /tmp/l7b (scripts/make_random_llama7b.py)
#   gpu    pmpd-quantize --device cuda on it, seed 2, parent 8, the default calibration (100 x 512
#          C4 tokens), under /usr/bin/time -v
#   cpu    the same with --device cpu and the same calibration, under /usr/bin/time -v and
#          `timeout ${CPU_SECONDS:-240}`: its peak host memory over the sensitivity pass and the
#          layers it reaches (the CPU path takes hours on 7B; memory is what this stage measures)
# Usage: scripts/device-quantize-7b.sh STAGE...   Logs and JSON go to ${OUT:-/tmp}.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp}
source "$root/scripts/device-env.sh"
calib=$PMPD_SHARED_DIR/data/c4/c4-validation.00000-of-00008.first800.json.gz
bin=$root/build-gpu/cli/pmpd-quantize
for stage in "$@"; do
  case $stage in
    tests)
      T=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
      cmake -S "$root" -B "$root/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_PREFIX_PATH="$T;$root/.device/absl/usr" \
        >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
      cmake --build "$root/build-gpu" -j16 --target pmpd-quantize pmpd-perplexity kernels_gpu_test \
        quantize_gpu_test inference_test >"$out/build.log" 2>&1 ||
        { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
      cd "$root/build-gpu"
      timeout 120 ./tests/kernels_gpu_test --gtest_filter='AnyprecQuantize*' 2>&1 | tail -4
      timeout 300 ./tests/quantize_gpu_test 2>&1 | grep -E "^\[ +(OK|FAILED|SKIPPED)|Failure|equal|perplexity|distance" | head -40
      timeout 60 ./tests/inference_test --gtest_filter='FisherStream*' 2>&1 | tail -2
      cd "$root" ;;
    make)
      python3 "$root/scripts/make_random_llama7b.py" /tmp/l7b 2>&1 | tail -2 ;;
    gpu)
      rm -rf /tmp/l7b-ap-gpu
      /usr/bin/time -v "$bin" --model /tmp/l7b --out /tmp/l7b-ap-gpu --device cuda --calib "$calib" \
        --json >"$out/quantize_gpu.json" 2>"$out/quantize_gpu.log"
      echo "exit $?"
      grep -E "wrote|Elapsed|Maximum resident|error" "$out/quantize_gpu.log"
      cat "$out/quantize_gpu.json" ;;
    cpu)
      rm -rf /tmp/l7b-ap-cpu
      timeout -s INT "${CPU_SECONDS:-240}" /usr/bin/time -v "$bin" --model /tmp/l7b \
        --out /tmp/l7b-ap-cpu --device cpu --calib "$calib" --threads 16 --json \
        >"$out/quantize_cpu.json" 2>"$out/quantize_cpu.log"
      echo "exit $? (124: stopped by the time limit, as planned)"
      grep -E "wrote|quantize:|sensitivity|Elapsed|Maximum resident|error|signal" "$out/quantize_cpu.log" | tail -8
      ls /tmp/l7b-ap-cpu/.partial 2>/dev/null | wc -l ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done

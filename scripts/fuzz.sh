#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ for a bounded time and fails on any finding (a crash, a
# sanitizer report, an uncaught exception, a timeout or an out-of-memory).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#   BUILD_DIR  the sanitizer build (default build-san; scripts/test-sanitized.sh makes it)
#   JOBS       targets run at once (default: the number of cores)
# Each target starts from the seed corpus make_fuzz_seeds writes (valid inputs of each format) plus
# what earlier runs found (BUILD_DIR/fuzz-corpus/<target>, kept between local runs). Findings land
# in BUILD_DIR/fuzz-findings/<target>/ (crash-*, timeout-*, oom-*): reproduce one with
# `BUILD_DIR/fuzz/<target> FILE`, then add it as a regression test. A summary line per target gives
# its executions and the new corpus size.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-san}
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config_json_fuzzer safetensors_fuzzer torch_checkpoint_fuzzer gguf_fuzzer tokenizer_json_fuzzer
           text_stream_fuzzer kv_dataset_fuzzer hpo_fuzzer classifier_fuzzer serve_request_fuzzer)
fi
jobs=${JOBS:-$(nproc)}
shared=${PMPD_SHARED_DIR:-$root/../shared}
for t in "${targets[@]}"; do
  [ -x "$build/fuzz/$t" ] || { echo "fuzz: error: $build/fuzz/$t is missing (run scripts/test-sanitized.sh)" >&2; exit 1; }
done
seeds=$build/fuzz-seeds
rm -rf "$seeds"
"$build/fuzz/make_fuzz_seeds" "$seeds" "$shared" "$root" >/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
run_one() {
  local t=$1 corpus=$build/fuzz-corpus/$1 findings=$build/fuzz-findings/$1 log=$build/fuzz-logs/$1.log
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  # Inputs up to 64 KiB, or the largest seed (the GGUF seeds are about 80 KB: shorter, they are cut
  # and never parse).
  local max_len
  max_len=$(find "$seeds/${t%_fuzzer}" -type f -printf '%s\n' | sort -n | tail -1)
  [ "${max_len:-0}" -gt 65536 ] || max_len=65536
  # -timeout: one input over 20 s is a hang; -rss_limit_mb: a parser allocating what a file claims.
  if "$build/fuzz/$t" "$corpus" "$seeds/${t%_fuzzer}" -max_total_time="$seconds" -timeout=20 \
       -rss_limit_mb=3072 -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$findings/" \
       >"$log" 2>&1; then
    local runs
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $t: clean, $runs executions in ${seconds} s, corpus $(ls "$corpus" | wc -l) files"
  else
    echo "fuzz: $t: FINDING (log $log; input in $findings/):"
    grep -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error|SUMMARY|Test unit written' "$log" | head -8
    return 1
  fi
}
export -f run_one
export build seconds seeds
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'

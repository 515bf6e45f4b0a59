#!/usr/bin/env bash
# Run here (not on the GPU machine) before a device session: what the GPU machine lacks, under the
# git-ignored .device/ of this checkout.
#   - ../shared/scripts/prepare-device.sh: Debian's Abseil (.device/absl) and a copy of ../shared;
#   - Debian's PCRE2 development files (.device/pcre2; the GPU machine has the runtime library but
#     no headers or pkg-config file; scripts/device-build-test.sh and scripts/device-smollm2.sh point
#     pkg-config at them);
#   - with --smollm2: the SmolLM2 GGUF (98 MB, over one transfer's 64 MiB) cut into three parts
#     .device/xfer/part_00..02 and its sha256, to carry one per call (scripts/device-smollm2.sh joins
#     them there).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
bash "$root/../shared/scripts/prepare-device.sh"
if [ ! -f "$root/.device/pcre2/usr/include/pcre2.h" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3)
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$root/.device/pcre2"; done
  rm -rf "$tmp"
fi
if [ "${1:-}" = --smollm2 ]; then
  gguf=$("$root/scripts/pmpd-env.sh" smollm2)
  mkdir -p "$root/.device/xfer"
  (cd "$root/.device/xfer" && rm -f part_* && split -n 3 -d -a 2 "$gguf" part_ &&
   sha256sum "$gguf" | awk '{print $1"  SmolLM2-135M-Instruct.Q4_1.gguf"}' >sha256.txt)
fi
du -sh "$root"/.device/* | sed 's/^/prepare-device-extras: /'

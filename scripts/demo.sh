#!/usr/bin/env bash
# Set up and run the main job. Extra arguments go to `walkrun demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export WALKRUN_DATA=${WALKRUN_DATA:-$(cd .. && pwd)/shared/data}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec .venv/bin/walkrun demo "$@"

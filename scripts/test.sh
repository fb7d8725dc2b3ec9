#!/usr/bin/env bash
# Set up (venv + Debian packages), lint and type-check (ruff, mypy; config in pyproject.toml), then run
# the full test suite (`-m ""`: both tiers) on parallel workers. Extra arguments go to pytest
# (`-m "not slow"` for the fast tier only; WALKRUN_TEST_WORKERS=0 for no worker processes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup_system.sh
export WALKRUN_DATA=${WALKRUN_DATA:-$(cd .. && pwd)/shared/data}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Workers: vLLM and Ray tests each stay on one worker (tests/conftest.py marks their xdist group).
exec .venv/bin/python -m pytest -m "" -n "${WALKRUN_TEST_WORKERS:-2}" --dist loadgroup "$@"

#!/usr/bin/env bash
# Set up (venv + Debian packages), lint and type-check (ruff, mypy; config in pyproject.toml), then run
# the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup_system.sh
export WALKRUN_DATA=${WALKRUN_DATA:-$(cd .. && pwd)/shared/data}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

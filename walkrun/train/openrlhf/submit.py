"""Submit an OpenRLHF run to a running Ray cluster and record it in the results DB.

Writes RUN_DIR/launch.sh (the script of `walkrun train script`) and runs it: it prepares
RUN_DIR/job and calls `ray job submit`. Submitting the same run again resumes it
(`--ckpt.load_enable`); a different config under the same run folder is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from walkrun.atomic import write_text
from walkrun.settings import WalkrunError
from walkrun.train.openrlhf.config import OpenRLHFConfig, canonical_json, config_from_dict
from walkrun.train.openrlhf.script import DEFAULT_ADDRESS, render, run_dir_of


def write_launch_script(config: OpenRLHFConfig) -> Path:
    """RUN_DIR/launch.sh for `config`; refuses a run folder that holds a different run's config."""
    run_dir = run_dir_of(config)
    existing = run_dir / "config.yaml"
    if existing.is_file():
        try:
            old = config_from_dict(yaml.safe_load(existing.read_text()) or {})
        except (WalkrunError, yaml.YAMLError):
            old = None
        if old is None or canonical_json(old) != canonical_json(config):
            raise WalkrunError(
                f"{run_dir} already holds a run with a different config; choose another "
                f"--set name=... (or --set run_dir=...), or remove that folder"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    script = run_dir / "launch.sh"
    return write_text(script, render(config), mode=0o755)


def register(config: OpenRLHFConfig, parent=None) -> None:
    """Record the run in the results DB (name, backend, preset, config, folder) and, given the
    gate's decision `parent`, the checkpoint it starts from."""
    from walkrun.db.records import record_training_run  # heavy: numpy, sqlalchemy
    from walkrun.train.gate import lineage_of  # heavy: numpy, sqlalchemy

    record_training_run(
        config.name, "openrlhf", config.preset or None, config.to_dict(), run_dir_of(config), **lineage_of(parent)
    )


def submit(config: OpenRLHFConfig, address: str = DEFAULT_ADDRESS, wait: bool = True, parent=None) -> int:
    """Write the script, register the run (with its lineage when `parent`, the gate's decision, is
    given), run the script; returns the exit code of `ray job submit`."""
    if shutil.which("ray") is None:
        raise WalkrunError(
            "the `ray` command is not on PATH; install ray[default] (pip install "
            "'walkrun[openrlhf]') and start a cluster with `ray start --head`"
        )
    script = write_launch_script(config)
    register(config, parent)
    env = {**os.environ, "RAY_ADDRESS": address, "NO_WAIT": "0" if wait else "1"}
    return subprocess.run(["bash", str(script)], env=env).returncode

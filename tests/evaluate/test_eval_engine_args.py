"""vLLM engine settings of `walkrun eval`: --tensor-parallel-size, --data-parallel-size,
--gpu-memory-utilization and --max-model-len reach the engine, are refused with hf, and
--max-model-len is checked against the prompts; --backend auto picks by GPU."""

from __future__ import annotations

import pytest

from walkrun.evaluate.config import EvalConfig
from walkrun.settings import WalkrunError


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("walkrun: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _eval(cli, model, db_url, *extra):
    return cli(
        "eval",
        "--model",
        model,
        "--tasks",
        "aime24",
        "--limit",
        1,
        "--samples",
        1,
        "--max-new-tokens",
        64,
        "--db",
        db_url,
        "-q",
        *extra,
    )


def test_auto_backend_is_vllm_with_a_gpu_and_hf_without(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert EvalConfig(model="m").backend == "vllm"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert EvalConfig(model="m").backend == "hf"
    assert EvalConfig(model="m", backend="vllm").backend == "vllm"  # an explicit choice stays


def test_engine_flags_with_the_hf_backend_are_refused(cli, tiny_model, db_path, db_url):
    code, _, err = _eval(
        cli, tiny_model, db_url, "--backend", "hf", "--tensor-parallel-size", 2, "--max-model-len", 512
    )
    assert code == 2
    line = _error_line(err)
    assert "--tensor-parallel-size, --max-model-len only apply to --backend vllm" in line
    assert not db_path.exists()
    with pytest.raises(WalkrunError, match="--gpu-memory-utilization must be in"):
        EvalConfig(model="m", backend="vllm", gpu_memory_utilization=1.5)
    with pytest.raises(WalkrunError, match="--data-parallel-size must be >= 1"):
        EvalConfig(model="m", backend="vllm", data_parallel_size=0)


def test_max_model_len_must_hold_the_longest_prompt_and_the_budget(cli, tiny_model, db_path, db_url):
    from walkrun.evaluate.model import engine_context

    # refused before vLLM is even imported: the prompt alone is longer than 32 tokens
    code, _, err = _eval(cli, tiny_model, db_url, "--backend", "vllm", "--max-model-len", 32)
    assert code == 2
    line = _error_line(err)
    assert "--max-model-len 32 is too short" in line and "needs" in line
    assert not db_path.exists()

    def cfg(n):
        return EvalConfig(model="m", backend="vllm", max_model_len=n)

    assert engine_context(cfg(None), need=300, context=4096) == 308  # default: a little slack
    assert engine_context(cfg(None), need=4095, context=4096) == 4096  # never past the model
    assert engine_context(cfg(300), need=300, context=4096) == 300
    with pytest.raises(WalkrunError, match="beyond the model's context of 4096"):
        engine_context(cfg(8192), need=300, context=4096)


@pytest.mark.vllm
def test_engine_settings_reach_lm_eval_and_the_vllm_engine(tiny_model, monkeypatch):
    """lm-eval's VLLM gets every setting; with one replica it builds `vllm.LLM` with them."""
    pytest.importorskip("vllm")
    from walkrun.evaluate import backends, model

    cls = backends.vllm_backend_class()
    import lm_eval.models.vllm_causallms as lm_vllm

    seen: dict[str, dict] = {}

    class Stop(Exception):
        pass

    class SpyLLM:  # stands in for vllm.LLM: records what the engine would be built with
        def __init__(self, **kwargs):
            seen["LLM"] = kwargs
            raise Stop("engine not started in this test")

    monkeypatch.setattr(lm_vllm, "LLM", SpyLLM)
    cfg = EvalConfig(
        model=str(tiny_model), backend="vllm", tensor_parallel_size=1, gpu_memory_utilization=0.5, max_model_len=300
    )
    with pytest.raises(WalkrunError, match="engine not started"):
        model.load_lm(cfg, str(tiny_model), max_model_len=300)
    assert seen["LLM"]["tensor_parallel_size"] == 1
    assert seen["LLM"]["gpu_memory_utilization"] == 0.5
    assert seen["LLM"]["max_model_len"] == 300
    assert seen["LLM"]["model"] == str(tiny_model)

    # Several replicas: lm-eval's constructor gets them (it runs each replica as a Ray task).
    pytest.importorskip("ray")

    def spy_init(self, *args, **kwargs):
        seen["VLLM"] = kwargs
        raise Stop("replicas not started in this test")

    monkeypatch.setattr(lm_vllm.VLLM, "__init__", spy_init)
    cfg = EvalConfig(model=str(tiny_model), backend="vllm", tensor_parallel_size=2, data_parallel_size=4)
    with pytest.raises(WalkrunError, match="replicas not started"):
        model.load_lm(cfg, str(tiny_model), max_model_len=300)
    assert issubclass(cls, lm_vllm.VLLM)
    assert seen["VLLM"]["tensor_parallel_size"] == 2 and seen["VLLM"]["data_parallel_size"] == 4
    assert seen["VLLM"]["max_model_len"] == 300 and "gpu_memory_utilization" not in seen["VLLM"]

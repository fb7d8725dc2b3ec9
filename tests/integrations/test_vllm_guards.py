"""The engine guards on the real vLLM: installed once, the engine's process entry still pickled
by walkrun's name (spawn re-imports it by that name), and refused when vLLM moved what they replace."""

from __future__ import annotations

import pickle

import pytest

from walkrun.integrations import patch, versions, vllm

pytestmark = pytest.mark.vllm


def test_the_guards_install_once_and_spawn_finds_the_entry_by_walkruns_name():
    pytest.importorskip("vllm")
    from vllm.v1.engine.core import EngineCoreProc
    from vllm.v1.engine.core_client import SyncMPClient

    vllm.install_engine_guards()
    entry, shutdown = EngineCoreProc.run_engine_core, SyncMPClient.shutdown
    vllm.install_engine_guards()
    assert (EngineCoreProc.run_engine_core, SyncMPClient.shutdown) == (entry, shutdown)
    assert patch.tag_of(shutdown) == "wakes-waiter"
    assert pickle.loads(pickle.dumps(entry)) is vllm.run_engine_core  # by name, as spawn sends it
    assert patch.original(entry) is not entry  # vLLM's own entry, which the guard calls


def test_the_guards_are_refused_when_vllm_moved_what_they_replace(monkeypatch):
    pytest.importorskip("vllm")
    from vllm.v1.engine import core_client

    monkeypatch.setattr(core_client, "SyncMPClient", type("SyncMPClient", (), {}))  # no shutdown
    with pytest.raises(versions.ChangedInternals, match="SyncMPClient has no shutdown in this vLLM"):
        vllm.install_engine_guards()

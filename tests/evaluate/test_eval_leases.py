"""An evaluation whose lease another process holds is not run twice: `walkrun eval` names the holder
and exits 3 without generating; `walkrun watch` skips it and comes back once the lease is free."""

from __future__ import annotations

import shutil

from walkrun.db import evaluations, leases
from walkrun.evaluate import runner
from walkrun.evaluate.config import EvalConfig
from walkrun.evaluate.model import backend_version
from walkrun.evaluate.watch import Watcher

OTHER = "elsewhere:4242:abcd"
ARGS = ("--tasks", "math500", "--limit", 1, "--samples", 1, "--max-new-tokens", 8, "--threads", 1, "-q")


def _key(cfg: EvalConfig) -> str:
    source, _, _, plans, _ = runner.prepare(cfg)
    bversion = backend_version(cfg.backend)
    requests = [runner.request(p, cfg, bversion) for p in plans]
    return evaluations.survey(cfg.db, runner.checkpoint_ref(cfg, source), requests)["math500"].key


def _config(model, db_url) -> EvalConfig:
    return EvalConfig(
        model=str(model), tasks=["math500"], limit=1, samples=1, max_new_tokens=8, db=db_url, threads=1, progress=False
    )


def test_eval_names_the_holder_and_exits_3_then_runs_once_released(tiny_model, db_path, db_url, cli, query):
    key = _key(_config(tiny_model, db_url))
    assert leases.claim(db_url, key, OTHER, 600) is None

    code, out, err = cli("eval", "--model", tiny_model, "--db", db_url, *ARGS)
    assert code == 3, err[-2000:]
    assert (
        f"being run by another process: math500 [protocol default+k=1,max_new_tokens=8,temperature=0] by {OTHER}" in err
    )
    assert f"held by {OTHER}" in out
    assert query(db_path, "select count(*) from sample") == [(0,)]
    assert query(db_path, "select count(*) from eval_run") == [(0,)]  # not even started

    assert leases.release(db_url, key, OTHER)
    code, out, err = cli("eval", "--model", tiny_model, "--db", db_url, *ARGS)
    assert code == 0, err[-2000:]
    assert query(db_path, "select status, (select count(*) from sample) from eval_run") == [("done", 1)]
    assert query(db_path, "select count(*) from eval_lease") == [(0,)]  # released on finish


def test_watcher_skips_a_held_evaluation_and_takes_it_over_when_the_lease_expires(
    tiny_model, tmp_path, db_path, db_url, query, wait_for
):
    run_dir = tmp_path / "run"
    ckpt = shutil.copytree(tiny_model, run_dir / "global_step10_hf").resolve()
    (ckpt / ".complete").touch()
    logs: list[str] = []
    w = Watcher(run_dir, _config("", db_url), log=logs.append)
    assert leases.claim(db_url, _key(w.config_for(10, ckpt)), OTHER, 2) is None  # a holder that stops beating

    assert w.poll() == [(10, ckpt)]
    assert not w.evaluate(10, ckpt)
    assert w.results[ckpt].startswith("waiting: ") and OTHER in w.results[ckpt]
    assert query(db_path, "select count(*) from sample") == [(0,)]
    assert not w.done()

    ready = wait_for(w.poll, 60)  # polled again once the lease has expired
    assert ready == [(10, ckpt)]
    assert w.evaluate(10, ckpt)
    assert query(db_path, "select status, (select count(*) from sample) from eval_run") == [("done", 1)]
    assert any("will come back to it" in m for m in logs)


def test_unreachable_ray_address_is_a_one_line_error(tiny_model, db_url, cli):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = cli("eval", "--model", tiny_model, "--db", db_url, "--ray", f"127.0.0.1:{port}", *ARGS)
    assert code == 2
    assert f"walkrun: error: cannot join the Ray cluster at '127.0.0.1:{port}'" in err

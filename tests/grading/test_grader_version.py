"""The grader's version names every library whose upgrade can change a verdict, and a new version
is a new evaluation (its own DB key), never a resume that mixes two graders' samples."""

from __future__ import annotations

from importlib.metadata import version

from walkrun import grading
from walkrun.db import store
from walkrun.db.engine import session_scope


def _upgraded(name: str, to: str):
    return lambda pkg: to if pkg == name else version(pkg)


def test_version_names_math_verify_sympy_latex2sympy_and_the_rules():
    parts = dict(p.split("==") for p in grading.GRADER_VERSION.split(";")[:-1])
    assert parts == {name: version(name) for name in ("math-verify", "sympy", "latex2sympy2_extended")}
    assert grading.GRADER_VERSION.endswith(f";walkrun-rules={grading.RULES_VERSION}")
    assert grading.grader_version() == grading.GRADER_VERSION


def test_upgrading_any_parsing_library_changes_the_version():
    seen = {grading.GRADER_VERSION}
    for name in ("math-verify", "sympy", "latex2sympy2_extended"):
        seen.add(grading.grader_version(_upgraded(name, "999.0")))
    assert len(seen) == 4


def test_an_evaluation_under_an_upgraded_sympy_starts_its_own_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'v.db'}"
    now, upgraded = grading.GRADER_VERSION, grading.grader_version(_upgraded("sympy", "999.0"))
    row = {"problem_id": "p", "sample_index": 0, "gold": "1", "response": "\\boxed{1}", "correct": True}
    with session_scope(url) as s:
        ckpt = store.get_or_create_checkpoint(s, "org/m")
        first = store.start_eval_run(s, ckpt, "math500", "1", {"k": 1}, "hf", "1", now)
        store.add_samples(s, first, [{**row, "status": "ok", "n_tokens": 3, "finish_reason": "stop"}])
        store.finish_eval_run(s, first, "failed", error="killed")
        resumed = store.start_eval_run(s, ckpt, "math500", "1", {"k": 1}, "hf", "1", now)
        assert resumed.id == first.id and store.done_sample_keys(s, resumed) == {("p", 0)}
        other = store.start_eval_run(s, ckpt, "math500", "1", {"k": 1}, "hf", "1", upgraded)
        assert other.id != first.id and store.done_sample_keys(s, other) == set()
        assert other.grader_version == upgraded

"""Writes: idempotent samples, the evaluation key, resume, and bad rows refused whole (SQLite and PostgreSQL)."""

import pytest
from sqlalchemy import func, select

from tests.factories import sample
from walkrun.db import store
from walkrun.db.engine import session_scope
from walkrun.db.models import Checkpoint, EvalRun, Sample
from walkrun.settings import WalkrunError

SAMPLING = {"k": 2, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 512, "prompt_template": "qwen-boxed"}


def _rows(problems, k=2, correct=lambda p, i: i == 0):
    return [sample(f"p{p}", i, correct=correct(p, i), n_tokens=10 + p + i) for p in problems for i in range(k)]


def _start(s, source="org/model-7b", **kw):
    ckpt = store.get_or_create_checkpoint(s, source, stage="base")
    return store.start_eval_run(s, ckpt, "math500", "1", dict(SAMPLING, **kw), "hf", "5.19.0", "grader-1")


def _count(s, model=Sample):
    return s.scalar(select(func.count()).select_from(model))


def test_same_samples_twice_store_no_duplicates(db_url):
    with session_scope(db_url) as s:
        run = _start(s)
        assert store.add_samples(s, run, _rows(range(3))) == 6
    with session_scope(db_url) as s:
        run = _start(s)
        # the same rows again, plus two new problems, plus a duplicate inside the batch itself
        again = _rows(range(5)) + _rows([4])
        assert store.add_samples(s, run, again) == 4
        assert store.add_samples(s, run, _rows(range(5))) == 0
    with session_scope(db_url) as s:
        assert _count(s) == 10
        assert _count(s, EvalRun) == 1 and _count(s, Checkpoint) == 1
        assert store.done_sample_keys(s, s.scalars(select(EvalRun)).one()) == {
            (f"p{p}", i) for p in range(5) for i in range(2)
        }


def test_large_batch_is_idempotent_too(db_url):
    rows = _rows(range(600))  # above the size where existing keys are read in one go
    with session_scope(db_url) as s:
        run = _start(s)
        assert store.add_samples(s, run, rows[:700]) == 700
        assert store.add_samples(s, run, rows) == 500
        assert _count(s) == 1200


def test_rerun_with_same_settings_resumes_the_same_eval_run(db_url):
    with session_scope(db_url) as s:
        run = _start(s)
        store.add_samples(s, run, _rows(range(2)))
        store.finish_eval_run(s, run, "failed", error="killed")
        first_id = run.id
    with session_scope(db_url) as s:
        run = _start(s, temperature=0.6000)  # same settings spelled again
        assert run.id == first_id
        assert (run.status, run.error, run.finished_at) == ("running", None, None)
        assert len(store.done_sample_keys(s, run)) == 4
        store.finish_eval_run(s, run, "done")
        assert run.finished_at is not None and run.finished_at.tzinfo is not None
    with session_scope(db_url) as s:
        other = _start(s, temperature=1.0)
        assert other.id != first_id
        assert (other.k, other.temperature, other.max_new_tokens, other.prompt_template) == (2, 1.0, 512, "qwen-boxed")


def test_eval_key_covers_every_setting_and_ignores_spelling():
    base = dict(
        checkpoint_source="/ckpt/global_step20_hf",
        step=20,
        task="aime24",
        task_version="1",
        sampling={"k": 4, "temperature": 1, "top_p": 1.0},
        backend="vllm",
        backend_version="0.32.0",
        grader_version="g1",
    )
    key = store.eval_key(**base)
    assert len(key) == 64 and int(key, 16) >= 0
    assert store.eval_key(**{**base, "sampling": {"top_p": 1, "temperature": 1.0, "k": 4}}) == key
    for field, value in [
        ("checkpoint_source", "/ckpt/global_step40_hf"),
        ("step", 40),
        ("task", "aime25"),
        ("task_version", "2"),
        ("sampling", {"k": 8, "temperature": 1, "top_p": 1.0}),
        ("backend", "hf"),
        ("backend_version", "0.33.0"),
        ("grader_version", "g2"),
    ]:
        assert store.eval_key(**{**base, field: value}) != key, field


def test_get_or_create_returns_existing_rows(db_url, tmp_path):
    ckpt_dir = tmp_path / "run1" / "global_step10_hf"
    ckpt_dir.mkdir(parents=True)
    with session_scope(db_url) as s:
        tr = store.get_or_create_training_run(s, "run1", "local", preset="tiny", config={"lr": 2e-4})
        c1 = store.get_or_create_checkpoint(s, ckpt_dir, training_run=tr, stage="stage2", step=10)
        assert c1.name == "run1@10" and c1.source == str(ckpt_dir.resolve())
    with session_scope(db_url) as s:
        tr2 = store.get_or_create_training_run(s, "run1", "local")
        assert tr2.id == tr.id and tr2.config == {"lr": 2e-4} and tr2.preset == "tiny"
        # the same folder spelled differently is the same checkpoint
        c2 = store.get_or_create_checkpoint(s, str(ckpt_dir) + "/../global_step10_hf", meta={"note": "x"})
        assert c2.id == c1.id and c2.training_run_id == tr.id and c2.meta == {"note": "x"}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"finish_reason": "eos"}, "finish_reason"),
        ({"status": "wrong"}, "status must be one of ok, no_answer, parse_error, timeout, error"),
        ({"n_tokens": 12.5}, "n_tokens"),
        ({"n_tokens": None}, "n_tokens"),
    ],
)
def test_bad_sample_rows_are_refused_and_nothing_is_written(db_url, bad, message):
    rows = _rows(range(3))
    rows[4] = {**rows[4], **bad}
    with pytest.raises(WalkrunError, match=message):
        with session_scope(db_url) as s:
            store.add_samples(s, _start(s), rows)
    with session_scope(db_url) as s:
        assert _count(s) == 0 and _count(s, EvalRun) == 0


def test_missing_sample_fields_are_named(db_url):
    with session_scope(db_url) as s:
        with pytest.raises(WalkrunError, match="lacks gold, n_tokens"):
            store.add_samples(
                s,
                _start(s),
                [
                    {
                        "problem_id": "a",
                        "sample_index": 0,
                        "response": "",
                        "correct": False,
                        "status": "ok",
                        "finish_reason": "stop",
                    }
                ],
            )


def test_sampling_without_k_is_refused(db_url):
    with session_scope(db_url) as s:
        ckpt = store.get_or_create_checkpoint(s, "m")
        with pytest.raises(WalkrunError, match="integer k"):
            store.start_eval_run(s, ckpt, "aime24", "1", {"temperature": 0.6}, "hf", "1", "g")


def test_stage_is_one_of_the_stages_in_code_and_in_the_database(db_url):
    from sqlalchemy.exc import IntegrityError

    from walkrun.stages import STAGES

    with session_scope(db_url) as s:
        for i, stage in enumerate(STAGES):
            assert store.get_or_create_checkpoint(s, f"org/m{i}", stage=stage).stage == stage
    with pytest.raises(WalkrunError, match="checkpoint stage must be one of base, sft, stage1"):
        with session_scope(db_url) as s:
            store.get_or_create_checkpoint(s, "org/other", stage="stage3")
    with pytest.raises(IntegrityError, match="ck_checkpoint_stage"):  # the DB itself refuses it too
        with session_scope(db_url) as s:
            s.add(Checkpoint(name="x", source="org/raw", stage="stage3"))
            s.flush()

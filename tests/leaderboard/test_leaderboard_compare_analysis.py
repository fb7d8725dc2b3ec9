"""The stored-sample comparison page, the stage comparisons' pairing, and the lengths page's
figures, against the DB's own numbers (live server and static build)."""

from __future__ import annotations

import json
import random
import re
from html import unescape

import pytest
from conftest import EVIL_NAME, fill

from walkrun.db import queries, records, sample_pairs
from walkrun.db.engine import session_scope


def _figures(html: str) -> dict:
    return json.loads(html.split('id="lb-figures">', 1)[1].split("</script>", 1)[0])


def _ids(url: str) -> dict[str, int]:
    return {c["name"]: c["id"] for c in records.list_checkpoints(url)}


def test_compare_page_lays_both_checkpoints_samples_side_by_side(lb_db, lb_server):
    ids = _ids(lb_db)
    a, b = ids["concise-tiny stage1@20"], ids[EVIL_NAME]
    status, _, page = lb_server.get(f"compare/{a}-{b}.html")
    assert status == 200
    assert "<script>alert" not in page and "<img src=x" not in page  # the evil model and response, escaped
    text = unescape(page)
    assert EVIL_NAME in text and 'alert("response")' in text
    with session_scope(lb_db, readonly=True) as s:
        ra = {r["task"]: r for r in queries.aggregate(s, model="concise-tiny stage1@20")}
        rb = {r["task"]: r for r in queries.aggregate(s, model="evil/model")}
        want = {t: sample_pairs.pairs(s, ra[t]["eval_run_id"], rb[t]["eval_run_id"]) for t in ra}
    sections = re.findall(r'<section class="pair-eval" id="pair-\d+" data-task="([^"]+)"', page)
    assert sorted(sections) == sorted(want)
    for task, got in want.items():
        block = page.split(f'data-task="{task}"', 1)[1].split("</section>", 1)[0]
        assert block.count('<tr class="pair"') == got["n_common"] == 6
        # every filter option states how many problems it keeps, as the DB module counts them
        for key, n in got["counts"].items():
            assert re.search(rf'<option value="{"" if key == "all" else key}">[^<]*\({n}\)</option>', block), key
        tags = re.findall(r'data-tags="([^"]*)"', block)
        assert [t.split() for t in tags] == [p["tags"] for p in got["problems"]]
    # the evil response is split at its closing think tag: the reasoning folds away
    assert "Let me think.&lt;/think&gt;</pre></details>" in page
    for bad in (f"compare/{a}-{a}.html", f"compare/{a}-99999.html"):
        assert lb_server.get(bad)[0] == 404


@pytest.fixture()
def run_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    fill(url)
    return url


def _diffs(url: str) -> list[dict]:
    from walkrun.leaderboard.data import Source

    source = Source(url)
    return source.stage_diffs(source.rows())


def test_stage_2_is_compared_with_the_checkpoint_it_started_from(run_db):
    ids = _ids(run_db)
    before = [d for d in _diffs(run_db) if d["task"] == "aime24"]
    # nothing recorded: stage 1's last checkpoint, and the label says so
    assert [(d["label"], d["a"], d["b"]) for d in before] == [
        ("stage 2 vs stage 1's last (start not recorded)", "concise-tiny stage1@20", "concise-tiny stage2@20")
    ]
    records.set_stage_start(run_db, "concise-tiny", "stage2", ids["concise-tiny stage1@10"], {"gate": {"step": 10}})
    after = [d for d in _diffs(run_db) if d["task"] == "aime24"]
    assert [(d["label"], d["a"], d["a_id"], d["b"]) for d in after] == [
        ("stage 2 vs its start", "concise-tiny stage1@10", ids["concise-tiny stage1@10"], "concise-tiny stage2@20")
    ]
    with session_scope(run_db, readonly=True) as s:
        from walkrun.db import compare

        rows = {r["model"]: r for r in queries.aggregate(s, task="aime24")}
        paired = compare.paired(
            s, rows["concise-tiny stage1@10"]["eval_run_id"], rows["concise-tiny stage2@20"]["eval_run_id"]
        )
    assert after[0]["delta_accuracy"] == pytest.approx(paired["delta_accuracy"])


def test_a_recorded_run_parent_is_kept_when_a_stage_start_is_added(run_db):
    from walkrun.db import lineage, store
    from walkrun.db.models import Checkpoint, TrainingRun

    ids = _ids(run_db)
    with session_scope(run_db) as s:
        other = store.get_or_create_training_run(s, "branch", "local")
        store.set_lineage(s, other, s.get(Checkpoint, ids["concise-tiny stage1@20"]), {"gate": {"why": "best"}})
    records.set_stage_start(run_db, "concise-tiny", "stage2", ids["concise-tiny stage1@10"], {})
    with session_scope(run_db) as s:
        run = s.query(TrainingRun).filter_by(name="concise-tiny").one()
        origin = store.get_or_create_training_run(s, "origin", "local")
        start = store.get_or_create_checkpoint(s, "/runs/origin/global_step1_hf", training_run=origin, step=1)
        # a run-level lineage recorded later keeps the stage starts
        store.set_lineage(s, run, start, {"gate": {"x": 1}})
    with session_scope(run_db, readonly=True) as s:
        starts = lineage.stage_starts(s)
    assert starts[("concise-tiny", "stage2")]["checkpoint_id"] == ids["concise-tiny stage1@10"]
    assert starts[("branch", None)]["name"] == "concise-tiny stage1@20"
    with pytest.raises(Exception, match="not a checkpoint of training run"):
        records.set_stage_start(run_db, "branch", "stage2", ids["concise-tiny stage1@10"], {})


def test_static_build_writes_each_stage_comparison_and_the_lengths_page(run_db, tmp_path):
    from walkrun.db.models import Problem
    from walkrun.leaderboard.build import BuildConfig, build

    ids = _ids(run_db)
    records.set_stage_start(run_db, "concise-tiny", "stage2", ids["concise-tiny stage1@10"], {})
    rng = random.Random(0)
    with session_scope(run_db) as s:  # MATH-500 levels for the by-level plot
        for p in range(6):
            s.add(Problem(task="math500", problem_id=str(p), answer=str(p + 1), level=str(rng.randint(1, 5))))
    out = tmp_path / "site"
    build(BuildConfig(out=out, db=run_db))
    pair = f"{ids['concise-tiny stage1@10']}-{ids['concise-tiny stage2@20']}"
    assert (out / "compare" / f"{pair}.html").is_file()
    index = (out / "index.html").read_text()
    assert f'href="compare/{pair}.html"' in index and 'href="analysis.html"' in index
    figs = _figures((out / "analysis.html").read_text())
    with session_scope(run_db, readonly=True) as s:
        rows = queries.aggregate(s)
    by_model = {(r["model"], r["task"]): r for r in rows}

    # correct vs wrong answers: the DB's means, per checkpoint along the run
    (lengths,) = [f for k, f in figs.items() if k.startswith("len-")]
    for trace in lengths["data"]:
        task, what = trace["name"].split(": ")
        key = "mean_tokens_correct" if what.startswith("correct") else "mean_tokens_wrong"
        models = [unescape(m) for m in trace["text"]]
        assert trace["y"] == pytest.approx([by_model[(m, task)][key] for m in models])
    # the CDF draws the stage comparison's pair, every other checkpoint a legend click away
    cdf = next(f for f in figs.values() if f["layout"]["title"]["text"] == "aime24: response lengths")
    shown = [unescape(t["name"]) for t in cdf["data"] if t["visible"] is True]
    assert sorted(shown) == ["concise-tiny stage1@10", "concise-tiny stage2@20"]
    assert {t["visible"] for t in cdf["data"]} == {True, "legendonly"}
    t0 = next(t for t in cdf["data"] if t["visible"] is True)
    assert t0["x"] == sorted(t0["x"]) and t0["y"][0] == 0 and t0["y"][-1] == 1 and len(t0["x"]) == 101
    # by difficulty: solve-rate groups from the run's first checkpoint (SFT), and MATH-500 levels
    titles = [f["layout"]["title"]["text"] for f in figs.values() if f["layout"].get("yaxis2", {}).get("domain")]
    assert "concise-tiny · aime24: by solve rate at concise-tiny sft@0" in titles
    assert "concise-tiny · math500: by level" in titles and "concise-tiny · aime24: by level" not in titles


def test_temperature_sweep_plots_accuracy_and_length_against_t(tmp_path):
    from walkrun.db import store
    from walkrun.db.engine import upgrade
    from walkrun.evaluate.protocols import sweeps
    from walkrun.leaderboard.data import Source

    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade(url)
    members = sweeps()["fatemi-temperature"]
    with session_scope(url) as s:
        ckpt = store.get_or_create_checkpoint(s, "/m/x", name="x")
        for j, proto in enumerate(members[:3]):
            temp = [0.0, 0.2, 0.4][j]
            ev = store.start_eval_run(
                s, ckpt, "math500", "1", {"k": 1, "temperature": temp, "protocol": proto}, "hf", "1", "g"
            )
            rows = [
                {"problem_id": str(p), "sample_index": 0, "gold": "1", "response": "r", "correct": p < 3 - j,
                 "status": "ok", "n_tokens": 10 * (j + 1), "finish_reason": "stop"}
                for p in range(4)
            ]  # fmt: skip
            store.add_samples(s, ev, rows)
            store.finish_eval_run(s, ev, "done")
    source = Source(url)
    ctx = source.analysis(source.rows())
    (sweep,) = ctx["sections"]["sweep"]
    fig = json.loads(ctx["figures_json"])[sweep["id"]]
    acc, tok = fig["data"]
    assert acc["x"] == [0.0, 0.2, 0.4] and acc["y"] == pytest.approx([0.75, 0.5, 0.25])
    assert tok["yaxis"] == "y2" and tok["y"] == pytest.approx([10, 20, 30])

"""The served and built pages on a fixture DB: numbers equal `queries.aggregate`, DB text is
escaped, an empty DB explains how to fill it, the static build is self-contained."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html import escape as html_escape

import pytest

from tests.factories import EVIL_NAME, EVIL_RESPONSE
from tests.leaderboard.web import parse_table
from walkrun.settings import WalkrunError


def _aggregate(url):
    from walkrun.db import queries
    from walkrun.db.engine import session_scope

    with session_scope(url, readonly=True, create=False) as s:
        return queries.aggregate(s)


def _num(v):
    return None if v in (None, "") else float(v)


def test_table_numbers_equal_the_db_aggregates(lb_db, lb_server):
    status, _, html = lb_server.get("index.html")
    assert status == 200
    table = {(int(r["data-checkpoint-id"]), r["data-task"]): r for r in parse_table(html, "lb-table")}
    agg = _aggregate(lb_db)
    assert len(agg) == 12 and set(table) == {(a["checkpoint_id"], a["task"]) for a in agg}
    for a in agg:
        row = table[(a["checkpoint_id"], a["task"])]
        assert row["model.text"] == a["model"]
        assert row["stage"] == a["stage"] and row["task"] == a["task"]
        assert (row["training_run"] or None) == a["training_run"]
        assert _num(row["step"]) == a["step"]
        assert _num(row["k"]) == a["k"]
        # Exact values (the cells carry repr(float)); the shown text is their rounding.
        for key in ("accuracy", "maj_at_k", "mean_tokens", "mean_tokens_correct", "truncation_rate", "n_problems"):
            assert _num(row[key]) == a[key], key
        assert _num(row["pass_at_k_top"]) == a["pass_at_k"][a["k"]]
        assert _num(row["acc_per_1k"]) == pytest.approx(a["accuracy"] * 1000 / a["mean_tokens"], rel=1e-12)
        assert row["accuracy.text"] == f"{a['accuracy']:.3f}"
        assert row["truncation_rate.text"] == f"{100 * a['truncation_rate']:.1f}%"
        assert row["grader_version"] == a["grader_version"]
        assert row["evaluated_at"].startswith(a["evaluated_at"].isoformat()[:19])
    assert "still-running" not in html  # an unfinished evaluation is not ranked


def test_model_name_and_responses_with_script_are_shown_as_text(lb_db, lb_server):
    _, headers, html = lb_server.get("index.html")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    # The only scripts: our JSON data block (not executable), plotly.js and leaderboard.js.
    assert re.findall(r"<script[^>]*>", html) == [
        '<script type="application/json" id="lb-figures">',
        '<script src="static/plotly.min.js">',
        '<script src="static/leaderboard.js">',
    ]
    blob = html.split('id="lb-figures">', 1)[1].split("</script>", 1)[0]
    assert "<" not in blob and ">" not in blob
    # Plotly renders some HTML in names, so they are HTML-escaped inside the data as well.
    strings = []

    def walk(x):
        if isinstance(x, dict):
            [walk(v) for v in x.values()]
        elif isinstance(x, list):
            [walk(v) for v in x]
        elif isinstance(x, str):
            strings.append(x)

    walk(json.loads(blob))
    assert any(html_escape(EVIL_NAME, quote=False) in t for t in strings)
    assert not any(EVIL_NAME in t for t in strings)

    evil = next(r for r in parse_table(html, "lb-table") if r["model.text"] == EVIL_NAME)
    status, _, page = lb_server.get(f"checkpoints/{evil['data-checkpoint-id']}.html")
    assert status == 200
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;response&#34;)&lt;/script&gt;" in page
    assert page.count('<pre class="response">') == 2 * 6 * 2  # 2 tasks x 6 problems x 2 shown samples
    assert re.findall(r"<script[^>]*>", page) == ['<script src="../static/leaderboard.js">']
    # Nothing escaped twice: the text a reader sees is the raw response.
    from html import unescape

    assert unescape(EVIL_RESPONSE.replace("<", "&lt;")) in unescape(page)


def test_safe_json_cannot_close_the_script_element():
    from walkrun.leaderboard.pages import safe_json

    value = {"a": "</script><script>alert(1)</script><!--", "b": float("nan"), "c": "x\u2028y & z"}
    text = safe_json(value)
    assert not set("<>&") & set(text) and "\u2028" not in text
    assert json.loads(text) == {"a": value["a"], "b": None, "c": value["c"]}


def test_checkpoint_page_counts_equal_the_stored_samples(lb_db, lb_server):
    from collections import Counter

    from walkrun.db import queries
    from walkrun.db.engine import session_scope

    agg = [a for a in _aggregate(lb_db) if a["model"] == "concise-tiny stage2@20"]
    cid = agg[0]["checkpoint_id"]
    status, _, page = lb_server.get(f"checkpoints/{cid}.html")
    assert status == 200 and "concise-tiny stage2@20" in page
    shown = re.findall(
        r'data-problem-id="([^"]+)">\s*<td><code>[^<]*</code></td>\s*<td class="ans">[^<]*</td>\s*'
        r'<td class="int">(\d+)/(\d+)</td>',
        page,
    )
    assert len(shown) == 2 * 6
    with session_scope(lb_db, readonly=True, create=False) as s:
        want = Counter()
        for a in sorted(agg, key=lambda a: a["task"]):
            for row in queries.samples(s, eval_run_id=a["eval_run_id"]):
                want[(a["task"], row["problem_id"])] += row["correct"]
    got = [int(c) for _, c, n in shown]
    assert got == [want[k] for k in sorted(want)] and all(int(n) == 4 for _, _, n in shown)
    assert lb_server.get("checkpoints/9999.html")[0] == 404


def test_empty_database_shows_which_command_fills_it(empty_db, tmp_path):
    from walkrun.leaderboard import pages
    from walkrun.leaderboard.data import Source

    for url in (empty_db, f"sqlite:///{tmp_path / 'never-created.db'}"):  # schema but no rows; no tables at all
        src = Source(url)
        src.check()
        html = pages.render_index(src.rows(), src.db_label)
        assert 'id="empty-state"' in html and "walkrun eval" in html and "walkrun watch" in html
        assert "plotly.min.js" not in html


def test_static_build_is_self_contained_and_replaces_only_its_own_folder(lb_db, tmp_path):
    from walkrun.leaderboard.build import BuildConfig, build

    out = tmp_path / "site"
    info = build(BuildConfig(out=out, db=lb_db))
    assert info["checkpoints"] == 6 and info["rows"] == 12
    index = (out / "index.html").read_text()
    assert len(parse_table(index, "lb-table")) == 12
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"{i}.html" for i in range(1, 7)]
    assert (out / "static" / "plotly.min.js").stat().st_size > 1_000_000
    for page in [index] + [p.read_text() for p in (out / "checkpoints").iterdir()]:
        for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
            assert not re.match(r"(https?:)?//", ref), ref  # nothing from the network
            if not ref.startswith(("data:", "#")):
                target = (out / ref) if page is index else (out / "checkpoints" / ref)
                assert target.resolve().is_file(), ref
    build(BuildConfig(out=out, db=lb_db))  # a rebuild replaces its own earlier output
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(WalkrunError, match="non-empty folder"):
        BuildConfig(out=foreign, db=lb_db)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_cli_reports_a_taken_port_in_one_line(lb_db, lb_server):
    port = lb_server.url.rstrip("/").rsplit(":", 1)[1]
    r = subprocess.run(
        [sys.executable, "-m", "walkrun.cli", "leaderboard", "serve", "--port", port, "--db", lb_db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("walkrun: error: cannot listen on 127.0.0.1:" + port)
    assert len(r.stderr.strip().splitlines()) == 1


def test_server_binds_localhost_by_default(lb_server):
    assert lb_server.url.startswith("http://127.0.0.1:")


def test_problem_table_shows_a_wrong_and_a_right_sample_and_clips_long_responses():
    from walkrun.leaderboard.checkpoint_page import problem_table
    from walkrun.leaderboard.pages import PageOptions

    rows = [
        {
            "problem_id": "7",
            "sample_index": i,
            "gold": "3",
            "response": "x" * (10 + i),
            "extracted": a,
            "correct": a == "3",
            "n_tokens": 10 + i,
            "finish_reason": "length" if a is None else "stop",
            "status": "ok",
        }
        for i, a in enumerate(["3", "3", "5", None])
    ]
    (p,) = problem_table(rows, PageOptions(samples_per_problem=2, response_chars=11))
    assert (p["n"], p["n_correct"], p["n_truncated"], p["outcome"]) == (4, 2, 1, "mixed")
    assert p["mean_tokens"] == 11.5 and p["answers"][0] == ("3", 2)
    assert [s["sample_index"] for s in p["samples"]] == [0, 2]  # first right, first wrong
    assert [(len(s["text"]), s["clipped"]) for s in p["samples"]] == [(10, 0), (11, 1)]
    (p,) = problem_table(rows, PageOptions(samples_per_problem=0))
    assert p["samples"] == []
    with pytest.raises(WalkrunError):
        PageOptions(samples_per_problem=-1)

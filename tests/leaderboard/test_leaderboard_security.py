"""Security defaults of the leaderboard: headers on every live response, DB text escaped in every
page and context (HTML text, attributes, the plots' JSON), no path outside the app's own files,
and the live page cache following DB changes."""

from __future__ import annotations

import http.client
import json
import re
import time
from html import escape as html_escape
from html import unescape

import pytest
from conftest import Server

# Each breaks out of a different context if it is not escaped: element text, a double-quoted
# attribute, a single-quoted one, a <script> element.
EVIL = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    "</script><script>alert(4)</script>",
]
RAW_MARKERS = ["<script>alert", "<img src=x", "<svg onload", "onerror=alert(2)>"]


def _fill(url: str) -> None:
    from walkrun.db import store
    from walkrun.db.engine import session_scope, upgrade

    upgrade(url)
    with session_scope(url) as s:
        for n, evil in enumerate(EVIL):
            tag = {"name": evil, "role": "stage2", "reward": evil, "seed": 0, "stage1_step": 10}
            run = store.get_or_create_training_run(s, f"{evil} run {n}", "local", config={"ablation": tag, "x": evil})
            ckpt = store.get_or_create_checkpoint(
                s, f"/runs/{n}/global_step{n}_hf", name=f"{evil} model {n}", training_run=run, stage="stage2", step=6
            )
            sampling = {"k": 2, "temperature": 1.0, "max_new_tokens": 64, "protocol": f"{evil} protocol"}
            for task in ("synthetic", "math500"):
                ev = store.start_eval_run(s, ckpt, task, "1", sampling, "hf", evil, evil)
                rows = [
                    {
                        "problem_id": f"{evil} problem {p}",
                        "sample_index": i,
                        "gold": evil,
                        "response": f"{evil} thinking {evil} \\boxed{{{evil}}}",
                        "extracted": evil if i else None,
                        "correct": bool(i),
                        "status": "ok",
                        "n_tokens": 10 + p + i,
                        "finish_reason": "stop",
                    }
                    for p in range(2)
                    for i in range(2)
                ]
                store.add_samples(s, ev, rows)
                store.finish_eval_run(s, ev, "done")


@pytest.fixture(scope="module")
def evil_db(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('evil') / 'results.db'}"
    _fill(url)
    return url


@pytest.fixture(scope="module")
def evil_server(evil_db):
    server = Server(evil_db)
    yield server
    server.stop()


def _check_page(html: str, root: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in html
    # Only our scripts: the JSON data block (never executed), plotly.js and leaderboard.js.
    for tag in re.findall(r"<script[^>]*>", html):
        assert tag in (
            '<script type="application/json" id="lb-figures">',
            f'<script src="{root}static/plotly.min.js">',
            f'<script src="{root}static/leaderboard.js">',
        ), tag
    # No attribute was broken out of: every tag's attributes parse back to known names.
    for attrs in re.findall(r"<[a-z]+\s([^<>]*)>", html):
        for name in re.findall(r'(?:^|\s)([^\s=]+)=(?:"[^"]*"|\'[^\']*\'|[^\s"\'>]+)', attrs):
            assert not name.startswith("on"), name
    if 'id="lb-figures">' in html:
        blob = html.split('id="lb-figures">', 1)[1].split("</script>", 1)[0]
        assert "<" not in blob and ">" not in blob
        json.loads(blob)


def test_every_live_page_shows_db_text_escaped(evil_server):
    status, _, index = evil_server.get("index.html")
    assert status == 200
    _check_page(index, "")
    for evil in EVIL:
        assert f"{evil} model" in unescape(index)  # shown, as text
    ids = sorted(set(re.findall(r'data-checkpoint-id="(\d+)"', index)))
    assert len(ids) == len(EVIL)
    for cid in ids:
        status, _, page = evil_server.get(f"checkpoints/{cid}.html")
        assert status == 200
        _check_page(page, "../")
        text = unescape(page)
        assert any(f"{evil} thinking {evil}" in text for evil in EVIL)  # the response
        assert any(f"{evil} problem 0" in text for evil in EVIL)  # the problem id
    status, _, analysis = evil_server.get("analysis.html")
    assert status == 200
    _check_page(analysis, "")
    figures = json.dumps(json.loads(analysis.split('id="lb-figures">', 1)[1].split("</script>", 1)[0]))
    # in the plots' JSON as Plotly-escaped text (`figures.esc`), so Plotly shows it and runs nothing
    assert any(json.dumps(html_escape(f"{evil} model", quote=False))[1:-1] in figures for evil in EVIL)
    status, _, ablation = evil_server.get("ablation.html")
    assert status == 200
    _check_page(ablation, "")
    assert any(evil in unescape(ablation) for evil in EVIL)  # the run config's ablation tags


@pytest.mark.parametrize(
    "path",
    [
        "/index.html",
        "/",
        "/static/leaderboard.js",
        "/healthz",
        "/nope",
        "/checkpoints/999.html",
        "/analysis.html",
        "/compare/1-999.html",
    ],
)
def test_every_live_response_carries_the_security_headers(evil_server, path):
    host, port = evil_server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    conn.close()
    csp = r.getheader("Content-Security-Policy") or ""
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "object-src 'none'" in csp
    assert "unsafe-eval" not in csp and "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    assert r.getheader("X-Frame-Options") == "DENY"


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e",
        "/static/..",
        "/static/.%2e/leaderboard.js",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/checkpoints/../x.html",
        "/checkpoints/..%2fx.html",
        "/checkpoints/%2e%2e%2f1.html",
        "/checkpoints/-1.html",
        "/compare/1-..%2f2.html",
        "/compare/-1-2.html",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_paths_outside_the_app_are_404(evil_server, path):
    # http.client sends the path as written (no normalising of `..`, no re-encoding)
    host, port = evil_server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 404
    assert b"root:" not in body


def test_live_config_binds_localhost_by_default():
    from walkrun.leaderboard.server import LiveConfig

    assert LiveConfig().host == "127.0.0.1"


def test_static_build_escapes_db_text_and_carries_the_csp_meta_tag(evil_db, tmp_path):
    from walkrun.leaderboard.build import BuildConfig, build

    info = build(BuildConfig(out=tmp_path / "site", db=evil_db))
    pages = sorted((tmp_path / "site").rglob("*.html"))
    # index, analysis, ablation, one page per checkpoint and per training run (the runs' names are
    # injections too); no stage comparison, so no compare pages
    assert info["checkpoints"] == len(EVIL) and info["runs"] > 0 and len(pages) == 3 + len(EVIL) + info["runs"]
    for p in pages:
        html = p.read_text()
        meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
        assert meta and "script-src 'self'" in meta.group(1) and "object-src 'none'" in meta.group(1), p
        _check_page(html, "../" if p.parent.name in ("checkpoints", "runs", "compare") else "")


def test_live_pages_follow_the_database_after_the_refresh_interval(tmp_path):
    """A page served from memory is replaced once the DB changes: a renamed model and a new
    finished evaluation show up on a reload (checked here by polling, never by timing)."""
    from walkrun.db import store
    from walkrun.db.engine import dispose_engines, session_scope

    url = f"sqlite:///{tmp_path / 'live.db'}"
    _fill(url)
    server = Server(url, "--refresh", "0.2")
    try:
        _, _, before = server.get("index.html")
        assert "fresh-model" not in before
        with session_scope(url) as s:
            ckpt = store.get_or_create_checkpoint(s, "/runs/0/global_step0_hf", name="fresh-model")
            ev = store.start_eval_run(s, ckpt, "math500", "2", {"k": 1}, "hf", "1", "g")
            store.add_samples(
                s,
                ev,
                [
                    dict(problem_id="1", sample_index=0, gold="1", response="1", correct=True, status="ok")
                    | dict(n_tokens=3, finish_reason="stop")
                ],
            )
            store.finish_eval_run(s, ev, "done")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, _, after = server.get("index.html")
            if "fresh-model" in after:
                break
            time.sleep(0.1)
        assert "fresh-model" in after
        cid = ckpt.id
        _, _, page = server.get(f"checkpoints/{cid}.html")
        assert "fresh-model" in page
    finally:
        server.stop()
        dispose_engines()

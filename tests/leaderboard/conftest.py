"""A small results DB written through `walkrun.db.store`, shared by the leaderboard tests.

One training run (SFT -> stage 1 -> stage 2 whose steps restart at 10), an external model whose
name and responses are HTML/script injections, and an evaluation still running (never shown).
"""

from __future__ import annotations

import random

import pytest

EVIL_NAME = '<script>alert("name")</script><img src=x onerror=alert(2)>'
EVIL_RESPONSE = 'Let me think.</think> <script>alert("response")</script><img src=x onerror=alert(3)> \\boxed{7}'
TASKS = ("aime24", "math500")
K = 4
N_PROBLEMS = 6


def _samples(rng: random.Random, p_correct: float, mean_tokens: int, evil: bool = False) -> list[dict]:
    rows = []
    for p in range(N_PROBLEMS):
        for i in range(K):
            correct = rng.random() < p_correct
            n_tokens = max(1, int(rng.gauss(mean_tokens, mean_tokens / 5)))
            truncated = n_tokens > 1.5 * mean_tokens
            answer = str(p + 1) if correct else str(rng.randint(20, 30))
            response = EVIL_RESPONSE if evil else f"step {i}... so the answer is \\boxed{{{answer}}}"
            rows.append(
                {
                    "problem_id": str(p),
                    "sample_index": i,
                    "gold": str(p + 1),
                    "response": response,
                    "extracted": None if truncated else answer,
                    "correct": correct and not truncated,
                    "status": "no_answer" if truncated else "ok",
                    "n_tokens": n_tokens,
                    "finish_reason": "length" if truncated else "stop",
                }
            )
    return rows


def fill(url: str) -> None:
    from walkrun.db import store
    from walkrun.db.engine import session_scope, upgrade

    upgrade(url)
    rng = random.Random(0)
    sampling = {"k": K, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 512}
    with session_scope(url) as s:
        run = store.get_or_create_training_run(s, "concise-tiny", "local", preset="tiny")
        plan = [
            ("sft", 0, 0.30, 300),
            ("stage1", 10, 0.45, 330),
            ("stage1", 20, 0.55, 340),
            ("stage2", 10, 0.60, 220),
            ("stage2", 20, 0.62, 160),
        ]
        for stage, step, acc, tokens in plan:
            ckpt = store.get_or_create_checkpoint(
                s,
                f"/runs/concise-tiny/{stage}/global_step{step}_hf",
                name=f"concise-tiny {stage}@{step}",
                training_run=run,
                stage=stage,
                step=step,
            )
            for t, task in enumerate(TASKS):
                ev = store.start_eval_run(s, ckpt, task, "1", sampling, "hf", "5.19", "grader-1")
                store.add_samples(s, ev, _samples(rng, acc - 0.1 * t, tokens * (1 + t)))
                store.finish_eval_run(s, ev, "done")
        evil = store.get_or_create_checkpoint(s, "evil/model", name=EVIL_NAME, stage="external")
        for task in TASKS:
            ev = store.start_eval_run(s, evil, task, "1", sampling, "hf", "5.19", "grader-1")
            store.add_samples(s, ev, _samples(rng, 0.5, 250, evil=True))
            store.finish_eval_run(s, ev, "done")
        # Still running: must not reach the page.
        wip = store.get_or_create_checkpoint(s, "wip/model", name="still-running", stage="external")
        ev = store.start_eval_run(s, wip, "aime24", "1", sampling, "hf", "5.19", "grader-1")
        store.add_samples(s, ev, _samples(rng, 0.9, 100))


@pytest.fixture(scope="session")
def lb_db(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('lbdb') / 'results.db'}"
    fill(url)
    return url


@pytest.fixture()
def empty_db(tmp_path) -> str:
    from walkrun.db.engine import upgrade

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    return url


class Server:
    """`walkrun leaderboard serve` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, url_db: str, *extra: str):
        import subprocess
        import sys
        import threading

        # `python -m walkrun.cli` is the `walkrun` command (its entry point) without relying on
        # the venv's generated console script.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "walkrun.cli", "leaderboard", "serve", "--port", "0", "--db", url_db, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("walkrun leaderboard: http://"):
                    self.url = line.split()[2]
                    self.ready.set()
            self.ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not self.ready.wait(60) or not hasattr(self, "url"):
            self.stop()
            raise RuntimeError("leaderboard server did not start:\n" + "".join(self.lines))
        self.wait_healthy()

    def wait_healthy(self) -> None:
        import time
        import urllib.request

        for _ in range(100):
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=5) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("leaderboard server never answered /healthz:\n" + "".join(self.lines))

    def get(self, path: str) -> tuple[int, dict, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="session")
def lb_server(lb_db):
    server = Server(lb_db)
    yield server
    server.stop()


def parse_table(html: str, table_id: str) -> list[dict]:
    """Rows of the results table `table_id` (laid out or in its <template>): the <tr> data
    attributes plus, per cell,
    "<key>" -> data-v (the exact value) and "<key>.text" -> the text shown."""
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.rows, self.cell, self.depth = False, [], None, 0

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            # The rows past the first page wait in <template id="<table_id>-rest">.
            if tag in ("table", "template") and a.get("id") in (table_id, table_id + "-rest"):
                self.inside = True
            elif self.inside and tag == "tr" and "data-checkpoint-id" in a:
                self.rows.append({k: v for k, v in a.items() if k.startswith("data-")})
            elif self.inside and tag == "td" and self.rows:
                self.cell = a["data-key"]
                self.rows[-1][self.cell] = a.get("data-v")
                self.rows[-1][self.cell + ".text"] = ""

        def handle_endtag(self, tag):
            if tag == "td":
                self.cell = None
            elif tag in ("table", "template") and self.inside:
                self.inside = False

        def handle_data(self, d):
            if self.cell is not None:
                self.rows[-1][self.cell + ".text"] += d

    p = P()
    p.feed(html)
    for r in p.rows:
        for k in [k for k in r if k.endswith(".text")]:
            r[k] = r[k].strip()
    return p.rows

"""`walkrun eval --endpoint` against walkrun's own vLLM server of SmolLM2 (with vLLM's olmo3
reasoning parser, which finds `<think>`/`</think>` written as ordinary tokens), directly and through a small real HTTP proxy that answers 429/500 for a while
or goes away mid-run. The server is started once for this module."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

KEY = "endpoint-test-key-7f3a"
NAME = "smollm2"
WALKRUN = str(Path(sys.executable).with_name("walkrun"))


@pytest.fixture(scope="module")
def server(smollm2):
    pytest.importorskip("vllm")
    from walkrun.serve.vllm_server import start_server

    # float32: vLLM's CPU build dies in bf16 on some CPUs (SIGILL), and the folder is float32 anyway
    s = start_server(
        str(smollm2),
        name=NAME,
        api_key=KEY,
        max_model_len=2048,
        # deepseek_r1 refuses a vocabulary without <think> tokens; olmo3 reads the tags as text
        reasoning_parser="olmo3",
        extra_args=["--dtype", "float32"],
    )
    yield s
    s.stop()


class Proxy:
    """A real HTTP server in front of the vLLM server: answers `failures` (HTTP statuses) to the
    first POSTs, forwards the rest; `die_after` forwarded POSTs, it stops listening."""

    def __init__(self, upstream: str, failures=(), die_after: int | None = None, port: int = 0):
        self.upstream, self.failures, self.die_after = upstream.rstrip("/"), list(failures), die_after
        self.posts = 0
        self.forwarded = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self, body: bytes | None):
                req = urllib.request.Request(
                    proxy.upstream + self.path.removeprefix("/v1"),
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")},
                    method=self.command,
                )
                try:
                    with urllib.request.urlopen(req, timeout=300) as r:
                        status, data = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                self._send(status, data)

            def _send(self, status: int, data: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.posts += 1
                    status = proxy.failures.pop(0) if proxy.failures else None
                if status is not None:
                    self._send(status, json.dumps({"error": {"message": f"proxy says {status}"}}).encode())
                    return
                self._forward(body)
                with proxy.lock:
                    proxy.forwarded += 1
                    dying = proxy.die_after is not None and proxy.forwarded >= proxy.die_after
                if dying:
                    threading.Thread(target=proxy.stop, daemon=True).start()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _eval(url: str, db: Path, *extra: str, key: str | None = KEY, timeout: float = 600):
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    cmd = [WALKRUN, "eval", "--endpoint", url, "--model", NAME, "--tasks", "math500", "--db", f"sqlite:///{db}", "-q"]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=timeout, env=env)


def _rows(db: Path, sql: str):
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_endpoint_eval_keeps_usage_counts_reasoning_split_and_the_endpoint_as_identity(server, tmp_path):
    import openai

    from walkrun import problem_sets
    from walkrun.prompts import with_instruction

    db = tmp_path / "e.db"
    r = _eval(server.url, db, "--limit", "3", "--protocol", "greedy", "--max-new-tokens", "48", "--concurrency", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "3 responses, 3 requests sent, 0 failed" in r.stderr
    assert KEY not in r.stdout + r.stderr
    assert _rows(db, "select source from checkpoint") == [(f"endpoint:{server.url}#{NAME}",)]
    assert _rows(db, "select backend, protocol from eval_run") == [("endpoint", "greedy+max_new_tokens=48")]
    stored = _rows(db, "select problem_id, response, n_tokens, think_tokens, answer_tokens, finish_reason from sample")
    assert len(stored) == 3
    # the same greedy requests made directly: the stored text, count, split and finish reason are the server's
    client = openai.OpenAI(base_url=server.url, api_key=KEY)
    by_id = {str(row["id"]): row for row in problem_sets.load("math500", limit=3)}
    for pid, response, n, t, a, finish in stored:
        direct = client.chat.completions.create(
            model=NAME,
            messages=[{"role": "user", "content": with_instruction(by_id[pid]["problem"])}],
            max_tokens=48,
            temperature=0,
        )
        choice, usage = direct.choices[0], direct.usage
        assert response == (choice.message.content or "") and n == usage.completion_tokens
        assert finish == ("length" if choice.finish_reason == "length" else "stop")
        reported = usage.completion_tokens_details.reasoning_tokens if usage.completion_tokens_details else None
        assert t == reported and t + a == n  # SmolLM2 writes no think block: the parser reports 0
    assert KEY.encode() not in db.read_bytes()  # the key is in no row of any table


def test_a_server_answering_429_and_500_for_a_while_is_retried_with_back_off(server, tmp_path):
    proxy = Proxy(server.url, failures=[429, 429, 500, 503])
    try:
        db = tmp_path / "r.db"
        r = _eval(proxy.url, db, "--limit", "2", "--protocol", "greedy", "--max-new-tokens", "24", "--concurrency", "1")
        assert r.returncode == 0, r.stderr[-3000:]
        assert "2 responses, 6 requests sent, 4 failed" in r.stderr
        assert proxy.posts == 6
        assert len(_rows(db, "select id from sample")) == 2
    finally:
        proxy.stop()


def test_a_server_killed_mid_run_fails_in_one_line_and_the_same_command_resumes(server, tmp_path):
    db = tmp_path / "k.db"
    proxy = Proxy(server.url, die_after=2)
    port = proxy.port
    args = (
        "--limit",
        "5",
        "--protocol",
        "greedy",
        "--max-new-tokens",
        "24",
        "--concurrency",
        "1",
        "--max-retries",
        "2",
    )
    r = _eval(proxy.url, db, *args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and KEY not in r.stderr
    kept = _rows(db, "select problem_id from sample order by id")
    assert len(kept) == 2  # the problems answered before the server went away are committed
    assert _rows(db, "select status from eval_run") == [("failed",)]
    again = Proxy(server.url, port=port)  # the same endpoint back up
    try:
        r = _eval(again.url, db, *args)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "3 samples to generate" in r.stderr
        assert again.posts == 3
        rows = _rows(db, "select problem_id from sample order by id")
        assert rows[:2] == kept and len(set(rows)) == 5
    finally:
        again.stop()


def test_bad_key_and_unknown_model_are_one_line_errors(server, tmp_path):
    db = tmp_path / "b.db"
    r = _eval(server.url, db, "--limit", "1", "--max-new-tokens", "8", key="wrong")
    assert r.returncode != 0 and "HTTP 401" in r.stderr and "OPENAI_API_KEY" in r.stderr
    assert "Traceback" not in r.stderr and "wrong" not in r.stderr
    r = subprocess.run(
        [WALKRUN, "eval", "--endpoint", server.url, "--model", "nope", "--tasks", "math500", "--db", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "OPENAI_API_KEY": KEY},
        timeout=300,
    )
    assert r.returncode != 0 and f"serves: {NAME}" in r.stderr


def test_side_by_side_demo_streams_the_real_model_on_both_sides_and_grades_it(server):
    from gradio_client import Client

    from walkrun import grading, problem_sets
    from walkrun.serve.side_by_side.app import launch
    from walkrun.serve.side_by_side.config import SideBySideConfig

    demo = launch(SideBySideConfig(a=server.url, b=server.url, api_key=KEY, max_tokens=48))
    try:
        row = problem_sets.load("math500", limit=1)[0]
        client = Client(demo.url, verbose=False)
        prompt, gold = client.predict("math500", row["id"], api_name="/use_problem")
        final = client.predict(prompt, 0.0, 48, gold, api_name="/compare")
        stats = (final[2], final[5])
        for st in stats:
            assert st["status"] == "done" and st["model"] == NAME and 0 < st["completion_tokens"] <= 48
            assert st["grade_status"] in grading.STATUSES
        # one greedy model on both sides: the same answer, the same verdict
        assert final[0] == final[3] and stats[0]["grade_status"] == stats[1]["grade_status"]
        assert stats[0]["completion_tokens"] == stats[1]["completion_tokens"]
    finally:
        demo.close()

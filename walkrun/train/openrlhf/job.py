"""The Ray job's entrypoint: check the job from inside the cluster, then run OpenRLHF's `train_ppo_ray`.

    python3 -m walkrun.train.openrlhf.job [train_ppo_ray flags ...]      (what launch.sh submits)

First a probe task runs in a Ray worker process of this job, where the runtime env's
`worker_process_setup_hook` has run, and reports: whether walkrun's length hook wraps OpenRLHF's
`apply_length_penalties` there (it must when the env asks for a length reward; and, for a reward
that reweights advantages, `compute_advantages_and_returns`), where walkrun is
imported from, and the reward file loaded the way OpenRLHF loads it (`--reward.remote_url`,
relative to the job's working_dir) scoring a known right and wrong answer. Then the cluster must
hold the GPUs the flags ask for: without them OpenRLHF's first placement group would wait forever,
so the job stops there with a message instead. Only then does `train_ppo_ray` run, unchanged.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys

import walkrun
from walkrun.integrations import openrlhf as openrlhf_integration
from walkrun.train.length_rewards import get
from walkrun.train.openrlhf import hook

TRAINER = "openrlhf.cli.train_ppo_ray"
PROBE_ANSWER = "4"


def job_needs(argv: list[str]) -> argparse.Namespace:
    """The flags this entrypoint reads (OpenRLHF's defaults when absent); the rest is OpenRLHF's."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--actor.num_nodes", type=int, default=1)
    p.add_argument("--actor.num_gpus_per_node", type=int, default=8)
    p.add_argument("--reward.remote_url", default=None)
    return p.parse_known_args(argv)[0]


def gpus_needed(needs: argparse.Namespace) -> int:
    """A lower bound: the actor's placement group alone (colocated runs share it with the rest)."""
    return getattr(needs, "actor.num_nodes") * getattr(needs, "actor.num_gpus_per_node")


def probe(reward_url: str | None) -> dict:
    """What one Ray worker process of this job sees (run as a Ray task)."""
    out: dict = {"pid": os.getpid(), "cwd": os.getcwd(), "walkrun": walkrun.__file__}
    out["expected"] = hook.length_reward_name()
    out["hook"] = hook.active_reward()  # set by the setup hook when this worker started, or None
    if out["expected"]:
        out["reweight_expected"] = get(out["expected"]).reweight is not None
        out["reweight"] = hook.active_reweight()
    if reward_url:
        out["reward_file"] = os.path.abspath(reward_url)
        prompt = "What is 2 + 2?\n"
        scores = [
            openrlhf_integration.reward_file_scores(
                reward_url, [prompt + f"The answer is \\boxed{{{a}}}.<|im_end|>"], [prompt], [PROBE_ANSWER]
            )[0]
            for a in (PROBE_ANSWER, "5")
        ]
        out["reward_scores"] = scores
    return out


def check(report: dict, reward_url: str | None) -> list[str]:
    """Problems in a probe report (empty: the job may go on)."""
    problems = []
    if report["expected"] and report["hook"] != report["expected"]:
        problems.append(
            f"the runtime env asks for length reward {report['expected']!r} but OpenRLHF's apply_length_penalties "
            f"is {'wrapped for ' + repr(report['hook']) if report['hook'] else 'not wrapped'} in worker "
            f"{report['pid']} (is walkrun.train.openrlhf.hook.install the job's worker_process_setup_hook?)"
        )
    if report.get("reweight_expected") and report.get("reweight") != report["expected"]:
        problems.append(
            f"length reward {report['expected']!r} reweights advantages, but OpenRLHF's compute_advantages_and_returns "
            f"is not wrapped for it in worker {report['pid']}"
        )
    if reward_url and report.get("reward_scores") != [1.0, 0.0]:
        problems.append(
            f"the reward file {report.get('reward_file')} scored a right and a wrong answer {report.get('reward_scores')}"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    import ray

    needs = job_needs(argv)
    reward_url = getattr(needs, "reward.remote_url")
    if reward_url and not reward_url.endswith(".py"):
        reward_url = None  # a reward model server, not a file: nothing to load here
    ray.init()  # inside `ray job submit`: this job's cluster and runtime env
    try:
        report = ray.get(ray.remote(num_cpus=0)(probe).remote(reward_url))
        gpus = int(ray.cluster_resources().get("GPU", 0))
    finally:
        ray.shutdown()  # train_ppo_ray calls ray.init itself, with its own env defaults
    hook_line = f"hook active ({report['hook']})" if report["hook"] else "hook not active (stock OpenRLHF shaping)"
    print(f"walkrun job: worker pid {report['pid']}, cwd {report['cwd']}, walkrun from {report['walkrun']}", flush=True)
    print(f"walkrun job: {hook_line}", flush=True)
    if reward_url:
        print(
            f"walkrun job: reward file {reward_url} -> {report['reward_file']}, "
            f"scores right/wrong {report['reward_scores']}",
            flush=True,
        )
    problems = check(report, reward_url)
    if problems:
        print("walkrun job: error: " + "; ".join(problems), file=sys.stderr, flush=True)
        return 2
    need = gpus_needed(needs)
    if gpus < need:
        print(
            f"walkrun job: stopped before training: OpenRLHF needs at least {need} GPUs here "
            f"(--actor.num_nodes x --actor.num_gpus_per_node) and this Ray cluster has {gpus}; its placement "
            "group would wait forever. Start the Ray nodes with GPUs (`ray start --num-gpus N`) or lower "
            "gpus_per_node / nodes. No training step ran.",
            file=sys.stderr,
            flush=True,
        )
        return 3
    sys.argv = [TRAINER, *argv]
    runpy.run_module(TRAINER, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`walkrun demo`: the whole pipeline end to end on one CPU machine, the two papers in miniature.

    walkrun demo                       # ~10-15 min on 2 cores; workdir runs/demo-seed0
    walkrun demo --fast                # a smoke-sized run (< 5 min), what the test runs
    walkrun demo --seed 1 --workdir runs/d1

It is built from the product's own parts:
1. `walkrun.train.recipe` (also `walkrun train recipe`) trains WORKDIR/models: SFT of a ~199k-param
   char-level Qwen2 on the synthetic running-sum task's demonstrator (it slips on hard steps and
   re-checks them), stage 1 (GRPO++), stage 2 (L-GRPO, several checkpoints: its evaluation is a
   curve) and the control (stage 1's reward continued for stage 2's budget), which start from the
   stage-1 checkpoint the gate chose; the verdicts compare them with that checkpoint.
2. `walkrun watch --until-finished --eval-set WORKDIR/eval_set.yaml` runs beside it as a subprocess
   and evaluates every checkpoint as it appears: the synthetic task through lm-eval sampled at T=1
   (pass@1[avg-of-k], the metric RL moves) and greedy, and a slice of MATH-500 (a real benchmark
   that a model of running sums cannot solve: it shows the path works, not skill). Every sample
   lands in the demo's DB (WALKRUN_DB if set, else WORKDIR/walkrun.db); its log is logs/eval.log.
3. The leaderboard is built to WORKDIR/site and the table is read back from the DB
   (`walkrun.demo.summary`), with the side-by-side serving command.

Re-running on a finished workdir only re-reads results (every evaluation is keyed, nothing is
generated twice); a workdir whose training stage was interrupted after some of its checkpoints
were evaluated is refused, since a retrained stage would write the same checkpoint paths.
"""

from walkrun.demo.config import PROFILES, DemoConfig
from walkrun.demo.run import run_demo

__all__ = ["PROFILES", "DemoConfig", "run_demo"]

"""The ablation's numbers, read back from the results DB: rows, ablation.json and the printed table."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from walkrun.db import records
from walkrun.db.read_models import ResultRow
from walkrun.settings import WalkrunError
from walkrun.synthetic import BOX, eval_rows

TASK = "synthetic"
HARD_CARRIES = 2  # a problem with >= 2 carries has a hard step (walkrun.synthetic.is_hard): re-checks matter


def _sampled(rows: Sequence[ResultRow], k: int) -> list[ResultRow]:
    return [r for r in rows if (r.get("temperature") or 0) > 0 and r["k"] == k and r["accuracy"] is not None]


def sample_stats(db: str | None, eval_run_id: int) -> dict:
    """Per-problem 95 % CI of the accuracy; accuracy and mean tokens on easy (< 2 carries) and hard
    problems; re-checks per completion and the direct-answer rate."""
    carries = {r["id"]: r["carries"] for r in eval_rows()}
    per_problem: dict[str, list[int]] = defaultdict(list)
    by_level: dict[str, list[tuple[int, int]]] = defaultdict(list)
    direct, rechecks = [], []
    for r in records.eval_samples(db, eval_run_id, include_text=True):
        ok = int(bool(r["correct"]))
        per_problem[r["problem_id"]].append(ok)
        level = "hard" if carries.get(r["problem_id"], 0) >= HARD_CARRIES else "easy"
        by_level[level].append((ok, int(r["n_tokens"])))
        text = (r.get("response") or "").lstrip()
        direct.append(int(text.startswith(BOX)))
        rechecks.append(text.count(";r"))
    accs = [sum(v) / len(v) for v in per_problem.values()]
    m = len(accs)
    mean = sum(accs) / m if m else math.nan
    half = 1.96 * statistics.stdev(accs) / math.sqrt(m) if m > 1 else math.nan
    out = {
        "ci_low": max(0.0, mean - half),  # a normal interval over problems, clipped to [0, 1]
        "ci_high": min(1.0, mean + half),
        "direct_rate": sum(direct) / len(direct) if direct else None,
        "rechecks": sum(rechecks) / len(rechecks) if rechecks else None,
    }
    for level in ("easy", "hard"):
        v = by_level[level]
        out[f"{level}_accuracy"] = sum(x[0] for x in v) / len(v) if v else None
        out[f"{level}_mean_tokens"] = sum(x[1] for x in v) / len(v) if v else None
    return out


def _latest(db: str | None, run_name: str, k: int) -> dict[int, ResultRow]:
    """step -> the sampled-evaluation aggregate of that checkpoint of `run_name` ({} if none)."""
    try:
        rows = _sampled(records.trajectory(db, run_name, task=TASK), k)
    except WalkrunError:
        return {}
    return {step: r for r in rows if (step := r["step"]) is not None}


def evaluated_steps(db: str | None, run_name: str, k: int, n_problems: int) -> set[int]:
    """Steps of `run_name` with a finished sampled evaluation of k samples on n_problems problems."""
    return {step for step, r in _latest(db, run_name, k).items() if r["n_problems"] == n_problems}


def _point(db: str | None, row: ResultRow | None) -> dict:
    if row is None:
        return {"accuracy": None, "mean_tokens": None}
    out = {"accuracy": row["accuracy"], "mean_tokens": row["mean_tokens"], "eval_run_id": row["eval_run_id"]}
    out.update(sample_stats(db, row["eval_run_id"]))
    return out


def collect(cfg, starts: list[int], last: int) -> list[dict]:
    """One row per reward x seed (x stage-1 start step) with the stage-1 numbers it started from."""
    rows = []
    stage1 = _latest(cfg.db, f"{cfg.prefix}-stage1", cfg.eval_samples)
    for step in starts:
        base = _point(cfg.db, stage1.get(step))
        for reward in cfg.reward_list:
            for seed in cfg.seed_list:
                tag = f"{reward}-s{seed}" + ("" if step == last else f"-from{step}")
                evals = _latest(cfg.db, f"{cfg.prefix}-{tag}", cfg.eval_samples)
                p = _point(cfg.db, evals[max(evals)] if evals else None)
                row = {"reward": reward, "seed": seed, "stage1_step": step, "run": f"{cfg.prefix}-{tag}", **p}
                row["stage1_accuracy"] = base["accuracy"]
                row["stage1_mean_tokens"] = base["mean_tokens"]
                for key in ("easy_accuracy", "hard_accuracy", "easy_mean_tokens", "hard_mean_tokens", "rechecks"):
                    row[f"stage1_{key}"] = base.get(key)
                row["stage1_direct_rate"] = base.get("direct_rate")
                if p["accuracy"] is not None and base["accuracy"] is not None:
                    row["d_accuracy"] = p["accuracy"] - base["accuracy"]
                    row["d_tokens_pct"] = 100.0 * (p["mean_tokens"] / base["mean_tokens"] - 1.0)
                rows.append(row)
    return rows


def _f(x, spec: str, width: int) -> str:
    """`x` right-aligned in `width` with `spec` ('.3f', '+.1f'); '-' when missing."""
    if not isinstance(x, (int, float)) or math.isnan(x):
        return f"{'-':>{width}}"
    sign = "+" if spec.startswith("+") else ""
    return f"{x:{sign}{width}{spec.lstrip('+')}}"


def format_table(rows: list[dict]) -> str:
    """Per run, then the seed means per reward (and start step); easy/hard = fewer than / at least
    HARD_CARRIES carries (accuracy / mean tokens)."""
    head = (
        f"{'reward':<14} {'seed':>4} {'from':>5} {'accuracy [95% CI]':>22} {'d acc':>6} {'tokens':>7} "
        f"{'d tok%':>7} {'easy acc/tok':>12} {'hard acc/tok':>12} {'rechk':>5} {'direct':>6}"
    )

    def level(acc, tok) -> str:
        return f"{_f(acc, '.3f', 5)}/{_f(tok, '.1f', 5)}" if acc is not None else f"{'-':>11}"

    lines = [head, "-" * len(head)]
    for r in rows:
        ci = f"[{_f(r.get('ci_low'), '.3f', 5)}, {_f(r.get('ci_high'), '.3f', 5)}]"
        lines.append(
            f"{r['reward']:<14} {r['seed']:>4} {r['stage1_step']:>5} {_f(r['accuracy'], '.3f', 6)} {ci:>15} "
            f"{_f(r.get('d_accuracy'), '+.3f', 6)} {_f(r['mean_tokens'], '.1f', 7)} "
            f"{_f(r.get('d_tokens_pct'), '+.1f', 7)} {level(r.get('easy_accuracy'), r.get('easy_mean_tokens')):>12} "
            f"{level(r.get('hard_accuracy'), r.get('hard_mean_tokens')):>12} {_f(r.get('rechecks'), '.2f', 5)} "
            f"{_f(r.get('direct_rate'), '.3f', 6)}"
        )
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["reward"], r["stage1_step"])].append(r)
    lines += ["", "mean over seeds", head.replace(" seed", "    n"), "-" * len(head)]
    for (reward, step), rs in groups.items():
        ok = [r for r in rs if r["accuracy"] is not None]

        def m(key, ok=ok):
            vals = [r[key] for r in ok if r.get(key) is not None]
            return sum(vals) / len(vals) if vals else math.nan

        lines.append(
            f"{reward:<14} {len(ok):>4} {step:>5} {_f(m('accuracy'), '.3f', 6)} {'':>15} "
            f"{_f(m('d_accuracy'), '+.3f', 6)} {_f(m('mean_tokens'), '.1f', 7)} {_f(m('d_tokens_pct'), '+.1f', 7)} "
            f"{level(m('easy_accuracy'), m('easy_mean_tokens')):>12} {level(m('hard_accuracy'), m('hard_mean_tokens')):>12} "
            f"{_f(m('rechecks'), '.2f', 5)} {_f(m('direct_rate'), '.3f', 6)}"
        )
    base: dict[int, dict] = {}
    for r in rows:
        base.setdefault(r["stage1_step"], r)
    for step, r in sorted(base.items()):
        lines.append(
            f"stage 1 at step {step}: accuracy {_f(r['stage1_accuracy'], '.3f', 0)}, mean tokens "
            f"{_f(r['stage1_mean_tokens'], '.1f', 0)}, easy {level(r.get('stage1_easy_accuracy'), r.get('stage1_easy_mean_tokens'))}, "
            f"hard {level(r.get('stage1_hard_accuracy'), r.get('stage1_hard_mean_tokens'))}, "
            f"re-checks {_f(r.get('stage1_rechecks'), '.2f', 0)}, direct {_f(r['stage1_direct_rate'], '.3f', 0)}"
        )
    return "\n".join(lines)


def write(cfg, rows: list[dict], root: Path) -> Path:
    """DIR/ablation.json (a list of rows) and DIR/ablation.txt (the table); the table is printed."""
    path = Path(root) / "ablation.json"
    path.write_text(json.dumps(rows, indent=2) + "\n")
    table = format_table(rows)
    (Path(root) / "ablation.txt").write_text(table + "\n")
    print(table, flush=True)
    return path

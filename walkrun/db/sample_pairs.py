"""Two evaluations' stored responses to the same problems, side by side: per problem, each
checkpoint's correct count, tokens (with the exact think / answer split), cut samples, the
samples themselves and the gold answer. Nothing is generated: it is all in the sample table.

Only problems both evaluations hold count (as in `walkrun.db.compare`). Per problem and side,
p = correct samples / samples and t = mean generated tokens. A problem is

  disagree   when |p_B - p_A| >= 1/2 (with one sample each, k = 1: one right, the other wrong);
  B shorter  when t_B <= t_A / ratio (B needs at most 1/ratio of A's tokens; default ratio 2),
  A shorter  likewise the other way round.

Which samples are shown per side (`show`): its first right and first wrong one when both exist
(the contrast a reader looks for; with room for one, the side's majority verdict: right when at
least half its samples are), then the rest in sample order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from walkrun.db.models import EvalRun, Problem, Sample
from walkrun.settings import WalkrunError

FILTERS = ("all", "disagree", "shorter", "a-shorter", "b-shorter")
DISAGREE_GAP = 0.5


@dataclass(frozen=True)
class PairOptions:
    """Which problems to list and how much of each to show."""

    only: str = "all"  # one of FILTERS; "shorter": either side much shorter
    ratio: float = 2.0  # "much shorter": at most 1/ratio of the other side's mean tokens
    show: int = 2  # samples shown per side and problem
    chars: int = 6000  # longest response text kept (0 = all); longer ones are clipped

    def __post_init__(self):
        if self.only not in FILTERS:
            raise WalkrunError(f"--only must be one of {', '.join(FILTERS)}; got {self.only!r}")
        if not self.ratio > 1:
            raise WalkrunError(f"--ratio must be > 1 (how many times shorter), got {self.ratio}")
        if self.show < 0 or self.chars < 0:
            raise WalkrunError(f"--show and the character limit must be >= 0, got {self.show}, {self.chars}")


def tags(a: dict, b: dict, ratio: float) -> list[str]:
    """The filters a problem passes, from each side's {accuracy, mean_tokens}."""
    out = []
    if abs(b["accuracy"] - a["accuracy"]) >= DISAGREE_GAP:
        out.append("disagree")
    ta, tb = a["mean_tokens"], b["mean_tokens"]
    if ta > 0 and tb * ratio <= ta:
        out += ["shorter", "b-shorter"]
    elif tb > 0 and ta * ratio <= tb:
        out += ["shorter", "a-shorter"]
    return out


def _pick(samples: list[tuple], n: int) -> list[int]:
    """Sample ids to show of one side's samples (id, index, correct, ...) in sample order."""
    if n <= 0:
        return []
    wrong = next((s for s in samples if not s[2]), None)
    right = next((s for s in samples if s[2]), None)
    mostly_right = 2 * sum(bool(s[2]) for s in samples) >= len(samples)
    chosen = [s for s in ((right, wrong) if mostly_right else (wrong, right)) if s is not None][:n]
    for s in samples:
        if len(chosen) >= n:
            break
        if s not in chosen:
            chosen.append(s)
    return [s[0] for s in sorted(chosen, key=lambda s: s[1])]


_NARROW = (
    Sample.id,
    Sample.sample_index,
    Sample.correct,
    Sample.status,
    Sample.n_tokens,
    Sample.think_tokens,
    Sample.answer_tokens,
    Sample.finish_reason,
    Sample.extracted,
)


def _side(samples: list[tuple]) -> dict:
    n = len(samples)
    split = [(s[5], s[6]) for s in samples if s[5] is not None and s[6] is not None]
    return {
        "n": n,
        "n_correct": sum(bool(s[2]) for s in samples),
        "accuracy": sum(bool(s[2]) for s in samples) / n,
        "mean_tokens": sum(s[4] for s in samples) / n,
        "mean_think_tokens": sum(t for t, _ in split) / len(split) if split else None,
        "mean_answer_tokens": sum(a for _, a in split) / len(split) if split else None,
        "n_truncated": sum(s[7] == "length" for s in samples),
        "samples": [],
    }


def pairs(s: Session, run_a: int, run_b: int, opts: PairOptions | None = None) -> dict:
    """The problems of evaluation runs `run_a` and `run_b` side by side (see the module docstring):
    {"counts": {filter: problems passing it}, "n_common", "n_a", "n_b", "problems": [...]}, the
    problems listed being those `opts.only` keeps, in problem-id order. Each problem:
    {problem_id, gold, level, tags, a, b}; a side: {n, n_correct, accuracy, mean_tokens,
    mean_think_tokens, mean_answer_tokens, n_truncated, samples}; a shown sample: {sample_index,
    correct, status, n_tokens, think_tokens, answer_tokens, finish_reason, extracted, think, answer,
    clipped} with the response split at its closing think tag (`think` "" when it has none)."""
    opts = opts or PairOptions()
    runs = {r.id: r for r in s.scalars(select(EvalRun).where(EvalRun.id.in_([run_a, run_b])))}
    for rid in (run_a, run_b):
        if rid not in runs:
            raise WalkrunError(f"no evaluation run with id {rid}")
    per: dict[int, dict[str, list[tuple]]] = {run_a: defaultdict(list), run_b: defaultdict(list)}
    q = (
        select(Sample.eval_run_id, Sample.problem_id, *_NARROW)
        .where(Sample.eval_run_id.in_([run_a, run_b]))
        .order_by(Sample.eval_run_id, Sample.problem_id, Sample.sample_index)
    )
    for rid, pid, *rest in s.execute(q):
        per[rid][pid].append(tuple(rest))
    common = sorted(set(per[run_a]) & set(per[run_b]), key=_natural)
    counts = dict.fromkeys(FILTERS, 0)
    listed: list[dict[str, Any]] = []
    for pid in common:
        a, b = _side(per[run_a][pid]), _side(per[run_b][pid])
        t = tags(a, b, opts.ratio)
        counts["all"] += 1
        for name in t:
            counts[name] += 1
        if opts.only == "all" or opts.only in t:
            listed.append({"problem_id": pid, "gold": None, "level": None, "tags": t, "a": a, "b": b})
    shown = {
        sid: (side, p)
        for p in listed
        for side, rid in (("a", run_a), ("b", run_b))
        for sid in _pick(per[rid][p["problem_id"]], opts.show)
    }
    _fill_samples(s, shown, runs, opts.chars)
    _fill_problems(s, listed, runs[run_a].task, (run_a, run_b))
    return {
        "counts": counts,
        "n_common": len(common),
        "n_a": len(per[run_a]),
        "n_b": len(per[run_b]),
        "problems": listed,
    }


def split_response(text: str, think_opened: bool = False) -> tuple[str, str]:
    """(reasoning, answer) of a response: up to and including its last closing think tag, and the
    rest. Without a closing tag: all answer, unless the chat template opened the block (then all
    reasoning, cut before it closed)."""
    i = text.rfind("</think>")
    if i >= 0:
        return text[: i + len("</think>")], text[i + len("</think>") :]
    return (text, "") if think_opened else ("", text)


def _clip(text: str, chars: int) -> tuple[str, int]:
    return (text[:chars], len(text) - chars) if chars and len(text) > chars else (text, 0)


def _fill_samples(s: Session, shown: dict[int, tuple[str, dict]], runs: dict[int, EvalRun], chars: int) -> None:
    ids = sorted(shown)
    for i in range(0, len(ids), 500):
        q = select(Sample.eval_run_id, Sample.response, *_NARROW).where(Sample.id.in_(ids[i : i + 500]))
        for rid, response, sid, idx, correct, status, n_tok, think, answer, finish, extracted in s.execute(q):
            side, problem = shown[sid]
            think_text, answer_text = split_response(response or "", bool(runs[rid].think_opened))
            # the clip budget goes to the answer first: it is what gets graded
            answer_text, clipped_a = _clip(answer_text, chars)
            if chars and len(answer_text) >= chars:  # no room left for the reasoning
                think_text, clipped_t = "", len(think_text)
            else:
                think_text, clipped_t = _clip(think_text, chars - len(answer_text) if chars else 0)
            problem[side]["samples"].append(
                {
                    "sample_index": idx,
                    "correct": bool(correct),
                    "status": status,
                    "n_tokens": n_tok,
                    "think_tokens": think,
                    "answer_tokens": answer,
                    "finish_reason": finish,
                    "extracted": extracted,
                    "think": think_text,
                    "answer": answer_text,
                    "clipped": clipped_a + clipped_t,
                }
            )
    for _side_name, problem in shown.values():
        for side in ("a", "b"):
            problem[side]["samples"].sort(key=lambda x: x["sample_index"])


def _fill_problems(s: Session, listed: list[dict], task: str, run_ids: tuple[int, int]) -> None:
    """Gold answers (as the samples carry them) and difficulty levels of the listed problems."""
    if not listed:
        return
    pids = [p["problem_id"] for p in listed]
    gold: dict[str, str] = {}
    levels: dict[str, str | None] = {}
    for i in range(0, len(pids), 500):
        chunk = pids[i : i + 500]
        # every sample of a problem carries the same gold; a problem's samples are a few rows
        q = select(Sample.problem_id, Sample.gold).where(Sample.eval_run_id == run_ids[0], Sample.problem_id.in_(chunk))
        gold.update(dict(s.execute(q).all()))
        q2 = select(Problem.problem_id, Problem.level).where(Problem.task == task, Problem.problem_id.in_(chunk))
        levels.update(dict(s.execute(q2).all()))
    for p in listed:
        p["gold"] = gold.get(p["problem_id"])
        p["level"] = levels.get(p["problem_id"])


def _natural(pid: str) -> tuple:
    # "2" before "10": benchmark ids are often numbers kept as strings
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", pid) if t)

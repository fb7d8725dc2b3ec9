"""A checkpoint's page (`checkpoints/<id>.html`): its evaluations' settings, per-problem results
and the sample responses shown for each problem, rendered with the index's templates and helpers."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

from walkrun.leaderboard.pages import FILL_COMMANDS, PageOptions, _date, _env, _sort_rows, fmt, table_values


def pick_samples(samples: list[dict], n: int) -> list[dict]:
    """Up to n samples of one problem to show: the first wrong and the first right one when both
    exist (the contrast is what a reader wants), then the rest in sample order."""
    if n <= 0:
        return []
    chosen: list[dict] = []
    for want in (False, True):
        hit = next((s for s in samples if bool(s.get("correct")) == want), None)
        if hit is not None and len(chosen) < n:
            chosen.append(hit)
    for s in samples:
        if len(chosen) >= n:
            break
        if not any(s is c for c in chosen):
            chosen.append(s)
    return sorted(chosen, key=lambda s: s.get("sample_index", 0))


def problem_table(samples, opts: PageOptions) -> list[dict]:
    """Per-problem results of one evaluation from its sample rows (in the order first seen)."""
    groups: dict[str, list[dict]] = {}
    for s in samples:
        groups.setdefault(str(s.get("problem_id")), []).append(s)
    out = []
    for pid, ss in groups.items():
        ss.sort(key=lambda s: s.get("sample_index", 0))
        n = len(ss)
        n_correct = sum(1 for s in ss if s.get("correct"))
        tokens = [s["n_tokens"] for s in ss if s.get("n_tokens") is not None]
        answers = Counter(s.get("extracted") for s in ss)
        shown = []
        for s in pick_samples(ss, opts.samples_per_problem):
            text = s.get("response") or ""
            clipped = bool(opts.response_chars) and len(text) > opts.response_chars
            shown.append(
                {
                    **s,
                    "text": text[: opts.response_chars] if clipped else text,
                    "clipped": len(text) - opts.response_chars if clipped else 0,
                }
            )
        out.append(
            {
                "problem_id": pid,
                "gold": ss[0].get("gold"),
                "n": n,
                "n_correct": n_correct,
                "accuracy": n_correct / n if n else None,
                "mean_tokens": sum(tokens) / len(tokens) if tokens else None,
                "n_truncated": sum(1 for s in ss if s.get("finish_reason") == "length"),
                "answers": [(a, c) for a, c in answers.most_common(4)],
                "n_answers": len(answers),
                "samples": shown,
                "outcome": "all-right" if n_correct == n else "all-wrong" if n_correct == 0 else "mixed",
            }
        )
    return out


def checkpoint_context(checkpoint: dict, rows: list[dict], evals: list[dict], db_label: str = "") -> dict:
    """`checkpoints/<id>.html`: `checkpoint` describes it, `rows` are its aggregate rows, `evals`
    one dict per evaluation: {"row": aggregate row, "problems": problem_table(...)}."""
    return {
        "root": "../",
        "title": f"{checkpoint.get('model')} · walkrun leaderboard",
        "ckpt": checkpoint,
        "rows": [table_values(r) for r in _sort_rows(rows)],
        "evals": evals,
        "db_label": db_label,
        "generated_at": _date(datetime.now(UTC)),
        "fill_commands": FILL_COMMANDS,
    }


def render_checkpoint(checkpoint: dict, rows: list[dict], evals: list[dict], db_label: str = "") -> str:
    return _env().get_template("checkpoint.html.jinja").render(**checkpoint_context(checkpoint, rows, evals, db_label))


def _natural(pid: str):
    # "2" before "10": benchmark ids are often numbers kept as strings.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", pid)]


SETTING_KEYS = (
    "task_version",
    "protocol",
    "k",
    "temperature",
    "top_p",
    "max_new_tokens",
    "prompt_template",
    "backend",
    "backend_version",
    "grader_version",
)


def render_checkpoint_data(data, opts: PageOptions, db_label: str = "") -> str | None:
    """A checkpoint's page from `data.Source.checkpoint_data`'s result (None: no page)."""
    if data is None:
        return None
    facts, mine, raw_evals = data
    evals = []
    for r, samples, levels in raw_evals:
        problems = problem_table(samples, opts)
        problems.sort(key=lambda p: _natural(p["problem_id"]))
        settings = [(k, r.get(k)) for k in SETTING_KEYS if r.get(k) is not None]
        settings.append(("evaluated", fmt(r.get("evaluated_at"), "date")))
        settings.append(("eval key", (r.get("eval_key") or "")[:12]))
        evals.append({"row": r, "problems": problems, "settings": settings, "levels": levels})
    return render_checkpoint(facts, mine, evals, db_label)

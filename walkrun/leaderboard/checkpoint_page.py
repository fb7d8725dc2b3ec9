"""A checkpoint's page (`checkpoints/<id>.html`): its evaluations' settings, per-problem results
and the sample responses shown for each problem, rendered with the index's templates and helpers."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter

from markupsafe import Markup, escape

from walkrun.leaderboard.pages import FILL_COMMANDS, PageOptions, _date, _env, _sort_rows, fmt, table_values


# A sample row as `walkrun.db.queries.page_samples` streams it (PAGE_SAMPLE_KEYS order).
_PID, _IDX, _OK, _STATUS, _TOKENS, _FINISH, _EXTRACTED, _GOLD, _RESPONSE = range(1, 10)


def pick_samples(samples: list[tuple], n: int) -> list[tuple]:
    """Up to n samples of one problem (sample rows in sample order) to show: the first wrong and
    the first right one when both exist (the contrast is what a reader wants), then the rest in
    sample order."""
    if n <= 0:
        return []
    chosen: list[tuple] = []
    for want in (False, True):
        hit = next((s for s in samples if bool(s[_OK]) == want), None)
        if hit is not None and len(chosen) < n:
            chosen.append(hit)
    for s in samples:
        if len(chosen) >= n:
            break
        if not any(s is c for c in chosen):
            chosen.append(s)
    return sorted(chosen, key=itemgetter(_IDX))


def problem_rows(samples: Iterable[tuple], opts: PageOptions) -> list[dict]:
    """Per-problem results of one evaluation from its sample rows (`page_samples` tuples, each
    problem's rows together and in sample order), problems in the order first seen."""
    out = []
    n_show, chars = opts.samples_per_problem, opts.response_chars
    for pid, group in groupby(samples, key=itemgetter(_PID)):
        ss = list(group)
        n = len(ss)
        n_correct = sum(1 for s in ss if s[_OK])
        tokens = [s[_TOKENS] for s in ss if s[_TOKENS] is not None]
        answers = Counter(s[_EXTRACTED] for s in ss)
        shown = []
        for s in pick_samples(ss, n_show):
            text = s[_RESPONSE] or ""
            clipped = bool(chars) and len(text) > chars
            shown.append(
                {
                    "sample_index": s[_IDX],
                    "correct": s[_OK],
                    "status": s[_STATUS],
                    "n_tokens": s[_TOKENS],
                    "finish_reason": s[_FINISH],
                    "extracted": s[_EXTRACTED],
                    "text": text[:chars] if clipped else text,
                    "clipped": len(text) - chars if clipped else 0,
                }
            )
        out.append(
            {
                "problem_id": str(pid),
                "gold": ss[0][_GOLD],
                "n": n,
                "n_correct": n_correct,
                "accuracy": n_correct / n if n else None,
                "mean_tokens": sum(tokens) / len(tokens) if tokens else None,
                "total_tokens": sum(tokens),
                "n_truncated": sum(1 for s in ss if s[_FINISH] == "length"),
                "answers": answers.most_common(4),
                "n_answers": len(answers),
                "samples": shown,
                "outcome": "all-right" if n_correct == n else "all-wrong" if n_correct == 0 else "mixed",
            }
        )
    return out


def problem_table(samples: list[dict], opts: PageOptions) -> list[dict]:
    """`problem_rows` from sample dicts (`walkrun.db.queries.samples` keys, any order)."""
    groups: dict[str, list[tuple]] = {}
    for s in samples:
        groups.setdefault(str(s.get("problem_id")), []).append(
            (None, str(s.get("problem_id")), s.get("sample_index", 0), *(s.get(k) for k in _SAMPLE_KEYS))
        )
    rows = [r for ss in groups.values() for r in sorted(ss, key=itemgetter(_IDX))]
    return problem_rows(rows, opts)


_SAMPLE_KEYS = ("correct", "status", "n_tokens", "finish_reason", "extracted", "gold", "response")


def problems_html(problems: list[dict]) -> Markup:
    """The rows of a checkpoint page's problem table: built here rather than in the template,
    as a page has hundreds of problems and a template spends most of its time looking up their
    attributes. Every value from the DB goes through `escape`."""
    out: list[str] = []
    add = out.append
    for p in problems:
        pid = escape(p["problem_id"])
        outcome = p["outcome"]
        answers = ", ".join(
            f'<span class="answer">{escape(a) if a is not None else "(none)"}</span> ×{c}' for a, c in p["answers"]
        )
        if p["n_answers"] > len(p["answers"]):
            answers += " …"
        add(
            f'    <tr class="problem {outcome}" data-outcome="{outcome}" data-problem-id="{pid}">\n'
            f"      <td><code>{pid}</code></td>\n"
            f'      <td class="ans">{escape(p["gold"])}</td>\n'
            f'      <td class="int">{p["n_correct"]}/{p["n"]}</td>\n'
            f'      <td class="num0">{escape(fmt(p["mean_tokens"], "num0"))}</td>\n'
            f'      <td class="int">{p["n_truncated"]}</td>\n'
            f'      <td class="ans">{answers}</td>\n'
            "      <td>\n"
        )
        shown = p["samples"]
        if shown:
            add(f"        <details><summary>{len(shown)} of {p['n']}</summary>\n")
            for s in shown:
                ok = s["correct"]
                ex = s["extracted"]
                add(
                    f'          <div class="sample {"right" if ok else "wrong"}">\n'
                    f'            <p class="sample-meta">#{escape(s["sample_index"])} · {"correct" if ok else "wrong"}'
                    f' · extracted <span class="answer">{escape(ex) if ex is not None else "(none)"}</span>\n'
                    f"              · {escape(s['n_tokens'])} tokens · finish {escape(s['finish_reason'])}"
                    f" · grading {escape(s['status'])}</p>\n"
                    f'            <pre class="response">{escape(s["text"])}</pre>\n'
                )
                if s["clipped"]:
                    add(f'<p class="clipped">… {s["clipped"]} more characters not shown</p>')
                add("          </div>\n")
            add("        </details>\n")
        add("      </td>\n    </tr>\n")
    return Markup("".join(out))


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


def render_checkpoint_data(data, db_label: str = "") -> str | None:
    """A checkpoint's page from `data.Source.checkpoint_data`'s result (None: no page)."""
    if data is None:
        return None
    facts, mine, raw_evals = data
    evals = []
    for r, problems, levels in raw_evals:
        problems = sorted(problems, key=lambda p: _natural(p["problem_id"]))
        settings = [(k, r.get(k)) for k in SETTING_KEYS if r.get(k) is not None]
        settings.append(("evaluated", fmt(r.get("evaluated_at"), "date")))
        settings.append(("eval key", (r.get("eval_key") or "")[:12]))
        evals.append(
            {"row": r, "problems": problems, "rows_html": problems_html(problems), "settings": settings, "levels": levels}
        )
    return render_checkpoint(facts, mine, evals, db_label)

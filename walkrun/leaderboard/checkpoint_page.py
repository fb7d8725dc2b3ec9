"""A checkpoint's page (`checkpoints/<id>.html`): its evaluations' settings, per-problem results
and the sample responses shown for each problem, rendered with the index's templates and helpers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import groupby
from operator import itemgetter

from markupsafe import Markup, escape

from walkrun.db.read_models import ResultRow
from walkrun.leaderboard.pages import FILL_COMMANDS, PageOptions, fmt, short_date, sort_rows, table_values, templates

# A sample row as `walkrun.db.queries.page_samples` streams it (PAGE_SAMPLE_KEYS order).
_PID, _IDX, _OK, _STATUS, _TOKENS, _FINISH, _EXTRACTED, _GOLD, _RESPONSE = range(1, 10)


def pick_samples(samples: list[tuple], n: int, wrong: tuple | None, right: tuple | None) -> list[tuple]:
    """Up to n samples of one problem (sample rows in sample order; `wrong` and `right` its first
    wrong and first right one, if any) to show: the first wrong and the first right one when both
    exist (the contrast is what a reader wants), then the rest in sample order."""
    if n <= 0:
        return []
    chosen = [s for s in (wrong, right) if s is not None][:n]
    if len(chosen) < n:
        for s in samples:
            if s is not wrong and s is not right:
                chosen.append(s)
                if len(chosen) >= n:
                    break
    if len(chosen) > 1:
        chosen.sort(key=itemgetter(_IDX))
    return chosen


_count = itemgetter(1)


def problem_rows(samples: Iterable[tuple], opts: PageOptions) -> list[dict]:
    """Per-problem results of one evaluation from its sample rows (`page_samples` tuples, each
    problem's rows together and in sample order), problems in the order first seen."""
    out = []
    n_show, chars = opts.samples_per_problem, opts.response_chars
    # one pass per problem, no helper calls per sample: a site's build folds a million rows here
    for pid, group in groupby(samples, key=itemgetter(_PID)):
        ss = list(group)
        n_correct = n_truncated = total = n_counted = 0
        wrong = right = None
        answers: dict = {}
        for s in ss:
            if s[_OK]:
                n_correct += 1
                if right is None:
                    right = s
            elif wrong is None:
                wrong = s
            t = s[_TOKENS]
            if t is not None:
                total += t
                n_counted += 1
            if s[_FINISH] == "length":
                n_truncated += 1
            a = s[_EXTRACTED]
            answers[a] = answers.get(a, 0) + 1
        shown = []
        if n_show == 2 and wrong is not None and right is not None:  # the default, most problems
            picked = [wrong, right] if wrong[_IDX] < right[_IDX] else [right, wrong]
        else:
            picked = pick_samples(ss, n_show, wrong, right)
        for s in picked:
            text = s[_RESPONSE] or ""
            clipped = len(text) - chars if chars and len(text) > chars else 0
            shown.append(
                {
                    "sample_index": s[_IDX],
                    "correct": s[_OK],
                    "status": s[_STATUS],
                    "n_tokens": s[_TOKENS],
                    "finish_reason": s[_FINISH],
                    "extracted": s[_EXTRACTED],
                    "text": text[:chars] if clipped else text,
                    "clipped": clipped,
                }
            )
        n = len(ss)
        out.append(
            {
                "problem_id": str(pid),
                "gold": ss[0][_GOLD],
                "n": n,
                "n_correct": n_correct,
                "accuracy": n_correct / n,
                "mean_tokens": total / n_counted if n_counted else None,
                "total_tokens": total,
                "n_truncated": n_truncated,
                # Counter.most_common's order: by count, ties in the order first seen
                "answers": sorted(answers.items(), key=_count, reverse=True)[:4]
                if len(answers) > 1
                else [*answers.items()],
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


def _e(value) -> str:
    """`markupsafe.escape`'s text, done with str.replace for plain strings and str() for ints
    (most of a page's values; markupsafe would also build a Markup object for each)."""
    if type(value) is int:
        return str(value)
    if type(value) is str:
        return (
            value.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace("'", "&#39;")
            .replace('"', "&#34;")
        )
    return escape(value)


# the short values (ids, answers, statuses) repeat from sample to sample and page to page
_short = lru_cache(maxsize=1 << 16, typed=True)(_e)


@lru_cache(maxsize=1 << 16, typed=True)
def _num0(value) -> str:
    return _e(fmt(value, "num0"))


def problems_html(problems: list[dict]) -> Markup:
    """The rows of a checkpoint page's problem table: built here rather than in the template,
    as a page has hundreds of problems and a template spends most of its time looking up their
    attributes. Every value from the DB is escaped (`_e`) as the template would."""
    out: list[str] = []
    add = out.append
    for p in problems:
        pid = _short(p["problem_id"])
        outcome = p["outcome"]
        answers = ", ".join(
            [f'<span class="answer">{_short(a) if a is not None else "(none)"}</span> ×{c}' for a, c in p["answers"]]
        )
        if p["n_answers"] > len(p["answers"]):
            answers += " …"
        add(
            f'    <tr class="problem {outcome}" data-outcome="{outcome}" data-problem-id="{pid}">\n'
            f"      <td><code>{pid}</code></td>\n"
            f'      <td class="ans">{_short(p["gold"])}</td>\n'
            f'      <td class="int">{p["n_correct"]}/{p["n"]}</td>\n'
            f'      <td class="num0">{_num0(p["mean_tokens"])}</td>\n'
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
                    f'            <p class="sample-meta">#{_short(s["sample_index"])} · {"correct" if ok else "wrong"}'
                    f' · extracted <span class="answer">{_short(ex) if ex is not None else "(none)"}</span>\n'
                    f"              · {_short(s['n_tokens'])} tokens · finish {_short(s['finish_reason'])}"
                    f" · grading {_short(s['status'])}</p>\n"
                    f'            <pre class="response">{_e(s["text"])}</pre>\n'
                )
                if s["clipped"]:
                    add(f'<p class="clipped">… {s["clipped"]} more characters not shown</p>')
                add("          </div>\n")
            add("        </details>\n")
        add("      </td>\n    </tr>\n")
    return Markup("".join(out))


def checkpoint_context(checkpoint: dict, rows: Sequence[ResultRow], evals: list, db_label: str = "") -> dict:
    """`checkpoints/<id>.html`: `checkpoint` describes it, `rows` are its aggregate rows, `evals`
    one dict per evaluation: {"row": aggregate row, "problems": problem_table(...)}."""
    return {
        "root": "../",
        "title": f"{checkpoint.get('model')} · walkrun leaderboard",
        "ckpt": checkpoint,
        "rows": [table_values(r) for r in sort_rows(rows)],
        "evals": evals,
        "db_label": db_label,
        "generated_at": short_date(datetime.now(UTC)),
        "fill_commands": FILL_COMMANDS,
    }


def render_checkpoint(checkpoint: dict, rows: Sequence[ResultRow], evals: list, db_label: str = "") -> str:
    return (
        templates()
        .get_template("checkpoint.html.jinja")
        .render(**checkpoint_context(checkpoint, rows, evals, db_label))
    )


@lru_cache(maxsize=1 << 16)  # the same benchmark ids on every page
def _natural(pid: str) -> tuple:
    # "2" before "10": benchmark ids are often numbers kept as strings.
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", pid))


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


def render_checkpoint_data(data, db_label: str = "", run_links: dict[str, int] | None = None) -> str | None:
    """A checkpoint's page from `data.Source.checkpoint_data`'s result (None: no page).
    `run_links`: training run name -> id of its page, linked from the facts."""
    if data is None:
        return None
    facts, mine, raw_evals = data
    facts = {**facts, "run_page": (run_links or {}).get(facts.get("training_run") or "")}
    evals = []
    for r, problems, levels in raw_evals:
        problems = sorted(problems, key=lambda p: _natural(p["problem_id"]))
        settings = [(k, r.get(k)) for k in SETTING_KEYS if r.get(k) is not None]
        settings.append(("evaluated", fmt(r.get("evaluated_at"), "date")))
        settings.append(("eval key", (r.get("eval_key") or "")[:12]))
        evals.append(
            {
                "row": r,
                "problems": problems,
                "rows_html": problems_html(problems),
                "settings": settings,
                "levels": levels,
            }
        )
    return render_checkpoint(facts, mine, evals, db_label)

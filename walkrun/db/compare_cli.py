"""`walkrun compare A B`: paired accuracy and token differences of two checkpoints (B minus A);
with `--samples`, their stored responses to the same problems side by side."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from walkrun import options
from walkrun.db.read_models import ResultRow
from walkrun.options import DB_FLAGS, DB_HELP
from walkrun.settings import WalkrunError


def _pct(x, sign: bool = True) -> str:
    return "-" if x is None else (f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}")


@dataclass
class CompareOptions:
    """`walkrun compare A B`: the two checkpoints and which of their evaluations to pair."""

    a: str = field(metadata={"help": "Checkpoint A (display name or source): the reference."})
    b: str = field(metadata={"help": "Checkpoint B (display name or source): compared with A."})
    task: str | None = field(default=None, metadata={"help": "Only this task (then --json prints one object)."})
    protocol: str | None = field(default=None, metadata={"help": "Only evaluations under this protocol."})
    seed: int | None = field(default=None, metadata={"help": "Bootstrap seed (default: walkrun's fixed one)."})
    json: bool = field(
        default=False,
        metadata={"help": "JSON: a list, or one object with --task; with --samples one object per problem and line."},
    )
    db: str | None = field(default=None, metadata={"help": DB_HELP})
    samples: bool = field(
        default=False,
        metadata={
            "help": "The stored responses of both to each common problem, side by side (correct count, tokens "
            "with the think/answer split, cut samples, gold); nothing is generated."
        },
    )
    only: str = field(
        default="all",
        metadata={
            "help": "With --samples: which problems to list: all, disagree (correct shares differ by >= 1/2; "
            "k = 1: one right, one wrong), shorter (either uses <= 1/--ratio of the other's mean tokens), "
            "a-shorter, b-shorter."
        },
    )
    ratio: float = field(default=2.0, metadata={"help": "With --samples: how many times shorter is much shorter."})
    show: int = field(default=1, metadata={"help": "With --samples: responses printed per side and problem."})
    chars: int = field(
        default=1500, metadata={"help": "With --samples: longest response text printed (0 = all); longer is clipped."}
    )


@options.command(CompareOptions, arguments=("a", "b"), flags={**DB_FLAGS, "json": ("--json",)})
def compare_cmd(opts: CompareOptions) -> None:
    """Paired differences B - A over the problems both were evaluated on, per task and protocol:
    delta accuracy (pass@1[avg-of-k], points) with its 95% bootstrap CI, and delta mean tokens in %.
    With --samples: both checkpoints' stored responses to each common problem, side by side."""
    from walkrun.db import compare  # heavy: numpy, sqlalchemy
    from walkrun.db.engine import session_scope  # heavy: sqlalchemy

    task = opts.task
    if opts.samples:
        _samples(opts)
        return
    with session_scope(opts.db, readonly=True, create=False) as s:
        rows = compare.compare(s, opts.a, opts.b, task=task, protocol=opts.protocol, seed=opts.seed)
    if task is not None and len(rows) > 1:
        protos = ", ".join(str(r["protocol"]) for r in rows)
        raise WalkrunError(f"both were evaluated on {task} under several protocols ({protos}); pass --protocol")
    if opts.json:
        print(json.dumps(rows[0] if task is not None else rows, indent=2))
        return
    for r in rows:
        ci = r["delta_accuracy_ci95"]
        low, high = (None, None) if ci is None else ci
        tci = r["delta_mean_tokens_pct_ci95"]
        print(
            f"{r['task']} [protocol {r['protocol']}], {r['n_problems']} common problems: "
            f"pass@1 {_pct(r['accuracy_a'], False)} -> {_pct(r['accuracy_b'], False)}, "
            f"delta {_pct(r['delta_accuracy'])} points (95% CI {_pct(low)} to {_pct(high)}); "
            + (
                f"mean tokens {r['delta_mean_tokens_pct']:+.1f}% (95% CI {tci[0]:+.1f}% to {tci[1]:+.1f}%)"
                if tci is not None
                else "mean tokens: -"
            )
        )


def _samples(opts: CompareOptions) -> None:
    from walkrun.db import compare, sample_pairs  # heavy: numpy, sqlalchemy
    from walkrun.db.engine import session_scope  # heavy: sqlalchemy

    popts = sample_pairs.PairOptions(only=opts.only, ratio=opts.ratio, show=opts.show, chars=opts.chars)
    try:
        with session_scope(opts.db, readonly=True, create=False) as s:
            for ra, rb in compare.matched(s, opts.a, opts.b, opts.task, opts.protocol):
                got = sample_pairs.pairs(s, ra["eval_run_id"], rb["eval_run_id"], popts)
                if opts.json:
                    for p in got["problems"]:
                        head = {"task": ra["task"], "protocol": ra["protocol"], "model_a": ra["model"]}
                        sys.stdout.write(json.dumps({**head, "model_b": rb["model"], **p}) + "\n")
                else:
                    _print_pairs(ra, rb, got, popts)
    except BrokenPipeError:  # `walkrun compare A B --samples | head`
        sys.stderr.close()


def _tokens(side: dict) -> str:
    text = f"{side['mean_tokens']:.0f} tokens"
    if side["mean_think_tokens"]:  # a split is worth printing only when there was thinking
        text += f" (think {side['mean_think_tokens']:.0f} / answer {side['mean_answer_tokens']:.0f})"
    return text


def _print_pairs(ra: ResultRow, rb: ResultRow, got: dict, popts) -> None:
    c = got["counts"]
    print(
        f"{ra['task']} [protocol {ra['protocol']}]: A = {ra['model']}, B = {rb['model']}; "
        f"{got['n_common']} common problems: disagree {c['disagree']}, B much shorter {c['b-shorter']}, "
        f"A much shorter {c['a-shorter']} (x{popts.ratio:g}); listed: {popts.only} ({len(got['problems'])})"
    )
    for p in got["problems"]:
        level = f" · level {p['level']}" if p["level"] is not None else ""
        flags = f" · {', '.join(t for t in p['tags'] if t != 'shorter')}" if p["tags"] else ""
        print(f"\n== problem {p['problem_id']} · gold {p['gold']}{level}{flags}")
        for name, side in (("A", p["a"]), ("B", p["b"])):
            cut = f" · {side['n_truncated']} cut at the budget" if side["n_truncated"] else ""
            print(f"  {name}: {side['n_correct']}/{side['n']} correct · {_tokens(side)}{cut}")
        for name, side in (("A", p["a"]), ("B", p["b"])):
            for smp in side["samples"]:
                verdict = "correct" if smp["correct"] else ("no answer" if smp["status"] == "no_answer" else "wrong")
                print(
                    f"  -- {name} #{smp['sample_index']}: {verdict} · extracted {smp['extracted']!r} · "
                    f"{smp['n_tokens']} tokens · finish {smp['finish_reason']}"
                )
                text = (smp["think"] + smp["answer"]).rstrip()
                print("     " + text.replace("\n", "\n     "))
                if smp["clipped"]:
                    print(f"     [... {smp['clipped']} more characters]")

"""walkrun's lm-eval task folder: one base YAML, six benchmark tasks, metrics that never are None."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from walkrun import problem_sets
from walkrun.evaluate import plan as planning
from walkrun.evaluate import scoring
from walkrun.evaluate.backends import TokStr
from walkrun.evaluate.config import EvalConfig
from walkrun.settings import WalkrunError

TASKS = ("aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench")


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _yaml(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)


@pytest.fixture(scope="module")
def tm():
    return planning.task_manager()


def test_every_task_includes_the_base_and_has_a_version():
    files = sorted(p for p in planning.TASKS_DIR.glob("*.yaml") if not p.name.startswith("_"))
    assert {p.stem for p in files} >= set(TASKS)
    base = _yaml(planning.TASKS_DIR / "_math_base.yaml")
    assert base["process_results"] == "utils.process_results" and base["custom_dataset"] == "utils.load_dataset"
    assert base["generation_kwargs"]["until"] == []  # EOS only
    for p in files:
        doc = _yaml(p)
        assert doc["include"] == "_math_base.yaml", p.name
        assert doc["task"] == f"walkrun_{p.stem}"
        assert "version" in doc["metadata"], p.name
        assert doc["dataset_kwargs"].get("benchmark") in problem_sets.BENCHMARKS or doc["dataset_kwargs"].get("rows")
        if "repeats" in doc:  # a task changing k changes its take_first_k filter too
            assert doc["filter_list"][0]["filter"][0] == {"function": "take_first_k", "k": doc["repeats"]}


def test_task_manager_sees_exactly_our_tasks_by_plain_name(tm):
    assert set(TASKS) <= set(planning.available_tasks(tm))
    assert planning.resolve_task("aime24", tm) == "walkrun_aime24"
    assert all(t.startswith("walkrun_") for t in tm.all_subtasks)


def test_tasks_load_offline_with_the_papers_prompt(tm):
    loaded = tm.load(["walkrun_amc23", "walkrun_minerva"])["tasks"]
    amc = loaded["walkrun_amc23"]
    docs = list(amc.eval_docs)
    assert len(docs) == 40 and docs[0]["answer"] == "27"  # AMC floats normalised
    text = amc.doc_to_text(docs[0])
    assert text.startswith(docs[0]["problem"])
    assert text.endswith("\nPlease reason step by step, and put your final answer within \\boxed{}.")
    assert amc.config.repeats == 16 and amc.config.generation_kwargs["temperature"] == 0.6
    minerva = loaded["walkrun_minerva"]
    assert len(minerva.eval_docs) == 272
    # alternatives that differ from the answer (8.7e8 for 8.7 \times 10^{8}); never the answer itself
    assert sum(bool(d["answer_alts"]) for d in minerva.eval_docs) == 136
    assert all(d["answer"] not in d["answer_alts"] for d in minerva.eval_docs)


def test_process_results_metrics_over_k_responses():
    doc = {"answer": "204", "answer_alts": []}
    rs = [
        TokStr("so \\boxed{204}", 12, "stop"),
        TokStr("\\boxed{5}", 7, "stop"),
        TokStr("and then", 40, "length"),
        TokStr("it is $\\boxed{204}$", 9, "stop"),
    ]
    m = scoring.process_results(doc, [rs])
    assert m == {
        "pass@1[avg-of-k]": 0.5,
        "pass@k": 1.0,
        "maj@k": 1.0,
        "no_answer_rate": 0.25,
        "mean_tokens": (12 + 7 + 40 + 9) / 4,
        "truncation_rate": 0.25,
    }
    assert scoring.cached_grade("204", rs[1]).correct is False


def test_process_results_never_returns_none_without_token_counts():
    m = scoring.process_results({"answer": "3", "answer_alts": []}, [["no idea", "maybe \\boxed{4}"]])
    assert None not in m.values()
    assert m["pass@1[avg-of-k]"] == 0.0 and m["maj@k"] == 0.0 and "mean_tokens" not in m


def test_minerva_alternative_answer_form_is_accepted():
    doc = {"answer": "8.7 \\times 10^{8}", "answer_alts": ["8.7e8", "870000000"]}
    (g,) = scoring.grade_responses(doc, ["The distance is $\\boxed{870000000}$ m."])
    assert g.correct


def test_plans_follow_the_protocol(tm, tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    cfg = EvalConfig(model=str(tiny_model), tasks=["aime24", "math500"], limit=2)
    aime, math = planning.plan_tasks(cfg, tm, tok)
    assert (aime.k, math.k) == (16, 4)
    assert aime.sampling["temperature"] == 0.6 and aime.sampling["top_p"] == 0.95 and aime.chat
    assert aime.config["filter_list"][0]["filter"][0]["k"] == 16 and len(aime.rows) == 2

    greedy = planning.plan_tasks(EvalConfig(model="m", tasks=["aime24"], samples=1), tm, tok)[0]
    assert greedy.greedy and greedy.sampling["temperature"] == 0.0 and greedy.sampling["top_p"] == 1.0
    assert (
        greedy.config["generation_kwargs"]["do_sample"] is False and "top_p" not in greedy.config["generation_kwargs"]
    )
    hot = planning.plan_tasks(EvalConfig(model="m", tasks=["aime24"], samples=1, temperature=0.7), tm, tok)[0]
    assert not hot.greedy and hot.config["generation_kwargs"]["temperature"] == 0.7

    plain = planning.plan_tasks(cfg, tm, None)[0]  # a tokenizer without a chat template
    assert not plain.chat and plain.sampling["prompt_template"].endswith("+plain")
    assert plain.sampling != aime.sampling  # so the DB key differs too


def test_synthetic_task_uses_the_bare_problem_without_chat_template(tm):
    from walkrun import synthetic

    tok = synthetic.build_tokenizer()  # has a chat template (for serving); the task must not use it
    (plan,) = planning.plan_tasks(EvalConfig(model="m", tasks=["synthetic"], limit=3), tm, tok)
    assert not plan.chat and plan.sampling["temperature"] == 1.0 and plan.sampling["max_new_tokens"] == 96
    assert [r["id"] for r in plan.rows] == [r["id"] for r in synthetic.eval_rows(3)]
    assert plan.config["doc_to_text"](plan.rows[0]) == synthetic.PROMPT_TEMPLATE.format(problem=plan.rows[0]["problem"])


def test_check_prompt_lengths_measures_the_longest_rendered_prompt(tm, tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    cfg = EvalConfig(model=str(tiny_model), tasks=["aime24"], limit=3, max_new_tokens=100)
    (plan,) = planning.plan_tasks(cfg, tm, tok)
    rendered = [
        tok.apply_chat_template(
            [{"role": "user", "content": scoring.doc_to_text(r)}], tokenize=False, add_generation_prompt=True
        )
        for r in plan.rows
    ]
    longest = max(len(tok(t, add_special_tokens=True)["input_ids"]) for t in rendered)
    assert planning.check_prompt_lengths([plan], tok, longest + 100) == longest + 100  # fits exactly
    with pytest.raises(
        WalkrunError, match=f"longest prompt is {longest} tokens.*context of {longest + 99} tokens.*at most 99$"
    ):
        planning.check_prompt_lengths([plan], tok, longest + 99)  # one token short
    (plain,) = planning.plan_tasks(cfg, tm, None)  # no chat template: the bare prompt is shorter
    assert planning.check_prompt_lengths([plain], tok, longest + 100) < longest + 100

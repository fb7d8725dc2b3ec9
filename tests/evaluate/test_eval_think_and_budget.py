"""The evaluator tells the grader whether the chat template opened a think block and whether a
sample hit its budget: such unfinished responses have no answer in the metrics."""

from __future__ import annotations

import pytest

from walkrun.evaluate import runner, scoring
from walkrun.evaluate.backends import TokStr

# DeepSeek-R1-Distill's templates end the generation prompt with an opened think block.
R1_LIKE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


@pytest.fixture(scope="module")
def tm():
    return runner.task_manager()


@pytest.mark.parametrize("template, opened", [(None, False), (R1_LIKE, True)])
def test_plan_records_whether_the_template_opens_a_think_block(tm, tiny_model, template, opened):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    if template is not None:
        tok.chat_template = template
    (plan,) = runner.plan_tasks(runner.EvalConfig(model=str(tiny_model), tasks=["math500"], limit=1), tm, tok)
    assert plan.config["dataset_kwargs"]["think_opened"] is opened
    docs = scoring.load_dataset(**plan.config["dataset_kwargs"])["test"]
    assert docs[0]["think_opened"] is opened


def test_metrics_give_no_answer_to_unfinished_responses():
    doc = {"answer": "5", "answer_alts": [], "think_opened": True}
    rs = [
        TokStr("2 + 3 = 5.</think> So $\\boxed{5}$.", 20, "stop"),  # finished
        TokStr("2 + 3 = 5 so \\boxed{5}. Wait, let me", 64, "length"),  # cut at the budget
        TokStr("2 + 3 = 5 so \\boxed{5}", 18, "stop"),  # never closed the template's <think>
        TokStr("2 + 3 = 5.</think> So $\\boxed{5}$. Also", 64, "length"),  # answered, then cut
    ]
    m = scoring.process_results(doc, [rs])
    assert m["pass@1[avg-of-k]"] == 0.25 and m["no_answer_rate"] == 0.75 and m["truncation_rate"] == 0.5
    assert [scoring.cached_grade("5", r).status for r in rs] == ["ok", "no_answer", "no_answer", "no_answer"]
    # the same text cut at the budget is a different sample: the cache keeps them apart
    assert scoring.cached_grade("5", TokStr(str(rs[0]), 64, "length")) is None

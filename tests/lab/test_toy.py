"""`walkrun.lab.toy`: the styles it imposes on a model's completions, and its per-difficulty breakdown."""

from __future__ import annotations

from walkrun import synthetic
from walkrun.lab.toy import breakdown, format_breakdown, style_rule

BOX, R, SEMI = (synthetic.TOKEN_ID[t] for t in (synthetic.BOX, "r", ";"))


def test_styles_restrict_the_next_token_as_named():
    step = synthetic.encode("8+8=17;")
    assert style_rule("free") is None
    direct = style_rule("direct")
    assert direct([]) == [BOX] and direct(step) is None
    no_recheck = style_rule("no-recheck")
    assert R not in no_recheck(step) and BOX in no_recheck(step) and BOX not in no_recheck([])
    recheck = style_rule("recheck")
    assert recheck(step) == [R]  # a step just ended: re-check it
    assert recheck(step + synthetic.encode("r8+8=16;")) is None  # ... once
    assert recheck(synthetic.encode("8+8=1")) is None and BOX not in recheck([])


def test_breakdown_reports_each_style_per_number_of_carries(tmp_path):
    model = synthetic.build_model(tmp_path / "m", seed=0)
    result = breakdown(str(model), n=12, k=1, max_new_tokens=12)
    assert set(result) == {"free", "recheck", "no-recheck", "direct"}
    carries = {r["carries"] for r in synthetic.eval_rows(12)}
    for per in result.values():
        assert per["all"]["samples"] == 12
        assert sum(v["samples"] for level, v in per.items() if level != "all") == 12
        assert {level for level in per if level != "all"} == {f"carries={min(c, 3)}{'+' * (c >= 3)}" for c in carries}
    assert result["direct"]["all"]["direct_rate"] == 1.0  # every completion starts with \boxed{
    assert result["no-recheck"]["all"]["rechecks"] == 0.0
    assert "recheck" in format_breakdown(result)

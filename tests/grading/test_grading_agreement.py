"""`benchmarks/grading_agreement.py` on a small case set: maths and letters graded by their own
graders, disputed cases counted apart, false positives listed before false negatives."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "grading_agreement.py"


@pytest.fixture(scope="module")
def agreement():
    spec = importlib.util.spec_from_file_location("grading_agreement", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = [
    # source, gold, response, expected, note (kind/choices for multiple choice)
    ("peer-math", "12", "So $\\boxed{12}$.", True, ""),
    ("peer-math", "12", "So $\\boxed{13}$.", True, ""),  # walkrun says wrong: a false negative
    ("peer-math", "0", "$\\boxed{9^{9^{9^{9}}}}$", False, ""),  # a timeout: no verdict
    ("peer-mc", "A", "Answer: A/B", True, "", {"kind": "choice"}),  # a hedge: a false negative
    ("peer-mc", "B", "The answer is yolk sac.", False, "", {"kind": "choice", "choices": ["x", "yolk sac"]}),
    ("peer-mc", "C", "Answer: C", False, "disputed: label looks wrong", {"kind": "choice"}),
]


def test_agreement_per_source_with_false_positives_first(agreement, tmp_path, capsys):
    rows = []
    for source, gold, response, expected, note, *extra in CASES:
        rows.append({"source": source, "gold": gold, "response": response, "expected": expected, "note": note})
        rows[-1].update(*extra)
    (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert agreement.main(["--set", str(tmp_path), "--timeout", "1"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("peer", "OVERALL"))}
    assert lines["peer-math"][:5] == ["1/3", "0.333", "1", "0", "1"]  # the timeout agrees with no label
    assert lines["peer-mc"][:6] == ["0/2", "0.000", "1", "1", "0", "0/1"]  # the disputed one apart
    assert lines["OVERALL"][4:9] == ["1/5", "0.200", "2", "1", "1"]
    fp, fn = out.index("[FP] peer-mc"), out.index("[FN] peer-math")
    assert fp < fn < out.index("[failed] peer-math") and "[disputed]" not in out
    agreement.main(["--set", str(tmp_path), "--disputed", "--timeout", "1"])
    assert "[disputed] peer-mc" in capsys.readouterr().out


def test_a_missing_set_is_a_one_line_error(agreement, tmp_path):
    with pytest.raises(SystemExit, match="no grading cases at .*cases.jsonl; pass --set DIR"):
        agreement.main(["--set", str(tmp_path / "nowhere")])

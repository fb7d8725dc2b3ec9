"""README's layout map is what `scripts/layout_map.py` makes from the module docstrings: every
module is in it, with the first sentence of its docstring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_layout_map_is_generated_from_the_docstrings():
    made = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "layout_map.py")], capture_output=True, text=True, check=True
    ).stdout
    begin, end = made.splitlines()[0], made.splitlines()[-1]
    readme = (REPO / "README.md").read_text()
    assert begin in readme and end in readme, "README.md lost its layout map markers"
    shown = readme[readme.index(begin) : readme.index(end) + len(end)] + "\n"
    assert shown == made, "regenerate: python scripts/layout_map.py --write"
    modules = [p for p in (REPO / "walkrun").rglob("*.py") if "migrations" not in p.parts and p.name != "__init__.py"]
    for p in modules:
        assert f"| `{p.relative_to(REPO / 'walkrun').as_posix()}` |" in made, f"{p} is not in the layout map"

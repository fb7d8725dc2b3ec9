"""The borders of the walkrun package, read from its source with `ast` (module-level and
function-level imports alike):

- no import cycles, and no private name (`_x`) imported from another module;
- no back-arrows: the flow is train/evaluate -> db -> leaderboard/serve, so core modules import
  no package, `db` imports only core, `telemetry` (training logs into the DB, and out to
  TensorBoard/W&B) core and `db`, `train`, `evaluate` and `data` those, `leaderboard` and `serve`
  those too, and only the end-to-end tools (`lab`, `demo`) and the command line import across;
- a package is entered only through the names its `__init__` lists in `__all__`;
- a walkrun module imported inside a function must be worth it: it brings in a heavy dependency
  (torch, lm-eval, SQLAlchemy, ...) that the importing module does not already load, and the
  import line says which (`# heavy: NAME`).
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "walkrun"

# Third-party packages whose import costs a noticeable part of a second or more on a small machine.
HEAVY = {
    "alembic", "datasets", "deepspeed", "gradio", "gradio_client", "httpx", "jinja2", "lm_eval", "math_verify",
    "numpy", "openai", "openrlhf", "pebble", "plotly", "pyarrow", "ray", "safetensors", "sqlalchemy", "starlette",
    "sympy", "tokenizers", "torch", "tqdm", "transformers", "trl", "uvicorn", "vllm",
}  # fmt: skip

# Layers of the flow: a module imports only from its own layer or lower ones; within a layer only
# from its own package (core modules may import each other).
LAYER = {
    "core": 0,
    "db": 1,
    "telemetry": 2,
    "train": 3,
    "evaluate": 3,
    "data": 3,
    "leaderboard": 4,
    "serve": 4,
    "lab": 5,
    "demo": 5,
}
TOP = 6  # walkrun.cli and the *_cli modules beside it


def _modules() -> dict[str, Path]:
    mods = {}
    for f in ROOT.rglob("*.py"):
        if "migrations" in f.parts:
            continue
        name = ".".join(f.relative_to(ROOT.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    return mods


MODULES = _modules()


def _resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for each name of an import statement."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names]
    base = node.module or ""
    if node.level:
        parts = importer.split(".")
        is_pkg = MODULES[importer].name == "__init__.py"
        parts = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
        base = ".".join(parts + ([base] if base else []))
    return [(base, a.name) for a in node.names]


def _target(mod: str, attr: str | None) -> str | None:
    """The walkrun module an import reaches (a submodule when it imports one by name)."""
    if not mod.startswith("walkrun"):
        return None
    full = f"{mod}.{attr}" if attr and f"{mod}.{attr}" in MODULES else mod
    while full not in MODULES and "." in full:
        full = full.rsplit(".", 1)[0]
    return full if full in MODULES else None


class Import:
    """One imported name: `in_function` inside a function body, `typing_only` under `if TYPE_CHECKING:`
    (an edge of the graph, but nothing is loaded at run time)."""

    def __init__(self, importer: str, node, mod: str, attr: str | None, in_function: bool, typing_only: bool):
        self.importer, self.node, self.mod, self.attr = importer, node, mod, attr
        self.in_function, self.typing_only = in_function, typing_only
        self.line = MODULES[importer].read_text().splitlines()[node.lineno - 1]
        self.target = _target(mod, attr)

    def __repr__(self) -> str:
        return f"{self.importer}:{self.node.lineno}: {self.line.strip()}"


@cache
def imports() -> list[Import]:
    out = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        inside: set[int] = set()
        typing: set[int] = set()
        for block in ast.walk(tree):
            if isinstance(block, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside.update(id(n) for n in ast.walk(block) if n is not block)
            elif isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
                typing.update(id(n) for stmt in block.body for n in ast.walk(stmt))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for mod, attr in _resolve(name, node):
                    out.append(Import(name, node, mod, attr, id(node) in inside, id(node) in typing))
    return out


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in imports():
        if i.target is not None and i.target != i.importer:
            edges[i.importer].add(i.target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    sys.setrecursionlimit(10_000)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(_edges()) == []


def test_no_private_names_across_modules():
    private = [
        i
        for i in imports()
        if i.mod.startswith("walkrun")
        and i.attr
        and i.attr.startswith("_")
        and not i.attr.startswith("__")
        and i.target != i.importer
    ]
    assert private == []


def _package(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 or MODULES[module].name == "__init__.py" and len(parts) == 2:
        return parts[1]
    return "cli" if parts[-1] == "cli" or parts[-1].endswith("_cli") else "core"


def _layer(module: str) -> int:
    pkg = _package(module)
    if pkg == "cli":
        return TOP
    return LAYER.get(pkg, 0)  # grading and the other core packages


def test_no_back_arrows():
    bad = set()
    for importer, targets in _edges().items():
        for target in targets:
            a, b = _package(importer), _package(target)
            same_pkg_or_core = a == b or (_layer(importer) == 0 and _layer(target) == 0)
            if _layer(target) > _layer(importer) or (_layer(target) == _layer(importer) and not same_pkg_or_core):
                bad.add((importer, target))
    assert sorted(bad) == []


def _declared(package: str) -> set[str]:
    tree = ast.parse(MODULES[package].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def test_every_package_declares_its_public_names():
    packages = [m for m, p in MODULES.items() if p.name == "__init__.py"]
    missing = [p for p in packages if not _declared(p)]
    assert missing == []
    for p in packages:  # what is declared exists
        for name in _declared(p):
            tree = ast.parse(MODULES[p].read_text())
            bound = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
            bound |= {
                t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
            }
            assert f"{p}.{name}" in MODULES or name in bound, f"{p}.__all__ names {name!r}, which it does not have"


def _is_package(module: str) -> bool:
    return module in MODULES and MODULES[module].name == "__init__.py"


def test_packages_are_entered_through_their_public_names():
    bad = []
    for i in imports():
        if i.target is None:
            continue
        parts = i.target.split(".")
        for depth in range(2, len(parts) + 1):
            package = ".".join(parts[:depth])
            if not _is_package(package) or i.importer == package or i.importer.startswith(package + "."):
                continue  # not a package, or the importer is inside it
            # a border crossed: the submodule entered, or the name taken from the package itself
            name = parts[depth] if depth < len(parts) else (i.attr if i.mod == package else None)
            if name is not None and name not in _declared(package):
                bad.append(i)
    assert bad == [], "import these through the names the package's __init__ lists in __all__"


@cache
def _heavy_at_import(module: str) -> frozenset[str]:
    """The heavy packages importing `module` loads (module-level imports, followed through walkrun)."""
    seen: set[str] = set()
    heavy: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")  # importing a module runs its packages' __init__ first
        todo += [p for d in range(1, len(parts)) if (p := ".".join(parts[:d])) in MODULES]
        for i in imports():
            if i.importer != m or i.in_function or i.typing_only:
                continue
            if i.mod.split(".")[0] in HEAVY:
                heavy.add(i.mod.split(".")[0])
            if i.target is not None:
                todo.append(i.target)
    return frozenset(heavy)


def test_function_level_imports_of_walkrun_modules_are_there_for_import_cost():
    needless, unexplained = [], []
    for i in imports():
        if not i.in_function or i.target is None or i.target == i.importer:
            continue
        brings = _heavy_at_import(i.target) - _heavy_at_import(i.importer)
        if not brings:
            needless.append(i)
            continue
        comment = i.line.partition("# heavy:")[2]
        named = {w.strip(" ,.()") for w in comment.replace(",", " ").split()}
        if not named & brings:
            unexplained.append((i, sorted(brings)))
    assert needless == [], "lazy imports that load nothing heavy: import them at the top"
    assert unexplained == [], "say which heavy package a lazy import defers: `# heavy: NAME`"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_its_job(module):
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text()))
    assert doc and doc.strip(), f"{module} has no module docstring"

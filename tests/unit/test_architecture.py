"""The layout rules of docs/architecture.md, checked on the source: no import cycle between modules, the
core imports no domain package, and nothing imports the old flat `services`/`web` packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
DOMAINS = {"accounts", "rounds", "audit", "intake", "portal", "tus", "mail", "review", "ranking", "stats",
           "deliberation", "publicity", "reports", "jobs", "ops", "demo"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(APP.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in APP.rglob("*.py") if "__pycache__" not in p.parts}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of the app this module imports (at any depth: a function-level import still couples)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            # `from app.x import y` names either a module app.x.y or an attribute of app.x.
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "app":
                out.add(t)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle(graph):
    # Package __init__ modules are implied by importing a submodule, so an edge to a package counts too.
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_core_imports_no_domain(graph):
    offenders = {m: sorted(t for t in deps if _area(t) in DOMAINS)
                 for m, deps in graph.items() if _area(m) == "core"}
    assert not {m: d for m, d in offenders.items() if d}


def test_models_import_no_domain(graph):
    offenders = {m: sorted(t for t in deps if _area(t) in DOMAINS)
                 for m, deps in graph.items() if _area(m) == "models"}
    assert not {m: d for m, d in offenders.items() if d}


def test_the_flat_packages_are_gone():
    assert not (APP / "services").exists()
    assert not (APP / "web").exists()
    for path in APP.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "app.services" not in text and "app.web" not in text, path


def test_the_cycle_check_can_fail(tmp_path):
    # The checker itself: a two-module cycle is found.
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from app.b import x\n")
    b.write_text("import app.a\n")
    known = {"app.a", "app.b"}
    assert _imports(a, "app.a", known) == {"app.b"}
    assert _imports(b, "app.b", known) == {"app.a"}

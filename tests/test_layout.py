"""The package's shape: every import resolves, arrows point only down, nothing serving imports
evaluation, there are no import circles and no module is far over 300 lines.

Imports are read from the source (function-level ones included: lazy imports are still
dependencies), so a forgotten or upward import fails here rather than in production.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lookalike"
MAX_LINES = 310
# Lower layers never import higher ones; a package may import its own modules.
LAYERS = {
    "limits": 0, "errors": 0, "fsutil": 0, "memory": 0, "config": 1, "imaging": 1,
    "embedders": 2,
    "index": 3,  # FAISS checks vectors with the embedders' own check
    "search": 4,
    "cloud": 5, "eval": 5, "collection": 5,
    "api": 6, "artifacts": 6,
    "cli": 7,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """``(imported lookalike module, line)`` for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "lookalike"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "lookalike":
                target = node.module
            else:
                continue
            for alias in node.names:  # "from . import cloud" imports a module, not a name
                sub = f"{target}.{alias.name}"
                out.append((sub if sub in MODULES else target, node.lineno))
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_import_resolves():
    missing = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
               for m, targets in GRAPH.items() for t, line in targets if t not in MODULES]
    assert not missing, "\n".join(missing)


def test_every_area_has_a_layer():
    assert {_area(m) for m in MODULES if _area(m)} <= set(LAYERS)


def test_arrows_point_down():
    upward = []
    for module, targets in GRAPH.items():
        here = _area(module)
        for target, line in targets:
            there = _area(target)
            if here and there and here != there and LAYERS[there] >= LAYERS[here]:
                upward.append(f"{module}:{line} ({here}, layer {LAYERS[here]}) imports {target} "
                              f"({there}, layer {LAYERS[there]})")
    assert not upward, "\n".join(upward)


def test_serving_never_imports_evaluation():
    offenders = [f"{m}:{line} imports {t}" for m, targets in GRAPH.items() for t, line in targets
                 if _area(t) == "eval" and _area(m) not in ("eval", "cli")]
    assert not offenders, "\n".join(offenders)
    cli_users = {m for m, targets in GRAPH.items() if _area(m) == "cli" and any(_area(t) == "eval" for t, _ in targets)}
    assert cli_users <= {"lookalike.cli.eval"}


def test_no_import_circles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target, _ in GRAPH.get(node, ()):
            # A package's __init__ importing its own modules is how packages re-export; not a circle.
            if target == node or node.startswith(target + ".") or target not in MODULES:
                continue
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if state.get(target) is None and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in MODULES:
        if module not in state and (cycle := visit(module)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_modules_are_small():
    big = {str(p.relative_to(PACKAGE.parent)): n for p in MODULES.values()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_top_level_is_short():
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists())
    assert len(top) <= 16, top

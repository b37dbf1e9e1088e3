"""The package's shape: imports run one way, and only the command line imports typer.

The layers, lowest first: the shared utilities (errors, io, progress, memory, report) → tokenizer → model →
pretraining / finetuning → evaluation → abtest → studies → demo → cli (the demo runs a small version of a study). A module may import from its own package or
from a lower layer, never from a higher one, and never from a sibling on the same layer (pretraining and finetuning
stay independent), except that the utilities use each other and so does the top. Every import counts, those inside functions included.
The package root (`llmlab/__init__.py`, the Python API, and `__main__`) sits on top with the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llmlab"
UTILITIES = ("errors", "io", "csvfile", "lazy", "progress", "memory", "report", "validate", "stdlib_text")
LAYERS = [UTILITIES, ("tokenizer",), ("model",), ("pretraining", "finetuning"), ("evaluation",), ("abtest",)]
LAYERS += [("studies",), ("demo",), ("cli", "api", "__init__", "__main__")]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def top_package(module: str) -> str:
    """'llmlab.model.config' → 'model'; 'llmlab' → '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    relative = path.relative_to(package.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, package_root: Path = PACKAGE) -> list[tuple[int, str]]:
    """Every llmlab module that `path` imports (line, dotted name), relative imports resolved."""
    here = module_name(path, package_root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            submodules = [
                f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}", package_root)
            ]
            found += [(node.lineno, name) for name in submodules] or [(node.lineno, base)]
    return [(line, name) for line, name in found if name == "llmlab" or name.startswith("llmlab.")]


def _is_module(dotted: str, package_root: Path) -> bool:
    """Whether `a.b.c` names a module or package file (so `from a.b import c` imports c, not a.b's names)."""
    path = package_root.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def source_files(package: Path = PACKAGE) -> list[Path]:
    return sorted(package.rglob("*.py"))


def back_edges(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in source_files(package):
        source = top_package(module_name(path, package))
        if path == package / "__init__.py":
            source = "__init__"
        for line, target_module in imported_modules(path, package):
            target = top_package(target_module)
            if target == source or target not in RANK or source not in RANK:
                if target not in RANK or source not in RANK:
                    problems.append(
                        f"{path.relative_to(package)}:{line} {target_module}: package not in LAYERS"
                    )
                continue
            same_layer_allowed = RANK[target] == RANK[source] in (0, len(LAYERS) - 1)
            if RANK[target] >= RANK[source] and not same_layer_allowed:
                problems.append(
                    f"{path.relative_to(package)}:{line} imports {target_module} (same or higher layer)"
                )
    return problems


def test_imports_run_one_way() -> None:
    assert back_edges() == []


def test_layer_order_is_acyclic_between_modules() -> None:
    """No cycle of module-level imports inside a package either (a cycle makes import order matter)."""
    graph: dict[str, set[str]] = {}
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = {name for _, name in imported_modules(path)}
        lines = {node.lineno for node in top_level}
        graph[module_name(path)] = {n for line, n in imported_modules(path) if line in lines and n in names}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1 and nxt != node:
                pytest.fail("import cycle: " + " → ".join(trail[trail.index(nxt) :] + [nxt]))
            if nxt in graph and not state.get(nxt):
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in graph:
        if not state.get(node):
            visit(node, [node])


def test_only_the_command_line_imports_typer() -> None:
    offenders = []
    for path in source_files():
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name == "typer" or name.startswith("typer.") for name in names):
                offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_the_checker_sees_a_back_edge(tmp_path: Path) -> None:
    """The checker itself: a function-level import from a higher layer is found."""
    package = tmp_path / "llmlab"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "model" / "probe.py").write_text("def f():\n    from llmlab.evaluation import metrics\n")
    (package / "model" / "fine.py").write_text(
        "from llmlab.tokenizer import Tokenizer\nfrom . import probe\n"
    )
    assert back_edges(package) == ["model/probe.py:2 imports llmlab.evaluation (same or higher layer)"]

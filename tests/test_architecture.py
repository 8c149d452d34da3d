"""The architecture's rules, read off the import statements: a leaf results module, a numeric
engine and a diagnosis that know nothing of the checker, and no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "derivcheck"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("derivcheck"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("derivcheck")}
    return found


GRAPH = {_module(p): _imports(p, top_level_only=False) for p in PACKAGE.rglob("*.py")}
TOP = {_module(p): _imports(p, top_level_only=True) for p in PACKAGE.rglob("*.py")}


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_results_module_is_a_leaf_at_import_time():
    assert TOP["derivcheck.report.results"] == set()


def test_the_numeric_engine_and_the_diagnosis_know_nothing_of_the_checker():
    allowed = {
        "derivcheck.numeric": ("derivcheck.numeric", "derivcheck.numeric.tolerances", "derivcheck.errors", "derivcheck.report.results"),
        "derivcheck.checker.diagnosis": ("derivcheck.checker.diagnosis", "derivcheck.report.results"),
    }
    for module, imports in GRAPH.items():
        for layer, ok in allowed.items():
            if _under(module, (layer,)):
                assert all(_under(i, ok) for i in imports), (module, sorted(imports))


def test_there_are_no_import_cycles_at_import_time():
    def visit(node: str, path: list[str]) -> None:
        for nxt in TOP.get(node, ()) - {node}:  # a package importing its own submodule is no cycle
            if nxt in path:
                raise AssertionError(" -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt in TOP and nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    done: set[str] = set()
    for module in TOP:
        visit(module, [module])

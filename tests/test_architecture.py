"""The architecture, read off every import statement, inside functions too: each folder of
``derivcheck/`` is one part of the design, the arrows between the parts are the ones drawn
below, and no module reaches itself again through its imports.

Imports under ``if TYPE_CHECKING:`` never run and are left out: they name types for a checker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import derivcheck  # noqa: F401 - installs the finder of moved modules

PACKAGE = Path(__file__).parents[1] / "derivcheck"

# Data flows one way: declarations (catalog) -> symbolic derivation -> compiled NumPy -> comparisons
# (checker over numeric) -> findings -> report data -> renderers; interfaces reach everything.
ALLOWED = {
    "errors": set(),
    "numeric": {"errors"},
    "report": {"errors"},
    "checker": {"numeric", "report", "errors"},
    # A layer declared as matrix-language steps names its program (language.declaration); the
    # extension API lists the detector registration beside the catalog's.
    "catalog": {"language", "checker", "errors"},
    # The matrix language uses the numeric checker as a witness of what it prints: drawn on purpose.
    "language": {"checker", "numeric", "report", "errors"},
    "symbolic": {"catalog", "language", "checker", "numeric", "report", "errors"},
    # "" is the package's front door (its version, its public names).
    "interfaces": {"", "catalog", "symbolic", "language", "checker", "numeric", "report", "errors"},
}
TOP_LEVEL = {"__init__.py", "__main__.py", "errors.py", "py.typed"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _walk(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if not _is_type_checking(child):
            yield child
            yield from _walk(child)


def _resolve(name: str) -> str:
    """``derivcheck.language.nodes`` for ``from derivcheck.language import nodes``; else the module itself."""
    return name if _module_exists(name) else name.rsplit(".", 1)[0]


def _module_exists(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(source: str) -> set[str]:
    found = set()
    for node in _walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("derivcheck"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_exists(f"{node.module}.{a.name}")}
        elif isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.startswith("derivcheck")}
    return found


GRAPH = {_module(p): _imports(p.read_text()) for p in PACKAGE.rglob("*.py")}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_top_level_holds_only_the_parts_of_the_design():
    files = {p.name for p in PACKAGE.iterdir() if p.is_file()}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert files <= TOP_LEVEL, sorted(files - TOP_LEVEL)
    assert folders == set(ALLOWED) - {"errors"}, sorted(folders ^ (set(ALLOWED) - {"errors"}))


def forbidden_arrows(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, imports in graph.items():
        here = _part(module)
        if here in ("", "__main__"):  # the package's front door re-exports every part
            continue
        bad += [f"{module} -> {t}" for t in imports if _part(t) != here and _part(t) not in ALLOWED[here]]
    return sorted(bad)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(node, set()) - {node}):
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            if nxt in graph and nxt not in done:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        done.add(node)
        return None

    for module in sorted(graph):
        found = visit(module, [module])
        if found:
            return found
    return None


def test_every_arrow_between_parts_is_an_allowed_one():
    assert forbidden_arrows(GRAPH) == []


def test_the_result_types_import_no_algorithm():
    assert all(_part(i) in ("report", "errors") for i in GRAPH["derivcheck.report.results"])


def test_there_are_no_import_cycles_deferred_imports_included():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_deferred_import_is_read_and_a_type_checking_one_is_not():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from derivcheck.checker import gradient\n"
              "def f():\n    from derivcheck.numeric import compare\n    import derivcheck.language.printing.sympy_forms\n")
    assert _imports(source) == {"derivcheck.numeric", "derivcheck.numeric.compare", "derivcheck.language.printing.sympy_forms"}


def test_the_checks_see_a_planted_arrow_and_a_planted_cycle():
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["derivcheck.numeric.finite_diff"].add("derivcheck.checker.gradient")
    assert "derivcheck.numeric.finite_diff -> derivcheck.checker.gradient" in forbidden_arrows(graph)
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["derivcheck.numeric.tolerances"].add("derivcheck.numeric.finite_diff")
    assert find_cycle(graph) is not None


@pytest.mark.parametrize("old, new", [
    ("derivcheck.strategies", "derivcheck.interfaces.strategies"),
    ("derivcheck.plot", "derivcheck.checker.plots"),
    ("derivcheck.pytest_plugin", "derivcheck.interfaces.pytest_plugin"),
    ("derivcheck.check", "derivcheck.checker.gradient"),
    ("derivcheck.extend", "derivcheck.catalog.extension"),
    ("derivcheck.expressions.parse", "derivcheck.language.parse"),
    ("derivcheck.expressions.layer_chain", "derivcheck.symbolic.layer_chain"),
    ("derivcheck.report.latex", "derivcheck.language.printing.sympy_forms"),
    ("derivcheck.report.notation", "derivcheck.language.printing.notation"),
])
def test_an_old_import_path_gives_the_module_at_its_new_place(old, new):
    import importlib

    module = importlib.import_module(old)
    assert module is importlib.import_module(new) and module.__name__ == new


def printers_outside_the_printing_module(root: Path) -> list[str]:
    """Every class that prints math (a SymPy printer, or one with ``_print_`` methods) outside ``language/printing/``,
    except the printer lambdify compiles with, whose output is executed and never shown."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("language/printing/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name in _EXECUTED_ONLY:
                continue
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            prints = any(isinstance(f, ast.FunctionDef) and f.name.startswith("_print_") for f in node.body)
            if prints or any(b.endswith("Printer") for b in bases):
                found.append(f"{rel}: {node.name}")
    return found


# lambdify's printer: its NumPy source is compiled, never printed to a person.
_EXECUTED_ONLY = {"_MatrixPrinter"}


def test_every_printer_lives_in_the_one_printing_module(tmp_path):
    assert printers_outside_the_printing_module(Path(derivcheck.__file__).parent) == []
    planted = tmp_path / "symbolic" / "stray.py"
    planted.parent.mkdir()
    planted.write_text("from sympy.printing.str import StrPrinter\nclass Stray(StrPrinter):\n    pass\n")
    assert printers_outside_the_printing_module(tmp_path) == ["symbolic/stray.py: Stray"]


def test_the_report_package_keeps_its_names():
    from derivcheck.report import Finding, GradientReport, ParamReport, render_text, to_dict  # noqa: F401

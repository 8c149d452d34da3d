"""Which files are the user's, and what their statements are.

Tracing follows only code whose source we can read and that the user wrote: never numpy's, the
standard library's, an installed package's or derivcheck's own. Every line number the tracer sees
is mapped to the first line of the statement that holds it, so a statement written over several
lines is one statement.
"""

from __future__ import annotations

import ast
import linecache
import os
import site
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_DERIVCHECK_DIR = str(Path(__file__).resolve().parents[2])  # the derivcheck package itself


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    found |= set(site.getsitepackages()) | {site.getusersitepackages()}
    found |= {str(Path(np.__file__).resolve().parent), _DERIVCHECK_DIR}
    return tuple(sorted(os.path.realpath(p) for p in found if p))


_LIBRARY_PREFIXES = _library_prefixes()
# derivcheck's own files are never traced, except the demos, which are written as a user writes a backward pass.
_USER_CODE_SHIPPED = (os.path.join("derivcheck", "interfaces", "examples.py"),)
_USER_FILE_CACHE: dict[str, bool] = {}


def is_user_file(filename: str) -> bool:
    """True for a file (or notebook cell) whose source is readable and not a library's."""
    known = _USER_FILE_CACHE.get(filename)
    if known is None:
        known = _judge_file(filename)
        _USER_FILE_CACHE[filename] = known
    return known


def _judge_file(filename: str) -> bool:
    if filename.startswith("<") and not linecache.getlines(filename):
        return False  # exec'd or frozen code: there is no source to read
    if not filename.startswith("<"):
        real = os.path.realpath(filename)
        stands_for_user_code = any(real.endswith(os.sep + tail) for tail in _USER_CODE_SHIPPED)
        if not stands_for_user_code and any(real == p or real.startswith(p + os.sep) for p in _LIBRARY_PREFIXES):
            return False
        if f"{os.sep}site-packages{os.sep}" in real or f"{os.sep}dist-packages{os.sep}" in real:
            return False
    return SourceIndex.of(filename) is not None


@dataclass
class SourceIndex:
    """One file's statements: where each starts, its node, and the for-loops around it."""

    filename: str
    lines: list[str]
    start_of: dict[int, int] = field(default_factory=dict)  # any line -> its statement's first line
    statement_at: dict[int, ast.stmt] = field(default_factory=dict)
    loops_at: dict[int, tuple[str, ...]] = field(default_factory=dict)  # loop targets, innermost first

    _cache = {}  # filename -> SourceIndex | None

    @classmethod
    def of(cls, filename: str) -> SourceIndex | None:
        if filename not in cls._cache:
            cls._cache[filename] = cls._build(filename)
        return cls._cache[filename]

    @classmethod
    def _build(cls, filename: str) -> SourceIndex | None:
        lines = linecache.getlines(filename)
        if not lines:
            return None
        try:
            tree = ast.parse("".join(lines))
        except (SyntaxError, ValueError):
            return None
        index = cls(filename, lines)
        index._visit(tree.body, ())
        return index

    def _visit(self, body: list[ast.stmt], loops: tuple[str, ...]) -> None:
        for node in body:
            inner = getattr(node, "body", None)
            header_end = inner[0].lineno - 1 if isinstance(inner, list) and inner else node.end_lineno
            for line in range(node.lineno, header_end + 1):
                self.start_of[line] = node.lineno
            self.statement_at[node.lineno] = node
            self.loops_at[node.lineno] = loops
            targets = loops
            if isinstance(node, (ast.For, ast.AsyncFor)):
                names = tuple(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
                targets = names[:1] + loops
            for block in ("body", "orelse", "finalbody"):
                child = getattr(node, block, None)
                if isinstance(child, list) and child and isinstance(child[0], ast.stmt):
                    self._visit(child, targets if block == "body" else loops)
            for handler in getattr(node, "handlers", []) or []:
                self._visit(handler.body, loops)

    def statement_start(self, line: int) -> int:
        return self.start_of.get(line, line)

    def text(self, start: int) -> str:
        """The statement's source on one line: continuation lines joined, comments dropped."""
        node = self.statement_at.get(start)
        if node is not None and not hasattr(node, "body"):
            segment = ast.get_source_segment("".join(self.lines), node)
            if segment:
                return " ".join(part.strip() for part in segment.splitlines()).strip()
        return self.lines[start - 1].strip() if 0 < start <= len(self.lines) else ""


def statement_reads(node: ast.stmt) -> set[str]:
    """Names a statement reads, in the tracer's spelling: ``x``, ``self.cache``, ``grads['W1']``.

    A name modified in place (``dx[i] += ...``, ``x += ...``) counts as read.
    """
    reads: set[str] = set()
    plain_targets = {t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and not (isinstance(sub.ctx, ast.Store) and sub.id in plain_targets):
            reads.add(sub.id)
        elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
            reads.add(f"self.{sub.attr}")
        elif isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Constant):
            base = _spelled(sub.value)
            if base is not None:
                reads.add(f"{base}[{sub.slice.value!r}]")
    if isinstance(node, ast.AugAssign):
        reads |= {n for n in (_spelled(node.target),) if n}
    return reads


def _spelled(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return f"self.{node.attr}"
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        base = _spelled(node.value)
        return f"{base}[{node.slice.value!r}]" if base else None
    return None

"""Small AST surgery: copy a statement and replace one of its nodes; build expressions from text."""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator


def parse_expr(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def nodes_of(statement: ast.stmt) -> list[ast.AST]:
    return list(ast.walk(statement))


def replaced(statement: ast.stmt, position: int, new: ast.AST) -> ast.stmt:
    """A copy of ``statement`` with its ``position``-th node (in ast.walk order) replaced."""
    twin = copy.deepcopy(statement)
    target = nodes_of(twin)[position]
    for parent in ast.walk(twin):
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, new)
                return ast.fix_missing_locations(twin)
            if isinstance(value, list) and any(v is target for v in value):
                setattr(parent, field, [new if v is target else v for v in value])
                return ast.fix_missing_locations(twin)
    raise ValueError("node not found")


def with_value(statement: ast.stmt, value: ast.expr) -> ast.stmt:
    twin = copy.deepcopy(statement)
    twin.value = value
    return ast.fix_missing_locations(twin)


def value_text(statement: ast.stmt) -> str:
    return ast.unparse(statement.value)


def name_positions(statement: ast.stmt, skip_targets: bool = True) -> Iterator[tuple[int, ast.Name]]:
    """Positions of Names read in the statement's right-hand side."""
    value = getattr(statement, "value", None)
    inside = {id(n) for n in ast.walk(value)} if value is not None else set()
    for position, node in enumerate(nodes_of(statement)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and (id(node) in inside or not skip_targets):
            yield position, node


def in_compare(statement: ast.stmt, name: ast.Name) -> bool:
    return any(isinstance(n, ast.Compare) and any(m is name for m in ast.walk(n)) for n in ast.walk(statement))


def replace_all_names(statement: ast.stmt, old: str, new: str) -> ast.stmt:
    twin = copy.deepcopy(statement)
    for node in ast.walk(twin.value):
        if isinstance(node, ast.Name) and node.id == old:
            node.id = new
    return twin


def corrected_text(statement: ast.stmt) -> str:
    if isinstance(statement, ast.Pass):
        return "(delete the line)"  # the correction is to drop the statement
    return ast.unparse(statement)

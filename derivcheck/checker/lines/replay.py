"""Run a blamed statement again, as written or mutated, on the namespaces it ran in.

An ``Event`` is one execution of a statement of the blamed variable's chain (one line, or the
lines that build it in place, once per loop step): the namespace right before it ran, copied.
Replaying the chain with one statement mutated gives the value the corrected code would produce.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from derivcheck.checker.lines.trace import copy_namespace

# An entry reproduces the true adjoint when it is within this many measurement-error estimates
# of it, plus this relative amount of the adjoint's typical size (rounding in the measurement).
ENTRY_SAFETY = 10.0
ENTRY_RELATIVE = 1e-6


@dataclass
class Event:
    line: int
    namespace: dict
    globals: dict
    steps: tuple


@dataclass
class Context:
    var: str
    events: list[Event]
    statements: dict[int, ast.stmt]  # line -> statement, for the chain's lines
    sources: dict[int, str]
    true: np.ndarray
    error: np.ndarray
    yours: np.ndarray
    is_forward: Callable[[np.ndarray], bool]
    codes: dict = field(default_factory=dict)

    def code(self, line: int):
        if line not in self.codes:
            self.codes[line] = compile_statement(self.statements[line])
        return self.codes[line]

    @property
    def last(self) -> Event:
        return self.events[-1]


# A ``return`` statement is replayed as an assignment to this name, so a returned value can be read back.
RETURNED = "__derivcheck_returned__"


def compile_statement(statement: ast.stmt):
    """Code for one statement; ``return value`` becomes ``RETURNED = value``."""
    if isinstance(statement, ast.Return) and statement.value is not None:
        statement = ast.copy_location(ast.Assign([ast.Name(RETURNED, ast.Store())], statement.value), statement)
        ast.fix_missing_locations(statement)
    return compile(ast.Module([statement], []), "<derivcheck-replay>", "exec")


def get_var(env: dict, var: str):
    var = var.replace("<return>", RETURNED, 1)
    base, _, key = var.partition("[")
    value = getattr(env["self"], base[5:]) if base.startswith("self.") else env[base]
    return value[ast.literal_eval(key[:-1])] if key else value


def set_var(env: dict, var: str, value) -> None:
    var = var.replace("<return>", RETURNED, 1)
    base, _, key = var.partition("[")
    if key:
        get_var(env, base)[ast.literal_eval(key[:-1])] = value
    elif base.startswith("self."):
        setattr(env["self"], base[5:], value)
    else:
        env[base] = value


def replay(ctx: Context, line: int | None = None, statement: ast.stmt | None = None,
           appended: str | None = None, trail: list | None = None) -> np.ndarray | None:
    """The variable's final value with ``statement`` run in place of line ``line`` (None: as written)."""
    code = None if statement is None else compile_statement(statement)
    carried = None
    env: dict = {}
    try:
        for event in ctx.events:
            env = dict(event.globals)
            env.update(copy_namespace(event.namespace))
            if carried is not None:
                set_var(env, ctx.var, carried)
            exec(code if event.line == line and code is not None else ctx.code(event.line), env)  # noqa: S102
            carried = np.array(get_var(env, ctx.var), dtype=np.float64)
            if trail is not None:
                trail.append(carried.copy())
        if appended:
            exec(appended, env)  # noqa: S102
            carried = np.array(get_var(env, ctx.var), dtype=np.float64)
    except Exception:  # a mutant that does not run is simply not a correction
        return None
    return carried


def reproduces(ctx: Context, value: np.ndarray | None) -> bool:
    """Every entry of ``value`` equals the measured true adjoint within its error."""
    if value is None:
        return False
    true = ctx.true
    if value.shape != true.shape:
        if value.shape != ctx.yours.shape or value.size != true.size:
            return False  # a corrected line keeps either the true shape or the user's own
        value = value.reshape(true.shape)
    if not np.all(np.isfinite(value)):
        return False
    typical = float(np.sqrt(np.mean(np.square(true)))) + float(np.finfo(np.float64).tiny)
    tolerance = ENTRY_SAFETY * ctx.error + ENTRY_RELATIVE * (np.abs(true) + typical)
    return bool(np.all(np.abs(value - true) <= tolerance))


def first_differing_event(ctx: Context, line: int | None, statement: ast.stmt | None) -> int | None:
    """The first execution at which the mutated statement gives another value than the written one."""
    written, corrected = [], []
    replay(ctx, trail=written)
    replay(ctx, line, statement, trail=corrected)
    for k, (a, b) in enumerate(zip(written, corrected)):
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-9, atol=1e-12):
            return k
    return None

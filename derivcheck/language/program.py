"""A derivation as a chain of named steps: forward definitions, then one backward line per step.

``A_f = X @ W_f + H @ U_f + b_f``, ``F = sigmoid(A_f)``, ... Each step's sensitivity
``dZ`` is derived as the gradient of ``f + sum_j <dZ_j, def_j>`` by ``Z`` over the later steps
``j`` that use it, so that the backward pass reads step by step, as in a textbook, with every
subexpression that is a forward step written by its name (``dA_f = dF ⊙ F ⊙ (1 - F)``).
The backward pass is printed as NumPy code too, and that code is what is verified: every
sensitivity against finite differences of the objective in that step's value (the later
steps recomputed), and every parameter's gradient against finite differences of the whole.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivcheck.errors import ExpressionError
from derivcheck.numeric.compare import PURELY_RELATIVE, relative_gap
from derivcheck.language import nodes as n
from derivcheck.language.adjoint import gradient
from derivcheck.language.declaration import Program
from derivcheck.language.domain import draw_sizes, draw_values
from derivcheck.language.evaluate import evaluate
from derivcheck.language.index_claim import IndexClaim, parse_index_claim
from derivcheck.language.index_notation import IndexForm
from derivcheck.language.printing import notation
from derivcheck.language.printing.index import (IndexLatex, IndexText, entry_text, lhs_latex, lhs_text, subscripted,
                                                subscripted_latex)
from derivcheck.language.nodes import Node, Variable
from derivcheck.language.parse import declarations, parse_expression
from derivcheck.language.printing import HELPERS, CodePrinter, latex, text
from derivcheck.language.printing.tree_code import python_name
from derivcheck.report.results import Form, Line, ProgramDerivation, Verification, verdict_ok
from derivcheck.language.rewrite import fuse, simplify

_SEEDS = (5, 17)


def delta_name(name: str) -> str:
    return "d" + name


class _Chain:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.variables: dict[str, Variable] = declarations(program.shapes)
        self.inputs = dict(self.variables)
        self.defs: list[tuple[str, Node]] = []
        for name, expr in program.steps:
            if name in self.variables:
                raise ExpressionError(f"step {name!r} reuses a declared name")
            node = parse_expression(expr, self.variables)
            self.variables[name] = Variable(name, node.shape)
            self.defs.append((name, node))
        self.objective = parse_expression(program.objective, self.variables)
        if self.objective.shape:
            raise ExpressionError("the objective of a program must be a scalar")
        for w in program.wrt:
            if w not in self.inputs:
                raise ExpressionError(f"wrt {w!r} is not a declared input")
        self.deltas = {name: Variable(delta_name(name), node.shape) for name, node in self.defs}
        self.all_vars = {**self.variables, **{v.name: v for v in self.deltas.values()}}
        self.names = self._names()

    def _names(self) -> dict[Node, Node]:
        """Forward subexpressions and the names of the steps that define them."""
        out: dict[Node, Node] = {}
        for name, node in self.defs:
            target = n.var(self.variables[name])
            out[node] = target
            out[simplify(fuse(node), self.variables)] = target
        return out

    def rename(self, x: Node) -> Node:
        if x in self.names:
            return self.names[x]
        if not x.args:
            return x
        return Node(x.op, tuple(self.rename(a) for a in x.args), x.attrs, x.shape)

    def sensitivity(self, target: str, after: int) -> Node | None:
        """d(objective)/d(target) through the steps after index ``after`` and the objective itself."""
        var = n.var(self.variables[target])
        parts = []
        if self.objective.depends_on(target):
            parts.append(gradient(fuse(self.objective), var))
        for name, node in self.defs[after:]:
            if node.depends_on(target):
                up = n.var(self.deltas[name])
                inner = n.total(n.mul(up, fuse(node))) if node.ndim else n.mul(up, fuse(node))
                parts.append(gradient(inner, var))
        if not parts:
            return None
        g = simplify(parts[0] if len(parts) == 1 else n.add(*parts), self.all_vars, free=target)
        g = self.rename(g)
        return n.broadcast_to(g, var.shape) if g.shape != var.shape else g

    def backward(self) -> tuple[list[tuple[str, Node]], list[tuple[str, Node]]]:
        steps: list[tuple[str, Node]] = []
        for k in range(len(self.defs) - 1, -1, -1):
            name = self.defs[k][0]
            g = self.sensitivity(name, k + 1)
            steps.append((name, g if g is not None else n.broadcast_to(n.const(0), self.defs[k][1].shape)))
        grads = []
        for w in self.program.wrt:
            g = self.sensitivity(w, 0)
            grads.append((w, g if g is not None else n.broadcast_to(n.const(0), self.inputs[w].shape)))
        return steps, grads


def _source(chain: _Chain, steps: list[tuple[str, Node]], grads: list[tuple[str, Node]]) -> str:
    cp = CodePrinter()
    inputs = sorted(chain.inputs)
    body = [f"    {name} = {cp(node)}" for name, node in chain.defs]
    body += [f"    {delta_name(name)} = {cp(g)}" for name, g in steps]
    # The returned gradients are printed before the sizes are read: a zero gradient needs its shape, np.zeros((D, M)).
    ret = ", ".join([f"'{w}': {cp(g)}" for w, g in grads] + [f"'{delta_name(s)}': {delta_name(s)}" for s, _ in steps])
    dims = []
    for d in sorted(cp.dims):
        owner = next(v for v in chain.inputs.values() if d in v.shape)
        dims.append(f"    {d} = {python_name(owner.name)}.shape[{owner.shape.index(d)}]")
    helpers = "".join(HELPERS[h] + "\n\n\n" for h in sorted(cp.helpers))
    return (f"import numpy as np\n\n\n{helpers}def backward({', '.join(map(python_name, inputs))}):\n" + "\n".join(dims + body)
            + f"\n    return {{{ret}}}\n")


def _forward_values(chain: _Chain, values: Mapping[str, Any], sizes: Mapping[str, int], start: int = 0
                    ) -> dict[str, Any]:
    env = dict(values)
    for name, node in chain.defs[start:]:
        env[name] = evaluate(node, env, sizes)
    return env


def _verify(chain: _Chain, fn: Any, steps: list[tuple[str, Node]], seed: int) -> list[Verification]:
    from derivcheck.checker.gradient import check_gradient

    rng = np.random.default_rng([0xC4, seed])
    sizes = draw_sizes(chain.inputs, rng)
    values = draw_values(chain.inputs, sizes, rng)
    args = sorted(chain.inputs)
    out = fn(*[values[a] for a in args])
    full = _forward_values(chain, values, sizes)
    checks = []
    index = {name: k for k, (name, _) in enumerate(chain.defs)}
    for name, _ in steps:
        k = index[name]

        def loss_z(z: np.ndarray, k: int = k, name: str = name) -> float:
            env = {**{key: v for key, v in full.items()}, name: z}
            env = _forward_values(chain, env, sizes, start=k + 1)
            return float(evaluate(chain.objective, env, sizes))

        dz = np.asarray(out[delta_name(name)], dtype=float)
        rep = check_gradient(loss_z, lambda z, dz=dz: dz, np.asarray(full[name], dtype=float), seed=seed)
        ok = verdict_ok(rep.verdict)
        checks.append(Verification(delta_name(name), f"finite differences of f in {name}", sizes,
                                   float(rep.params[0].max_rel_error), ok, rep.params[0].reason))
    params = {w: np.asarray(values[w], dtype=float) for w in chain.program.wrt}

    def loss(p: dict[str, np.ndarray]) -> float:
        env = _forward_values(chain, {**values, **p}, sizes)
        return float(evaluate(chain.objective, env, sizes))

    def grad(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        o = fn(*[{**values, **p}[a] for a in args])
        return {w: np.asarray(o[w], dtype=float) for w in chain.program.wrt}

    rep = check_gradient(loss, grad, params, seed=seed)
    for row in rep.params:
        ok = verdict_ok(row.verdict)
        checks.append(Verification(f"d{row.name}", "finite differences of f", sizes, float(row.max_rel_error), ok,
                                   row.reason))
    return checks


def derive_program(program: Program) -> ProgramDerivation:
    """Derive a chain of named steps: every backward line printed and verified in the same run."""
    start = time.perf_counter()
    chain = _Chain(program)
    steps, grads = chain.backward()
    source = _source(chain, steps, grads)
    namespace: dict[str, Any] = {}
    exec(compile(source, "<derivcheck generated backward>", "exec"), namespace)  # noqa: S102 - our own printed code
    checks: list[Verification] = []
    for seed in _SEEDS:
        checks.extend(_verify(chain, namespace["backward"], steps, seed))
    names = set(chain.all_vars) | {d for v in chain.all_vars.values() for d in v.shape if isinstance(d, str)}
    index_forms = {id(node): IndexForm(node, names=names) for _, node in (*steps, *grads)}
    printed = {k: IndexText(f.atoms, names, free=f.free).doprint(f.expr) for k, f in index_forms.items()}
    checks.append(_verify_index_forms(chain, namespace["backward"], [*steps, *grads], index_forms, printed))
    ok = all(c.ok for c in checks)

    def line(lhs: str, node: Node) -> Line:
        g = notation.current()
        shown = g.derivative("f", g.name(lhs[4:])) if lhs.startswith("df/d") else lhs  # ∂f/∂W, as derive-expr
        if not ok:
            return Line(Form(shown, _latex_name(lhs)), Form(None, None, "DEFECT, not shown"))
        idx = index_forms[id(node)]
        head = (lhs_text(lhs[4:], idx.free, names, g) if lhs.startswith("df/d")
                else entry_text(g.name(lhs), [str(i) for i in idx.free], subscripted(lhs, names)))
        index = Form(f"{head} = {printed[id(node)]}",
                     f"{_latex_index_lhs(lhs, idx.free)} = {IndexLatex(idx.atoms, idx.free).doprint(idx.expr)}")
        return Line(Form(shown, _latex_name(lhs)), Form(text(node), latex(node)), index)

    forward = tuple(Line(Form(name, _latex_name(name)), Form(text(node), latex(node))) for name, node in chain.defs)
    forward += (Line(Form("f", "f"), Form(text(chain.objective), latex(chain.objective))),)
    return ProgramDerivation(
        program, forward, tuple(line(delta_name(s), g) for s, g in steps),
        tuple(line(f"df/d{w}", g) for w, g in grads), source if ok else None, tuple(checks),
        time.perf_counter() - start)


def _latex_index_lhs(lhs: str, free: tuple[Any, ...]) -> str:
    """``\\frac{\\partial f}{\\partial W_{ij}}``, or ``\\bar{A}_{ij}`` for a sensitivity."""
    if lhs.startswith("df/d"):
        return lhs_latex(lhs[4:], free)
    sub = "".join(map(str, free)) if all(len(str(i)) == 1 for i in free) else ",".join(map(str, free))
    return subscripted_latex(_latex_name(lhs), sub) if free else _latex_name(lhs)


def _verify_index_forms(chain: _Chain, fn: Any, lines: list[tuple[str, Node]], forms: Mapping[int, IndexForm],
                        printed: Mapping[int, str]) -> Verification:
    """Every line's index form as printed, read back, entry by entry at small sizes against its matrix form (the
    verified code's values)."""
    rng = np.random.default_rng([0xC4, 99])
    sizes = draw_sizes(chain.inputs, rng, small=True)
    values = draw_values(chain.inputs, sizes, rng)
    env = _forward_values(chain, values, sizes)
    out = fn(*[values[a] for a in sorted(chain.inputs)])
    env.update({k: v for k, v in out.items() if k.startswith("d") and k[1:] in env})
    worst = 0.0
    for name, node in lines:
        expected = np.asarray(evaluate(node, env, sizes), dtype=float)
        try:
            got = _read_back(printed[id(node)], forms[id(node)].free, node, chain.all_vars).values(env, sizes)
        except ExpressionError as exc:
            return Verification("index forms of every line", "their matrix forms, entry by entry", sizes,
                                float("nan"), False, f"the index form of {name} does not read back: {exc}")
        worst = max(worst, relative_gap(got, expected, PURELY_RELATIVE))
    return Verification("index forms of every line", "their matrix forms, entry by entry", sizes, worst, worst <= 1e-9)


def _read_back(rhs: str, free: tuple[Any, ...], node: Node, variables: Mapping[str, Variable]) -> IndexClaim:
    """A line's printed index form read by check-eq's reader, its entries bound to a name of the line's shape."""
    binder = next(f"Line{k}" for k in range(len(variables) + 1) if f"Line{k}" not in variables)
    entry = entry_text(binder, [str(i) for i in free], True)
    return parse_index_claim(f"df/d{entry} = {rhs}", {**variables, binder: Variable(binder, node.shape)}, binder)


def _latex_name(name: str) -> str:
    from derivcheck.language.printing import MathPrinter

    printer = MathPrinter(latex=True)  # the same names as inside the equations: \bar{Xh}, \gamma, A_i
    if name.startswith("df/d"):
        return rf"\frac{{\partial f}}{{\partial {printer.name(name[4:])}}}"
    return printer.name(name)


_STEP = re.compile(r"^\s*([A-Za-z_][A-Za-z_0-9]*)\s*=(?!=)\s*(.+)$")


def _step(item: Any) -> tuple[str, str]:
    if isinstance(item, str):
        m = _STEP.match(item)
        if m is None:
            raise ExpressionError(f"a step reads NAME = EXPRESSION, e.g. 'S = Q @ K.T'; got {item!r}")
        return m.group(1), m.group(2).strip()
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return item[0], item[1]
    raise ExpressionError(f"a step is 'NAME = EXPRESSION' or a (name, expression) pair; got {item!r}")


def derive_steps(steps: Sequence[Any], objective: str, wrt: Sequence[str] | str,
                 shapes: Mapping[str, str] | None = None, *, lets: Sequence[str] | None = None) -> ProgramDerivation:
    """Derive a chain of named steps: the backward pass step by step, each line verified in the same run.

    Examples
    --------
    >>> d = derive_steps(["S = Q @ K.T", "P = softmax(S, axis=1)", "Y = P @ V"], "sum(G * Y)", ["Q", "K", "V"],
    ...                  {"Q": "N x E", "K": "T x E", "V": "T x D", "G": "N x D"})
    >>> [line.rhs.text for line in d.gradients], d.ok
    (['dS K', 'dSᵀ Q', 'Pᵀ dY'], True)
    """
    from derivcheck.language.parse import parse_declaration

    merged = dict(shapes or {})
    for text in lets or []:
        v = parse_declaration(None, text)
        merged[v.name] = text.partition(":")[2]
    names = [wrt] if isinstance(wrt, str) else list(wrt)
    program = Program(tuple(_step(x) for x in steps), objective, tuple(names), merged)
    declared = [*merged, *(name for name, _ in program.steps)]
    with notation.names_apart(spelled=notation.printed_alike(declared)):  # lam beside lambda: lam, λ
        return derive_program(program)

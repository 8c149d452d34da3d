"""``derive_expression``: the derivative of a typed matrix expression, verified before it is shown.

The gradient is derived in reverse mode (``adjoint``), rewritten into textbook form
(``rewrite``), written out in index notation and as NumPy source, and then checked in the
same run: the generated source against finite differences of the expression as typed (the
project's own checker, every entry, at two random sizes), the index form entry by entry,
and the matrix form exactly (SymPy entries) at sizes 2. A part that disagrees is reported
as a defect and not shown as an answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp

from derivcheck.errors import ExpressionError
from derivcheck.numeric.compare import PURELY_RELATIVE, relative_gap
from derivcheck.language import nodes as n
from derivcheck.language.adjoint import gradient
from derivcheck.language.domain import draw, draw_sizes, draw_values
from derivcheck.language.evaluate import SYMPY, evaluate
from derivcheck.language.index_claim import IndexClaim, parse_index_claim
from derivcheck.language.index_notation import IndexForm
from derivcheck.language.printing import notation
from derivcheck.language.printing.index import IndexLatex, IndexText, lhs_latex, lhs_text
from derivcheck.language.nodes import Node, Variable
from derivcheck.language.parse import declarations, parse_expression
from derivcheck.language.printing import HELPERS, CodePrinter, MathPrinter, latex, text
from derivcheck.language.printing.tree_code import declared_name, python_name
from derivcheck.report.results import ExpressionDerivation, Form, Verification, verdict_ok
from derivcheck.language.rewrite import fuse, simplify

_SEEDS = (11, 23)
# Two evaluations of the same tree (interpreter and printed source) agree to rounding.
_SAME_TREE = 1e-10
_EXACT_SIZE = 2
_MAX_REDRAWS = 8
# Above this many entries the check at the typed sizes probes directions (the checker's auto mode), not every entry.
_FULL_CHECK_ENTRIES = 200


# Letters for sizes typed as numbers, in the order textbooks use them.
_SIZE_LETTERS = ("N", "D", "M", "K", "P", "Q", "R", "S", "U", "V")


def symbolic_sizes(variables: dict[str, Variable]) -> tuple[dict[str, Variable], dict[str, int]]:
    """Each size typed as a number (other than 1) replaced by a letter, equal numbers by one letter (6 x 6 stays
    square); and the numbers, by letter."""
    numbers = sorted({d for v in variables.values() for d in v.shape if isinstance(d, int) and d != 1})
    if not numbers:
        return variables, {}
    taken = {d for v in variables.values() for d in v.shape if isinstance(d, str)} | set(variables)
    free = [c for c in _SIZE_LETTERS if c not in taken]
    letter = {num: free[i] for i, num in enumerate(sorted(numbers, reverse=True))}
    out = {name: Variable(v.name, tuple(letter.get(d, d) if isinstance(d, int) else d for d in v.shape), v.properties)
           for name, v in variables.items()}
    return out, {c: num for num, c in letter.items()}


class Problem:
    """A parsed expression with its declarations and the variable it is differentiated by."""

    def __init__(self, expr: str, wrt: str, shapes: Mapping[str, str] | None, lets: list[str] | None) -> None:
        self.text = expr
        self.variables = declarations(shapes, lets)
        if not isinstance(wrt, str) or wrt not in self.variables:
            raise ExpressionError(f"wrt={wrt!r} is not a declared variable (declared: "
                                  f"{', '.join(sorted(self.variables)) or 'nothing'})")
        self.wrt = wrt
        # Sizes typed as numbers (X: 1000 x 10) are derived as symbols and evaluated at the numbers afterwards:
        # expanding a 1000 x 10 matrix entry by entry is what a symbolic derivation must never do.
        self.variables, self.fixed = symbolic_sizes(self.variables)
        self.var = n.var(self.variables[wrt])
        self.forward = parse_expression(expr, self.variables)
        if self.forward.shape:
            raise ExpressionError(f"the expression has shape {n.show_shape(self.forward.shape)}; a gradient needs a "
                                  "scalar (wrap it in sum(...), trace(...) or norm2(...))")
        if not self.forward.depends_on(wrt):
            raise ExpressionError(f"the expression does not depend on {wrt}; its gradient is 0")
        self.used = {k: v for k, v in self.variables.items() if self.forward.depends_on(k)}

    def gradient_of(self, f: Node) -> Node:
        g = simplify(gradient(fuse(f), self.var), self.variables, free=self.wrt)
        return n.broadcast_to(g, self.var.shape) if g.shape != self.var.shape else g

    def draw(self, seed: int, small: bool = False) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        """Sizes and values at which the expression is finite."""
        rng = np.random.default_rng([0xE7, seed])
        for _ in range(_MAX_REDRAWS):
            sizes = draw_sizes(self.variables, rng, small)
            values = draw_values(self.variables, sizes, rng)
            with np.errstate(all="ignore"):
                value = evaluate(self.forward, values, sizes)
            if np.all(np.isfinite(value)):
                return sizes, values
        raise ExpressionError(f"{self.text!r} is not finite at random values of its variables; declare the "
                              "domain (e.g. 'positive' for an argument of log, 'spd' for logdet)")


def generated_source(g: Node, name: str, variables: Mapping[str, Variable]) -> str:
    """A NumPy function returning ``g``: the sizes it needs are read from its arguments' shapes."""
    cp = CodePrinter()
    body = cp(g)
    args = sorted(v for v in variables if g.depends_on(v))
    lines = []
    for d in sorted(cp.dims):
        for a in args:
            shape = variables[a].shape
            if d in shape:
                lines.append(f"    {d} = {python_name(a)}.shape[{shape.index(d)}]")
                break
        else:
            for v in variables.values():
                if d in v.shape:
                    args.append(v.name)
                    lines.append(f"    {d} = {python_name(v.name)}.shape[{v.shape.index(d)}]")
                    break
    helpers = "".join(HELPERS[h] + "\n\n\n" for h in sorted(cp.helpers))
    return (f"import numpy as np\n\n\n{helpers}def {name}({', '.join(map(python_name, args))}):\n" + "".join(l + "\n" for l in lines)
            + f"    return {body}\n")


def _run_source(source: str, name: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<derivcheck generated {name}>", "exec"), namespace)  # noqa: S102 - our own printed code
    return namespace[name]


def _rel(a: Any, b: Any) -> float:
    return relative_gap(a, b, PURELY_RELATIVE)


def _check_gradient(p: Problem, code: Any, g: Node, seed: int, sizes: Mapping[str, int] | None = None
                    ) -> tuple[Verification, Verification]:
    from derivcheck.checker.gradient import check_gradient

    if sizes is None:
        sizes, values = p.draw(seed)
    else:  # the sizes the user typed: a few directions, never every entry of a large array
        sizes, values = dict(sizes), draw_values(p.variables, sizes, np.random.default_rng([0xE7, seed]))
    args = [declared_name(a) for a in code.__code__.co_varnames[: code.__code__.co_argcount]]

    def loss(w: np.ndarray) -> float:
        return float(evaluate(p.forward, {**values, p.wrt: w}, sizes))

    def grad(w: np.ndarray) -> np.ndarray:
        env = {**values, p.wrt: w}
        return np.asarray(code(*[env[a] for a in args]), dtype=float)

    w0 = np.asarray(values[p.wrt], dtype=float)
    mode = "full" if w0.size <= _FULL_CHECK_ENTRIES else "auto"
    report = check_gradient(loss, grad, w0, mode=mode, seed=seed, title=f"d/d{p.wrt} of {p.text}")
    row = report.params[0]
    ok = verdict_ok(report.verdict)
    fd = Verification("generated code", "finite differences of the expression as typed", sizes,
                      float(row.max_rel_error), ok, row.reason or report.verdict)
    same = _rel(grad(w0), evaluate(g, {**values}, sizes))
    tree = Verification("generated code", "the matrix form evaluated directly", sizes, same, same <= _SAME_TREE)
    return fd, tree


def _check_index(p: Problem, g: Node, printed: str) -> Verification:
    """The index form as printed, read back by check-eq's reader, against the verified matrix form entry by entry:
    what is checked is the text shown, not only the SymPy expression it was printed from."""
    sizes, values = p.draw(_SEEDS[0] + 1000, small=True)
    expected = evaluate(g, values, sizes)
    against = "the verified matrix form, entry by entry (the printed text read back)"
    try:
        got = parse_index_claim(printed, p.variables, p.wrt).values(values, sizes)
    except ExpressionError as exc:
        return Verification("index form", against, sizes, float("nan"), False, f"does not read back: {exc}")
    err = _rel(got, expected)
    return Verification("index form", against, sizes, err, err <= 1e-9)


def symbolic_values(p: Problem, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Every entry a real symbol (symmetric matrices share ``A_ij = A_ji``)."""
    out: dict[str, np.ndarray] = {}
    for name, v in p.variables.items():
        shape = tuple(d if isinstance(d, int) else sizes[d] for d in v.shape)
        arr = np.empty(shape, dtype=object)
        for pos in np.ndindex(*shape):
            key = tuple(sorted(pos)) if v.symmetric and name != p.wrt else pos
            suffix = "".join(f"_{i}" for i in key)
            arr[pos] = sp.Symbol(f"{name}{suffix}", real=True, positive="positive" in v.properties or None)
        if not shape:
            arr = sp.Symbol(name, real=True)
        out[name] = arr
    return out


def claim_value(claimed: Node | IndexClaim, values: Mapping[str, Any], sizes: Mapping[str, int],
                exact: bool = False) -> Any:
    """The value of a claimed gradient, a matrix-language tree or an index form: in floating point, or exactly."""
    if isinstance(claimed, IndexClaim):
        return claimed.exact(values, sizes) if exact else claimed.values(values, sizes)
    return evaluate(claimed, values, sizes, SYMPY) if exact else evaluate(claimed, values, sizes)


def exact_difference(p: Problem, claimed: Node | IndexClaim, sizes: Mapping[str, int], prove: bool = False
                     ) -> tuple[bool | None, float]:
    """Is ``claimed`` SymPy's own derivative of the expanded scalar? (True/False, or None where undecided)."""
    values = symbolic_values(p, sizes)
    for name, v in p.variables.items():
        if "simplex" in v.properties and name != p.wrt:
            # Rows constrained to sum to one are not free symbols: use exact one-hot rows.
            rows = np.asarray(draw(v, sizes, np.random.default_rng(1)))
            values[name] = np.vectorize(sp.Integer, otypes=[object])(rows.astype(int))
    f = evaluate(p.forward, values, sizes, SYMPY)
    got = claim_value(claimed, values, sizes, exact=True)
    wrt = values[p.wrt]
    rng = np.random.default_rng(5)
    symbols = sorted(_symbols(values), key=lambda s: s.name)  # sorted: the same points in every process
    # Wide random rationals: a point exactly on a kink (a ReLU argument of 0) is all but impossible.
    points = [{s: sp.Rational(int(rng.integers(1 if s.is_positive else -999, 1000)), 997) for s in symbols}
              for _ in range(2)]
    if isinstance(wrt, sp.Symbol):
        wrt, got = np.array([wrt], dtype=object), np.array([got], dtype=object).reshape(-1)
    undecided = False
    worst = 0.0
    for pos in np.ndindex(*np.shape(wrt)):
        # SymPy's derivative of Max(x, 0) is Heaviside(x) = 1/2 at 0; the project's convention is ReLU'(0) = 0.
        truth = sp.diff(f, wrt[pos]).replace(sp.Heaviside, lambda x, *_: sp.Heaviside(x, 0))
        d = truth - np.asarray(got, dtype=object)[pos]
        if sp.expand(d) == 0:
            continue
        # A rational point where the two differ proves them different, and is cheap; simplify (slow on a
        # nonzero expression) is tried only on a difference that vanishes at every point.
        numeric = [abs(complex(d.xreplace(pt).evalf(30))) for pt in points]
        worst = max(worst, *numeric)
        if max(numeric) > 1e-20:
            return False, worst
        if prove and sp.simplify(d) == 0:
            continue
        undecided = True
    return (None if undecided else True), worst


def exact_sizes(p: Problem) -> dict[str, int]:
    """Every dimension 2, in a fixed order."""
    return {d: _EXACT_SIZE for d in sorted({d for v in p.variables.values() for d in v.shape if isinstance(d, str)})}


def _symbols(values: Mapping[str, Any]) -> set[sp.Symbol]:
    out: set[sp.Symbol] = set()
    for v in values.values():
        out |= {s for s in np.asarray(v, dtype=object).reshape(-1).tolist() if isinstance(s, sp.Symbol)}
    return out


def _check_exact(p: Problem, g: Node) -> Verification:
    sizes = exact_sizes(p)
    ok, worst = exact_difference(p, g, sizes)
    detail = {True: "the difference expands to 0", False: f"they differ by {worst:.1e} at a rational point",
              None: f"equal to 30 digits at two random rational points (|difference| <= {worst:.0e})"}[ok]
    return Verification("matrix form", "SymPy's derivative of the expression expanded at explicit sizes",
                        sizes, float("nan"), ok if ok is not None else True, detail)


def derive_expression(expr: str, wrt: str, shapes: Mapping[str, str] | None = None, *, order: int = 1,
                      lets: list[str] | None = None, exact: bool = True) -> ExpressionDerivation:
    """Differentiate a typed matrix expression by ``wrt``: index form, matrix form, NumPy code, all verified.

    ``shapes`` maps each name to its declaration (``"N x D"``, ``"D x D symmetric"``, ``"D"``,
    ``"scalar"``); ``order=2`` adds the Hessian-vector product, and the Hessian itself for a
    vector ``wrt``.

    Examples
    --------
    >>> d = derive_expression("sum((X @ W - Y)**2)", "W", {"X": "N x D", "W": "D x M", "Y": "N x M"})
    >>> d.matrix_form, d.ok
    ('2 Xᵀ (X W - Y)', True)
    """
    if order not in (1, 2):
        raise ExpressionError(f"order must be 1 or 2; got {order!r}")
    start = time.perf_counter()
    p = Problem(expr, wrt, shapes, lets)
    with notation.names_apart(spelled=notation.printed_alike(p.variables)):  # lam beside lambda: lam, λ
        return _derive_problem(p, order, exact, start)


def _derive_problem(p: Problem, order: int, exact: bool, start: float) -> ExpressionDerivation:
    """The derivation of a parsed problem, printed with the names kept apart by the caller."""
    expr, wrt = p.text, p.wrt
    g = p.gradient_of(p.forward)
    source = generated_source(g, f"grad_{wrt}", p.variables)
    code = _run_source(source, f"grad_{wrt}")
    checks: list[Verification] = []
    for seed in _SEEDS:
        checks.extend(_check_gradient(p, code, g, seed))
    if p.fixed:
        checks.extend(_check_gradient(p, code, g, _SEEDS[0], p.fixed))
    idx = index_form_of(p, g)
    index_text = (lhs_text(wrt, idx.free, p.variables, notation.current()),
                  IndexText(idx.atoms, p.variables, free=idx.free).doprint(idx.expr))
    checks.append(_check_index(p, g, " = ".join(index_text)))
    if exact:
        checks.append(_check_exact(p, g))
    gradient_ok = all(c.ok for c in checks)
    hvp = hessian = None
    notes: list[str] = []
    if order == 2:
        from derivcheck.language.second_order import derive_second_order

        hvp, hessian, more, note = derive_second_order(p, g, code)
        checks.extend(more)
        notes.extend(note)
    defect = "" if gradient_ok else "DEFECT, not shown: " + "; ".join(
        f"{c.what} vs {c.against}: {c.detail or 'disagrees'}" for c in checks if not c.ok)
    return ExpressionDerivation(
        expression=expr, wrt=wrt, declarations=tuple(v.declaration() for v in p.variables.values())
        + tuple(f"{c} = {num}" for c, num in p.fixed.items()), order=order,
        forward=Form(text(p.forward), latex(p.forward)),
        index_lhs=Form(index_text[0], lhs_latex(wrt, idx.free)),
        index_form=Form(index_text[1], IndexLatex(idx.atoms, idx.free).doprint(idx.expr)) if gradient_ok else Form(None, None, defect),
        gradient=Form(text(g), latex(g)) if gradient_ok else Form(None, None, defect),
        matrix_lhs=Form(notation.derivative_text("f", MathPrinter().name(wrt)),
                        rf"\frac{{\partial f}}{{\partial {MathPrinter(latex=True).name(wrt)}}}"),
        code=source if gradient_ok else None, hvp=hvp, hessian=hessian, checks=tuple(checks),
        seconds=time.perf_counter() - start, notes=tuple(notes),
    )



def index_form_of(p: Problem, g: Node) -> IndexForm:
    """The index form of a gradient, its letters clear of every declared name and dimension."""
    dims = {d for v in p.variables.values() for d in v.shape if isinstance(d, str)}
    return IndexForm(g, names=set(p.variables) | dims)

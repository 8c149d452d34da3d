"""A matrix form through the matrix language, where SymPy's index -> matrix conversion finds none.

An index form is read as a tree of the matrix language (``language.nodes``): each entry is
a whole matrix or vector labelled by its indices (``x_np`` is X with axes (n, p)),
elementwise algebra aligns labels (a vector ``a_p`` against ``x_np`` broadcasts along the
rows), a sum over an index that one operand carries is an axis sum (``Σ_n x_np g_np`` is
``1ᵀ (X ⊙ G)``), and a sum over an index two operands share is a product
(``Σ_n x_np h_nq`` is ``Xᵀ H``). Iverson brackets of signs are steps (``[x < 0]`` is
``1[X < 0]``), ``[k = t_n]`` of integer targets is their one-hot matrix. The tree is then
simplified by the language's rewrites, and it is shown only after it agreed with the index
form at random sizes in the same run (``verify.language_form_check``).

Where no tree exists, ``LanguageFormError`` says exactly why: an index that is shifted, a
Kronecker delta between two indices, three indices in one operand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from derivcheck.language import nodes as n
from derivcheck.language.evaluate import evaluate
from derivcheck.language.nodes import Node, Variable
from derivcheck.language.printing import HELPERS, CodePrinter, latex, text
from derivcheck.language.rewrite import fuse, simplify
from derivcheck.language.printing.sympy_forms import TextPrinter
from derivcheck.symbolic.index_form import contradictory
from derivcheck.symbolic.named_functions import named_functions
from derivcheck.symbolic.statistics import Definition

Labels = tuple[sp.Symbol, ...]


class LanguageFormError(ValueError):
    """The index form has no tree of whole matrices; the message says exactly why."""


@dataclass(frozen=True)
class LanguageForm:
    """A gradient as a matrix-language tree over the layer's arrays (and one-hot matrices of integer inputs)."""

    node: Node
    variables: dict[str, Variable]
    onehots: dict[str, tuple[str, str]]  # variable name -> (integer input, size of its classes)
    upstream: str = "G"  # the name the upstream gradient has in the tree
    named: tuple[tuple[str, Node], ...] = ()  # statistics the tree is written in (μ, σ, X̂), by their definitions
    index: Any = None  # the index form in the statistics' names (SymPy), where there are any
    letters: tuple[str, ...] = ()  # the gradient's dimensions

    def where(self) -> list[str]:
        """A line defining every derived name the form uses."""
        return [*[f"onehot({arg})_nk = [k = {arg}_n]: the one-hot matrix of {arg}" for arg, _ in self.onehots.values()],
                *[f"{text(n.var(self.variables[name]))} = {text(node)}" for name, node in self.named]]

    def text(self) -> str:
        """The tree in text, a one-hot matrix written onehot(t)."""
        out = text(self.node)
        for name, (arg, _) in self.onehots.items():
            out = out.replace(name, f"onehot({arg})")
        return out

    def source(self, built: Any, arg_name: str) -> str:
        """A NumPy function ``grad_<arg>`` with the layer's backward signature computing the form (helpers it calls
        first; ``import numpy as np`` goes above)."""
        names = {_name(sym): name for name, sym in built.symbols.items()}
        names.update({_name(sym): name for name, sym in built.constants.items()})
        names.update({self.upstream: "dy", **{k: _code_name(k) for k, _ in self.named}})
        printer = CodePrinter()
        lines = [f"    {name} = np.eye({_size_code(built, classes)})[{arg}]"
                 for name, (arg, classes) in self.onehots.items()]
        lines += [f"    {_code_name(k)} = {printer(renamed(node, names))}" for k, node in self.named]
        body = printer(renamed(self.node, names))
        sizes = [f"    {d} = {_size_code(built, d)}" for d in sorted(printer.dims)]
        params = [*([] if built.upstream is None else ["dy"]), *[a.name for a in built.layer.inputs],
                  *built.constants, *built.layer.hyper]
        head = "".join(HELPERS[h] + "\n\n\n" for h in sorted(printer.helpers))
        return (f"{head}def grad_{arg_name}({', '.join(params)}):\n"
                f'    """dE/d{arg_name} of layer {built.layer.name!r}."""\n'
                + "".join(line + "\n" for line in [*sizes, *lines]) + f"    return {body}\n")

    def where_latex(self) -> list[str]:
        """The definitions of the statistics the form is written in, in LaTeX."""
        return [f"{latex(n.var(self.variables[name]))} = {latex(node)}" for name, node in self.named]

    def environment(self, built: Any, arrays: Mapping[str, np.ndarray], upstream: Any,
                    sizes: Mapping[str, int]) -> dict[str, Any]:
        """The value of every name the form uses: the layer's arrays, G, one-hot matrices, the named statistics."""
        env: dict[str, Any] = {}
        for name, sym in built.symbols.items():
            env[_name(sym)] = np.asarray(arrays[name], dtype=float) if name not in _integer_inputs(built) else arrays[name]
        for name, sym in built.constants.items():
            env[_name(sym)] = float(built.layer.constants[name])
        if built.upstream is not None:
            env[self.upstream] = np.asarray(upstream, dtype=float)
        for name, (arg, classes) in self.onehots.items():
            ids = np.asarray(arrays[arg]).astype(int).reshape(-1)
            env[name] = np.eye(int(sizes[classes]))[ids]
        for name, definition in self.named:  # each from the inputs and the names before it
            env[name] = np.asarray(evaluate(definition, env, sizes), dtype=float)
        return env

    def values(self, built: Any, arrays: Mapping[str, np.ndarray], upstream: Any, sizes: Mapping[str, int]) -> Any:
        """The form's value at the layer's arrays (scaled by a loss layer's scalar upstream, as the index form is)."""
        env = self.environment(built, arrays, upstream, sizes)
        out = np.asarray(evaluate(self.node, env, sizes), dtype=float)
        return out * (float(np.asarray(upstream)) if built.upstream is None else 1.0)

    def index_values(self, built: Any, free: Labels, arrays: Mapping[str, np.ndarray], upstream: Any,
                     sizes: Mapping[str, int]) -> Any:
        """The index form in the statistics' names (``index``), entry by entry, with the names from their definitions."""
        env = self.environment(built, arrays, upstream, sizes)
        matrices = sorted(self.index.atoms(sp.MatrixSymbol), key=str)
        scalars = [*built.sizes.values(), *built.constants.values()]
        fn = sp.lambdify([*matrices, *scalars, *free], self.index, modules="math")
        by_symbol = {sym: env[self.upstream if sym == built.upstream else _name(sym)] for sym in matrices}
        args = [np.asarray(v).reshape(-1, 1) if m.shape[1] == 1 else np.asarray(v) for m, v in by_symbol.items()]
        args += [int(sizes[c]) for c in built.sizes] + [float(built.layer.constants[k]) for k in built.constants]
        out = np.empty(tuple(int(sizes[c]) for c in self.letters))
        for idx in np.ndindex(*out.shape):
            out[idx] = fn(*args, *idx)
        return out * (float(np.asarray(upstream)) if built.upstream is None else 1.0)


def _code_name(name: str) -> str:
    """A Python name for a named statistic: X̂ is xhat."""
    return {"X̂": "xhat"}.get(name, name)


def _size_code(built: Any, letter: str) -> str:
    """A size read off an array that carries it (``x.shape[0]``): generated code takes no size arguments."""
    carriers = [(a.name, a.letters) for a in built.layer.inputs]
    if built.upstream is not None:
        carriers.append(("dy", built.layer.output_letters))
    for name, letters in carriers:
        if letter in letters:
            return f"{name}.shape[{letters.index(letter)}]"
    raise LanguageFormError(f"no array carries the size {letter}")


def renamed(x: Node, names: Mapping[str, str]) -> Node:
    """``x`` with its variables renamed (the layer's matrix X is the argument x in code)."""
    if x.op == "var":
        return Node("var", (), (names.get(x.attrs[0], x.attrs[0]),), x.shape)
    return Node(x.op, tuple(renamed(a, names) for a in x.args), x.attrs, x.shape)


def _show(e: Any) -> str:
    """An entry, delta or condition in the text notation of the index form it comes from."""
    return TextPrinter().doprint(e)


def _name(sym: Any) -> str:
    return str(getattr(sym, "name", getattr(sym, "label", sym)))


def _integer_inputs(built: Any) -> set[str]:
    return {a.name for a in built.layer.inputs if a.domain == "index"}


class _Reader:
    """Reads one index form into a labelled tree."""

    def __init__(self, built: Any, free: Labels) -> None:
        self.built = built
        self.free = free
        self.letter = {sym: letter for letter, sym in built.sizes.items()}
        self.variables: dict[str, Variable] = {}
        self.onehots: dict[str, tuple[str, str]] = {}
        self.by_symbol: dict[Any, str] = {sym: name for name, sym in built.symbols.items()}
        if built.upstream is not None:
            self.by_symbol[built.upstream] = "upstream"
        # The upstream gradient prints as G, or Ḡ where an argument or a size takes the letter (as in the index form).
        taken = {_name(sym).upper() for sym in built.symbols.values()} | {c.upper() for c in built.sizes}
        vector = built.upstream is not None and built.upstream.shape[1] == 1
        self.upstream_name = ("g" if vector else "G") if "G" not in taken else ("ḡ" if vector else "Ḡ")
        self.index_size: dict[sp.Symbol, str] = {}
        for name, sym in built.symbols.items():
            arg = next(a for a in built.layer.inputs if a.name == name)
            if arg.domain == "index" and len(arg.letters) == 1:
                self.by_symbol[sym] = "index"

    # --- leaves ---
    def variable(self, sym: Any) -> Node:
        name = self.upstream_name if sym == self.built.upstream else _name(sym)
        if name not in self.variables:
            rows, cols = sym.shape
            shape = (self.dim(rows),) if cols == 1 else (self.dim(rows), self.dim(cols))
            self.variables[name] = Variable(name, shape)
        return n.var(self.variables[name])

    def dim(self, size: Any) -> str:
        if size not in self.letter:
            raise LanguageFormError(f"the size {size} is not one of the layer's dimensions")
        return self.letter[size]

    def entry(self, e: MatrixElement) -> tuple[Node, Labels]:
        if e.parent not in self.by_symbol or self.by_symbol[e.parent] == "index":
            raise LanguageFormError(f"the entry {_show(e)} is not an entry of a real-valued input")
        vector = e.parent.shape[1] == 1
        labels = (e.i,) if vector else (e.i, e.j)
        for i in labels:
            if not isinstance(i, sp.Symbol):
                raise LanguageFormError(f"the entry {_show(e)} is taken at a shifted index ({_show(i)}): no whole-matrix operation reads it")
        if len(set(labels)) < len(labels):
            raise LanguageFormError(f"the entry {_show(e)} is on the diagonal: a matrix form would need diag()")
        sizes = (e.parent.shape[0],) if vector else e.parent.shape
        for i, size in zip(labels, sizes):
            self.index_size.setdefault(i, self.dim(size))
        return self.variable(e.parent), labels

    def onehot(self, delta: sp.KroneckerDelta) -> tuple[Node, Labels]:
        """``[k = t_n]`` with t an integer input: the one-hot matrix of t, axes (n, k)."""
        for target, k in (delta.args[:2], delta.args[1::-1]):
            if isinstance(target, MatrixElement) and self.by_symbol.get(target.parent) == "index" \
                    and isinstance(k, sp.Symbol) and isinstance(target.i, sp.Symbol) and k in self.index_size:
                arg = self.by_symbol_name(target.parent)
                classes = self.index_size[k]
                name = f"onehot_{arg}"
                self.onehots[name] = (arg, classes)
                rows = self.dim(target.parent.shape[0])
                self.index_size.setdefault(target.i, rows)
                self.variables[name] = Variable(name, (rows, classes))
                return n.var(self.variables[name]), (target.i, k)
        raise LanguageFormError(f"a Kronecker delta {_show(delta)} between indices is left uncontracted: "
                                "it selects entries no whole-matrix operation selects")

    def by_symbol_name(self, sym: Any) -> str:
        return next(name for name, s in self.built.symbols.items() if s == sym)


def _align(node: Node, labels: Labels, target: Labels) -> Node:
    """``node`` (axes ``labels``) laid out on the axes ``target`` (a superset), broadcasting where it lacks one."""
    if labels == target or not labels:
        return node
    if len(labels) == 2:
        if labels[::-1] == target:
            return n.transpose(node)
        raise LanguageFormError(f"axes {labels} cannot be laid out as {target}")
    (i,) = labels
    if len(target) == 1:
        raise LanguageFormError(f"axis {i} is not among {target}")
    return node if target[1] == i else n.expand(node, 1)  # a row vector broadcasts down, a column across


def _negated_rows(x: Node) -> Node:
    """``X + (-μ)`` with μ a row vector written ``X - 1 μᵀ``: the negation outside the broadcast, where it reads."""
    args = tuple(_negated_rows(a) for a in x.args)
    x = Node(x.op, args, x.attrs, x.shape)
    if x.op != "add" or x.ndim != 2:
        return x
    terms = []
    for t in x.args:
        coeff = [f for f in t.args if n.is_const(f) and f.attrs[0] < 0] if t.op == "mul" else []
        rest = [f for f in t.args if f not in coeff] if coeff else []
        if t.ndim == 1 and len(coeff) == 1 and rest:
            row = rest[0] if len(rest) == 1 else n.mul(*rest)
            t = n.mul(coeff[0], n.broadcast_to(row, x.shape))
        terms.append(t)
    return n.add(*terms)


def _order(labels: list[Labels], prefer: Labels) -> Labels:
    """The union of some operands' axes: a matrix's own order (x_np is (n, p)) before a vector's, the gradient's
    order where matrices disagree, so that the fewest transposes are written."""
    matrices = [ls for ls in labels if len(ls) == 2]
    if prefer in matrices or not matrices:
        first: Labels = prefer if prefer in matrices else ()
    else:
        first = matrices[0]
    seen: list[sp.Symbol] = list(first)
    for ls in sorted(labels, key=lambda ls: -len(ls)):
        for i in ls:
            if i not in seen:
                seen.append(i)
    if len(seen) > 2:
        names = ", ".join(map(str, seen))
        raise _ThreeAxes(f"one product carries three indices ({names}) that no sum pairs off into a matrix product")
    if len(seen) == 2 and not matrices and tuple(seen[::-1]) == prefer:
        seen = seen[::-1]
    return tuple(seen)


class _ThreeAxes(LanguageFormError):
    pass


def _transposes_needed(factors: list[tuple[Any, Node, Labels]], k: sp.Symbol, i: sp.Symbol, j: sp.Symbol) -> int:
    """How many operands a product Σ_k a_ik b_kj would transpose with the result's axes in the order (i, j)."""
    return sum(1 for _, _, ls in factors if ls in ((k, i), (j, k)))


class _Translate:
    """SymPy index expression -> (node, axes)."""

    _FUNCS = {sp.exp: "exp", sp.log: "log", sp.tanh: "tanh", sp.Abs: "abs", sp.sign: "sign"}

    def __init__(self, reader: _Reader, prefer: Labels) -> None:
        self.r = reader
        self.prefer = prefer

    def condition(self, cond: Any) -> tuple[Node, Labels]:
        """An Iverson bracket as steps: [u > 0] = 1[u > 0], [u < 0] = 1[-u > 0], conjunctions as products."""
        if cond == sp.true:
            return n.const(1), ()
        if isinstance(cond, (sp.And, sp.Or)):  # (x < 0 and x > 0) or x < 0 is x < 0
            cond = sp.simplify_logic(cond, force=True)
            if contradictory(cond):
                return n.const(0), ()
        if isinstance(cond, sp.And):
            return self.combine([self.condition(c) for c in cond.args], n.mul)
        if isinstance(cond, sp.Not):
            node, labels = self.condition(cond.args[0])
            return n.sub(n.const(1), node), labels
        if isinstance(cond, sp.Or):
            a = self.condition(cond.args[0])
            b = self.condition(sp.Or(*cond.args[1:]))
            both = self.combine([a, b], n.mul)
            return self.combine([a, b, (n.neg(both[0]), both[1])], n.add)
        if isinstance(cond, (sp.StrictGreaterThan, sp.StrictLessThan, sp.GreaterThan, sp.LessThan)):
            above = isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan))
            node, labels = self(cond.lhs - cond.rhs if above else cond.rhs - cond.lhs)
            if isinstance(cond, (sp.GreaterThan, sp.LessThan)):  # u >= 0 is 1 - [-u > 0]
                return n.sub(n.const(1), n.func("step", n.neg(node))), labels
            return n.func("step", node), labels
        raise LanguageFormError(f"the condition {_show(cond)} is no sign test of an expression")

    def combine(self, parts: list[tuple[Node, Labels]], how: Any) -> tuple[Node, Labels]:
        if len(parts) == 1:
            return parts[0]
        target = _order([ls for _, ls in parts], self.prefer)
        columns = [node for node, ls in parts if len(target) == 2 and ls == target[:1]]
        if how is n.mul and len(columns) > 1:  # one column broadcast across, (a ⊙ b) 1ᵀ, not a 1ᵀ ⊙ b 1ᵀ
            parts = [(n.mul(*columns), target[:1]), *[(node, ls) for node, ls in parts if ls != target[:1]]]
        return how(*[_align(node, ls, target) for node, ls in parts]), target

    def __call__(self, e: Any) -> tuple[Node, Labels]:  # noqa: C901 - one branch per kind of SymPy node
        if isinstance(e, MatrixElement):
            return self.r.entry(e)
        if isinstance(e, sp.Indexed):
            raise LanguageFormError(f"the entry {_show(e)} belongs to a tensor of rank {len(e.indices)}: no matrix holds it")
        if e.is_Number:
            return n.const(e), ()
        if isinstance(e, sp.Symbol):
            return self.symbol(e), ()
        if isinstance(e, sp.Add):
            return self.elementwise(e.args, n.add)
        if isinstance(e, sp.Mul):
            return self.elementwise(e.args, n.mul)
        if isinstance(e, sp.Pow):
            base, labels = self(e.base)
            if not e.exp.is_Number:
                raise LanguageFormError(f"the power {e} has a symbolic exponent")
            return (n.func("sqrt", base) if e.exp == sp.Rational(1, 2) else n.power(base, e.exp)), labels
        if isinstance(e, sp.Sum):
            return self.total(e)
        if isinstance(e, sp.KroneckerDelta):
            return self.r.onehot(e)
        if isinstance(e, sp.Piecewise):
            return self.piecewise(e)
        if isinstance(e, sp.Heaviside):
            node, labels = self(e.args[0])
            return n.func("step", node), labels
        if isinstance(e, (sp.Max, sp.Min)) and len(e.args) == 2 and 0 in e.args:
            u = e.args[1] if e.args[0] == 0 else e.args[0]
            node, labels = self(u)
            return (n.func("relu", node) if isinstance(e, sp.Max) else n.neg(n.func("relu", n.neg(node)))), labels
        if e.func in self._FUNCS:
            node, labels = self(e.args[0])
            return n.func(self._FUNCS[e.func], node), labels
        raise LanguageFormError(f"{type(e).__name__} has no whole-matrix counterpart in the matrix language")

    def symbol(self, e: sp.Symbol) -> Node:
        if e in self.r.letter:
            return n.dim(self.r.letter[e])
        constants = {sym: name for name, sym in self.r.built.constants.items()}
        if e in constants:
            name = _name(e)
            self.r.variables[name] = Variable(name, ())
            return n.var(self.r.variables[name])
        raise LanguageFormError(f"the index {e} stands outside any entry")

    def elementwise(self, args: tuple[Any, ...], how: Any) -> tuple[Node, Labels]:
        return self.combine([self(a) for a in args], how)

    def piecewise(self, e: sp.Piecewise) -> tuple[Node, Labels]:
        terms, taken = [], []
        for value, cond in e.args:
            if contradictory(cond) or value == 0:
                taken.append(cond)
                continue
            # An earlier branch's condition excludes this one's only where they can both hold (x < 0 rules out x > 0).
            full = sp.And(cond, *[sp.Not(c) for c in taken if not contradictory(sp.And(cond, c))])
            taken.append(cond)
            terms.append((value, full))
        if not terms:
            return n.const(0), ()
        return self.combine([self.combine([self(value), self.condition(cond)], n.mul) for value, cond in terms], n.add)

    def total(self, e: sp.Sum) -> tuple[Node, Labels]:
        return self.sum_over(e.function, list(e.limits))

    def sum_over(self, f: Any, limits: list[tuple[Any, ...]]) -> tuple[Node, Labels]:
        """Σ over the last limit of the sum over the others (SymPy flattens nested sums into one)."""
        k, lo, hi = limits[-1]
        if lo != 0 or (hi + 1) not in self.r.letter:
            raise LanguageFormError(f"the sum over {k} runs from {lo} to {hi}, not over a whole axis")
        self.r.index_size[k] = self.r.letter[hi + 1]
        if len(limits) > 1:
            return self.nested(f, limits)
        try:
            node, labels = self(f)
        except _ThreeAxes:
            return self.contraction(f, k)
        if k not in labels:
            return n.mul(node, n.dim(self.r.letter[hi + 1])), labels
        return n.total(node, labels.index(k)), tuple(i for i in labels if i != k)

    def nested(self, f: Any, limits: list[tuple[Any, ...]]) -> tuple[Node, Labels]:
        """A sum over several indices, one at a time, innermost first in the first order that pairs them off."""
        why: LanguageFormError | None = None
        for last in reversed(range(len(limits))):
            inner = [lim for i, lim in enumerate(limits) if i != last]
            k, _, hi = limits[last]
            try:
                node, labels = self.sum_over(f, inner)
            except LanguageFormError as exc:
                why = why or exc
                continue
            self.r.index_size[k] = self.r.letter[hi + 1]
            if k not in labels:
                return n.mul(node, n.dim(self.r.letter[hi + 1])), labels
            return n.total(node, labels.index(k)), tuple(i for i in labels if i != k)
        raise why  # type: ignore[misc] - at least one order was tried

    def contraction(self, f: Any, k: sp.Symbol) -> tuple[Node, Labels]:
        """Σ_k of a product with three indices: the factors with (i, k) times those with (k, j), a matrix product."""
        if isinstance(f, sp.Add):
            parts = [self.sum_over(t, [(k, 0, self._upper(k))]) for t in f.args]
            target = _order([ls for _, ls in parts], self.prefer)
            return n.add(*[_align(node, ls, target) for node, ls in parts]), target
        if not isinstance(f, sp.Mul):
            f = sp.expand(f)
            if isinstance(f, sp.Add):
                return self.contraction(f, k)
            raise LanguageFormError(f"the sum over {k} has three indices in one operand")
        try:
            factors = [(a, *self(a)) for a in f.args]
        except _ThreeAxes:  # a factor that is a sum of such products: distribute, Σ_k (a + b) c = Σ_k a c + Σ_k b c
            spread = sp.expand(f, power_exp=False, log=False, power_base=False, multinomial=False)
            if not isinstance(spread, sp.Add):
                raise
            return self.contraction(spread, k)
        outside = [(node, ls) for _, node, ls in factors if k not in ls]  # Σ_k a_k b_k c = (Σ_k a_k b_k) c
        if outside and len(outside) < len(factors):
            inside = sp.Mul(*[a for a, _, ls in factors if k in ls])
            return self.combine([self.contraction(inside, k), *outside], n.mul)
        others = _order([tuple(i for i in ls if i != k) for _, _, ls in factors], self.prefer)
        if len(others) < 2:  # the product has two axes after all: a plain axis sum
            node, labels = self.combine([(node, ls) for _, node, ls in factors], n.mul)
            return n.total(node, labels.index(k)), tuple(i for i in labels if i != k)
        i, j = min((others, others[::-1]), key=lambda ij: _transposes_needed(factors, k, *ij))
        left = [(node, ls) for _, node, ls in factors if j not in ls]
        right = [(node, ls) for _, node, ls in factors if j in ls]
        if any(i in ls for _, ls in right):
            raise LanguageFormError(f"one operand of the sum over {k} carries {i}, {j} and {k}")
        a, la = self._product(left, (i, k))
        b, lb = self._product(right, (k, j))
        return self._matmul(a, la, b, lb, k)

    def _upper(self, k: sp.Symbol) -> Any:
        return self.r.built.sizes[self.r.index_size[k]] - 1

    def _product(self, parts: list[tuple[Node, Labels]], axes: Labels) -> tuple[Node, Labels]:
        if not parts:
            return n.const(1), ()
        target = tuple(i for i in axes if any(i in ls for _, ls in parts))
        return n.mul(*[_align(node, ls, target) for node, ls in parts]) if len(parts) > 1 else \
            (_align(parts[0][0], parts[0][1], target)), target

    def _matmul(self, a: Node, la: Labels, b: Node, lb: Labels, k: sp.Symbol) -> tuple[Node, Labels]:
        if k in la and k in lb:
            return n.matmul(a, b), tuple(i for i in la + lb if i != k)
        size = self.r.index_size[k]
        if k in la:  # Σ_k a_ik b_j = (a 1)_i b_j
            reduced, rest = n.total(a, la.index(k)), tuple(i for i in la if i != k)
            return self.combine([(reduced, rest), (b, lb)], n.mul)
        reduced, rest = (n.total(b, lb.index(k)), tuple(i for i in lb if i != k)) if k in lb else \
            (n.mul(b, n.dim(size)), lb)
        return self.combine([(a, la), (reduced, rest)], n.mul)


def read(built: Any, free: Labels, letters: tuple[str, ...], expr: sp.Expr,
         definitions: tuple[Definition, ...] = ()) -> LanguageForm:
    """The index form ``expr`` of a gradient with axes ``free`` (sizes ``letters``) as a simplified tree; names it
    uses (μ, σ, X̂) are read from their ``definitions`` too."""
    if len(letters) > 2:
        raise LanguageFormError(f"the gradient has {len(letters)} axes: a tensor, which no matrix holds")
    reader = _Reader(built, free)
    for d in definitions:
        reader.by_symbol[d.symbol] = "named"
    named = []
    for d in definitions:
        node = _tree(reader, d.indices, tuple(reader.dim(size) for size in _shape(d.symbol)), d.value)
        named.append((_name(d.symbol), node))
    node = _tree(reader, free, letters, expr)
    variables = {**reader.variables}
    return LanguageForm(node, variables, reader.onehots, reader.upstream_name, tuple(named),
                        expr if definitions else None, tuple(letters))


def _shape(sym: sp.MatrixSymbol) -> tuple[Any, ...]:
    return sym.shape[:1] if sym.shape[1] == 1 else sym.shape


def _tree(reader: _Reader, free: Labels, letters: tuple[str, ...], expr: sp.Expr) -> Node:
    """One index expression with axes ``free`` as a simplified tree of that shape."""
    for i, letter in zip(free, letters):
        reader.index_size[i] = letter
    try:
        node, labels = _Translate(reader, free)(expr)
    except n.ShapeError as exc:  # axes that do not line up as matrices
        raise LanguageFormError(f"its operands do not line up as matrices ({exc})") from exc
    shape = tuple(letters)
    if set(labels) - set(free):
        raise LanguageFormError(f"index {sorted(set(labels) - set(free), key=str)[0]} is left over")
    node = _align(node, labels, free) if len(free) == 2 or not labels else node
    if node.shape != shape:
        node = n.broadcast_to(node, shape)
    return _negated_rows(named_functions(simplify(fuse(node), reader.variables)))

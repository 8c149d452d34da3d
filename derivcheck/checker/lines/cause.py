"""Why the blamed line is wrong: mutate it and keep the mutants that reproduce the true adjoint.

The inputs of the blamed line are known right and its true result is measured entry by entry,
so a hypothesis is tested by running the corrected statement in the recorded namespaces. A cause
is named only when its corrected line reproduces every entry; when corrections of two different
kinds both do, neither is named.

Detectors come in two tiers: simple edits (a factor, a swapped name, a missing derivative, a
transposition, ...) and rewrites to a known formula (softmax's full Jacobian, a GELU
derivative, routing a pooled gradient). The second tier is tried only when the first finds nothing.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

import derivcheck.checker.lines.rewrite as rw
from derivcheck.checker.lines.numbers import name_factor
from derivcheck.checker.lines.replay import Context, first_differing_event, replay, reproduces

# Elementwise derivatives written in terms of an available forward value: a layer's output
# (sigmoid, tanh) or its input (ReLU mask).
LOCAL_DERIVATIVES = {
    "sigmoid": "{y} * (1 - {y})",
    "tanh": "(1 - {y} ** 2)",
    "relu": "({y} > 0)",
}
# Derivatives of activations as functions of their input x, for "a derivative of another function".
KNOWN_DERIVATIVES = {
    "GELU (tanh approximation)": "0.5 * (1 + np.tanh(0.7978845608028654 * ({x} + 0.044715 * {x} ** 3)))"
        " + 0.5 * {x} * (1 - np.tanh(0.7978845608028654 * ({x} + 0.044715 * {x} ** 3)) ** 2)"
        " * 0.7978845608028654 * (1 + 3 * 0.044715 * {x} ** 2)",
    "GELU (sigmoid approximation)": "1 / (1 + np.exp(-1.702 * {x})) * (1 + 1.702 * {x} * (1 - 1 / (1 + np.exp(-1.702 * {x}))))",
    "sigmoid": "1 / (1 + np.exp(-{x})) * (1 - 1 / (1 + np.exp(-{x})))",
    "tanh": "(1 - np.tanh({x}) ** 2)",
    "softplus": "1 / (1 + np.exp(-{x}))",
}


# A term whose direction is within this cosine of the line's own value is a factor, not a term.
PARALLEL = 0.999


@dataclass
class Mutant:
    kind: str
    line: int
    statement: ast.stmt | None
    appended: str | None = None
    details: dict = field(default_factory=dict)

    def corrected(self, ctx: Context) -> str:
        if "shown" in self.details:
            return self.details["shown"]
        text = ctx.sources[self.line] if self.statement is None else rw.corrected_text(self.statement)
        return f"{text}; {self.appended}" if self.appended else text


@dataclass
class Cause:
    kind: str | None  # None: undetermined (nothing fits, or several kinds do)
    text: str
    corrected: str | None
    line: int | None
    details: dict
    first_event: int | None


def find_cause(ctx: Context, others: list[Context] = ()) -> Cause:
    """``others``: the same line's runs at other loop steps, each with its own true value."""
    written = replay(ctx)
    if written is None or written.shape != ctx.yours.shape or not np.allclose(written, ctx.yours, rtol=1e-9, atol=1e-12):
        return Cause(None, "the line could not be run again on its recorded inputs", None, None, {}, None)

    def fits_everywhere(m: Mutant) -> bool:
        return reproduces(ctx, replay(ctx, m.line, m.statement, m.appended)) and all(
            m.statement is not None and reproduces(o, replay(o, m.line, m.statement)) for o in others)

    for tier in (SIMPLE_DETECTORS, FORMULA_DETECTORS):
        fits = [m for m in _mutants(ctx, tier) if fits_everywhere(m)]
        by_text: dict[str, Mutant] = {}
        for m in fits:  # one corrected line reached by two detectors is one correction
            by_text.setdefault(m.corrected(ctx), m)
        fits = list(by_text.values())
        kinds = sorted({m.kind for m in fits})
        if len(kinds) > 1:
            listed = "; ".join(fits[[m.kind for m in fits].index(k)].corrected(ctx) for k in kinds)
            return Cause(None, f"corrections of {len(kinds)} kinds reproduce the true values ({listed}); "
                               "the data cannot tell them apart", None, None, {"kinds": ", ".join(kinds)}, None)
        if fits:
            best = fits[0]
            first = first_differing_event(ctx, best.line, best.statement) if best.statement is not None else None
            return Cause(best.kind, describe(best), best.corrected(ctx), best.line, best.details, first)
    return Cause(None, "no single edit of the line reproduces the true values", None, None, {}, None)


def _mutants(ctx: Context, detectors) -> Iterator[Mutant]:
    lines = sorted(set(ctx.statements), key=lambda l: l != ctx.last.line)  # the final line first
    for line in lines:
        statement = ctx.statements[line]
        if not isinstance(statement, (ast.Assign, ast.AugAssign, ast.Expr, ast.Return)):
            continue
        view = _returned_entry(statement, ctx.var)
        for detector in detectors:
            if view is None:
                yield from detector(ctx, line, statement)
                continue
            entry, rebuild, key = view  # the detectors edit the entry's expression; the return is rebuilt around it
            for m in detector(ctx, line, entry):
                if m.statement is not None:  # only that entry was verified: only that entry is shown corrected
                    shown = f"{key!r}: {ast.unparse(m.statement.value)}  (that entry of the return; the rest as written)"
                    yield Mutant(m.kind, m.line, rebuild(m.statement), None, {**m.details, "shown": shown})


def _returned_entry(statement: ast.stmt, var: str):
    """For ``return {"W": expr, ...}`` (or a tuple) and the value ``<return>['W']``: an assignment of ``expr`` to
    edit, and how to put an edited expression back into the return statement. None otherwise."""
    if not isinstance(statement, ast.Return) or not var.startswith("<return>["):
        return None
    key = ast.literal_eval(var[len("<return>["):-1])
    value = statement.value
    if isinstance(value, ast.Dict):
        slots = [i for i, k in enumerate(value.keys) if isinstance(k, ast.Constant) and k.value == key]
    elif isinstance(value, ast.Tuple) and isinstance(key, int) and 0 <= key < len(value.elts):
        slots = [key]
    else:
        return None
    if len(slots) != 1:
        return None
    items = value.values if isinstance(value, ast.Dict) else value.elts
    entry = ast.fix_missing_locations(ast.copy_location(
        ast.Assign([ast.Name("_entry", ast.Store())], copy.deepcopy(items[slots[0]])), statement))

    def rebuild(edited: ast.stmt) -> ast.stmt:
        new = copy.deepcopy(statement)
        (new.value.values if isinstance(new.value, ast.Dict) else new.value.elts)[slots[0]] = edited.value
        return ast.fix_missing_locations(new)

    return entry, rebuild, key


def _arrays(ctx: Context) -> dict[str, np.ndarray]:
    return {n: v for n, v in ctx.last.namespace.items()
            if isinstance(v, np.ndarray) and v.dtype.kind == "f" and n != ctx.var}


def _read_arrays(ctx: Context, statement: ast.stmt) -> dict[str, np.ndarray]:
    """Float arrays the statement reads, local or global (data arrays are often globals)."""
    names = _rhs_names(statement)
    found = {n: v for n, v in ctx.last.globals.items()
             if n in names and isinstance(v, np.ndarray) and v.dtype.kind == "f"}
    found.update({n: v for n, v in _arrays(ctx).items() if n in names})
    return found


def _forward_arrays(ctx: Context) -> dict[str, np.ndarray]:
    return {n: v for n, v in _arrays(ctx).items() if ctx.is_forward(v)}


def _rhs_names(statement: ast.stmt) -> set[str]:
    value = getattr(statement, "value", None)
    return set() if value is None else {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}


def _numpy_name(ctx: Context) -> str | None:
    return next((n for n, v in ctx.last.globals.items() if v is np), None)


# --- tier 1: simple edits ------------------------------------------------------------------------


def constant_factor(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    yours = ctx.yours.reshape(ctx.true.shape) if ctx.yours.size == ctx.true.size else None
    if yours is None or not np.any(yours) or line != ctx.last.line:
        return
    c = float(np.vdot(ctx.true, yours) / np.vdot(yours, yours))
    mentioned = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
    named = name_factor(c, ctx.last.namespace, mentioned)
    if named is None or abs(c - 1) < 1e-6:
        return
    kind = "sign" if named.phrase == "minus" else "constant_factor"
    details = {"factor": named.phrase, "value": c}
    if isinstance(statement, (ast.Assign, ast.AugAssign)):
        value = rw.parse_expr(f"({rw.value_text(statement)}) {named.operator} {named.operand}")
        yield Mutant(kind, line, rw.with_value(statement, value), None, details)
    target = ctx.var if "[" not in ctx.var else None
    if target:
        yield Mutant(kind, line, None, f"{target} {named.operator}= {named.operand}", details)


def substitution(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    arrays = _arrays(ctx)
    positions = list(rw.name_positions(statement))
    for old in sorted({n.id for _, n in positions if n.id in arrays}):
        for new, value in arrays.items():
            if new == old or value.shape != arrays[old].shape:
                continue
            occurrences = [(p, n) for p, n in positions if n.id == old]
            kind = "wrong_mask" if any(rw.in_compare(statement, n) for _, n in occurrences) else "wrong_quantity"
            details = {"written": old, "meant": new}
            yield Mutant(kind, line, rw.replace_all_names(statement, old, new), None, details)
            if len(occurrences) > 1:
                for p, _ in occurrences:
                    yield Mutant(kind, line, rw.replaced(statement, p, ast.Name(new, ast.Load())), None, details)


def _derivative_patterns(statement: ast.stmt) -> Iterator[tuple[int, str, str]]:
    """(node position, which derivative, argument name) for s*(1-s), (1-s)*s, 1-a**2, (z>0)."""
    for position, node in enumerate(rw.nodes_of(statement)):
        if not isinstance(node, (ast.BinOp, ast.Compare)):
            continue
        text = ast.unparse(node)
        for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
            for kind, forms in _PATTERN_FORMS.items():
                if text in {ast.unparse(rw.parse_expr(f.format(y=name))) for f in forms}:
                    yield position, kind, name


_PATTERN_FORMS = {
    "sigmoid": ("{y} * (1 - {y})", "(1 - {y}) * {y}"),
    "tanh": ("1 - {y} ** 2", "1 - {y} * {y}"),
    "relu": ("{y} > 0",),
}


def derivative_of_wrong_quantity(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    forward = _forward_arrays(ctx)
    namespace = ctx.last.namespace
    for position, kind, argument in _derivative_patterns(statement):
        shape = np.shape(namespace.get(argument))
        for name, value in forward.items():
            if name == argument or value.shape != shape:
                continue
            fixed = LOCAL_DERIVATIVES[kind].format(y=name)
            details = {"derivative": kind, "written": argument, "meant": name}
            yield Mutant("wrong_mask" if kind == "relu" else "wrong_quantity", line, rw.replaced(statement, position, rw.parse_expr(fixed)), None, details)
            if argument not in forward:  # the upstream gradient took the activation's place
                with_upstream = rw.parse_expr(f"{argument} * {fixed}")
                yield Mutant("wrong_quantity", line, rw.replaced(statement, position, with_upstream), None,
                             dict(details, upstream=argument))


def missing_derivative(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    if not isinstance(statement, (ast.Assign, ast.AugAssign, ast.Return)):
        return
    forward = _forward_arrays(ctx)
    arrays = _arrays(ctx)
    adjoints = [(p, n) for p, n in rw.name_positions(statement) if n.id in arrays and n.id not in forward]
    for name, value in forward.items():
        for kind, template in LOCAL_DERIVATIVES.items():
            factor = template.format(y=name)
            details = {"derivative": kind, "of": name}
            if value.shape == ctx.true.shape:
                fixed = rw.parse_expr(f"({rw.value_text(statement)}) * {factor}")
                yield Mutant("missing_derivative", line, rw.with_value(statement, fixed), None, details)
            for p, node in adjoints:
                if arrays[node.id].shape == value.shape:
                    new = rw.parse_expr(f"({node.id} * {factor})")
                    yield Mutant("missing_derivative", line, rw.replaced(statement, p, new), None, details)


def transposition(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    arrays = _arrays(ctx)
    for position, node in enumerate(rw.nodes_of(statement)):
        if isinstance(node, ast.Attribute) and node.attr == "T" and isinstance(node.ctx, ast.Load):
            yield Mutant("transposition", line, rw.replaced(statement, position, node.value), None,
                         {"transposed": ast.unparse(node.value)})
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            swapped = ast.BinOp(node.right, ast.MatMult(), node.left)
            yield Mutant("transposition", line, rw.replaced(statement, position, swapped), None,
                         {"transposed": ast.unparse(node)})
            for side in ("left", "right"):
                operand = getattr(node, side)
                if not isinstance(operand, ast.Name):  # names are transposed below
                    new = ast.BinOp(node.left, ast.MatMult(), node.right)
                    setattr(new, side, ast.Attribute(operand, "T", ast.Load()))
                    yield Mutant("transposition", line, rw.replaced(statement, position, new), None,
                                 {"transposed": ast.unparse(operand)})
    for position, name in rw.name_positions(statement):
        if name.id in arrays and arrays[name.id].ndim == 2:
            new = ast.Attribute(ast.Name(name.id, ast.Load()), "T", ast.Load())
            yield Mutant("transposition", line, rw.replaced(statement, position, new), None, {"transposed": name.id})


def misplaced_term(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    for position, node in enumerate(rw.nodes_of(statement)):
        if not isinstance(node, ast.BinOp):
            continue
        left, right = node.left, node.right
        if isinstance(node.op, ast.Mult) and isinstance(left, ast.BinOp) and isinstance(left.op, ast.Add):
            a, b, d = (ast.unparse(x) for x in (left.left, left.right, right))
            for text in (f"{a} * ({d}) + {b}", f"{a} + {b} * ({d})"):
                yield Mutant("misplaced_term", line, rw.replaced(statement, position, rw.parse_expr(text)), None,
                             {"term": b})
        if isinstance(node.op, ast.Add) and isinstance(left, ast.BinOp) and isinstance(left.op, ast.Mult):
            a, d, b = (ast.unparse(x) for x in (left.left, left.right, right))
            yield Mutant("misplaced_term", line, rw.replaced(statement, position, rw.parse_expr(f"({a} + {b}) * ({d})")),
                         None, {"term": b})


def missing_sum(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    runs = sum(1 for e in ctx.events if e.line == line)
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and runs > 1:
        summed = ast.AugAssign(statement.targets[0], ast.Add(), statement.value)
        yield Mutant("missing_sum", line, ast.fix_missing_locations(ast.copy_location(summed, statement)), None,
                     {"runs": runs})


def repeated_index(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    numpy = _numpy_name(ctx)
    if numpy is None or not isinstance(statement, ast.AugAssign) or not isinstance(statement.op, ast.Add):
        return
    t = statement.target
    if isinstance(t, ast.Subscript) and not any(isinstance(n, ast.Slice) for n in ast.walk(t.slice)):
        text = f"{numpy}.add.at({ast.unparse(t.value)}, {ast.unparse(t.slice)}, {ast.unparse(statement.value)})"
        new = ast.fix_missing_locations(ast.copy_location(ast.parse(text).body[0], statement))
        yield Mutant("repeated_index", line, new, None, {"array": ast.unparse(t.value)})


def missing_term(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    if len(ctx.events) != 1 or not isinstance(statement, (ast.Assign, ast.AugAssign)) \
            or ctx.yours.size != ctx.true.size:
        return
    residual = ctx.true - ctx.yours.reshape(ctx.true.shape)
    scalars = {n: float(v) for n, v in ctx.last.namespace.items()
               if isinstance(v, (float, np.floating)) and not n.startswith("_")}
    owner = getattr(ctx.last.namespace.get("self"), "__dict__", {})
    scalars.update({f"self.{n}": float(v) for n, v in owner.items() if isinstance(v, (float, np.floating))})
    for name, value in _arrays(ctx).items():
        if value.shape != ctx.true.shape or name in _rhs_names(statement) or not np.any(value):
            continue
        c = float(np.vdot(residual, value) / np.vdot(value, value))
        if abs(np.vdot(value, ctx.yours.reshape(value.shape))) > PARALLEL * np.linalg.norm(value) * np.linalg.norm(ctx.yours):
            continue  # parallel to the line's own value: that is a factor, not a term
        named = next((n for n, s in scalars.items() if s and abs(s - c) <= 1e-6 * abs(c)), None)
        coefficient = named or _coefficient_text(c)
        if coefficient:
            fixed = rw.parse_expr(f"{rw.value_text(statement)} + {coefficient} * {name}")
            yield Mutant("missing_term", line, rw.with_value(statement, fixed), None, {"term": f"{coefficient} * {name}"})


def _coefficient_text(c: float) -> str | None:
    named = name_factor(c, {})
    if named is None:
        return None
    return named.operand if named.operator == "*" else f"(1 / {named.operand})"


def indexing(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    """Broadcasting slips: (m,) against (m, 1); a per-class weight where a per-sample one belongs."""
    arrays = _read_arrays(ctx, statement)
    index_arrays = [n for n, v in ctx.last.namespace.items()
                    if isinstance(v, np.ndarray) and v.dtype.kind in "iu" and v.ndim == 1]
    for position, name in rw.name_positions(statement):
        value = arrays.get(name.id)
        if value is None or value.ndim != 1:
            continue
        for text, kind in ((f"{name.id}[:, None]", "broadcast"), (f"{name.id}[None, :]", "broadcast")):
            yield Mutant(kind, line, rw.replaced(statement, position, rw.parse_expr(text)), None, {"array": name.id})
        for index in index_arrays:
            text = f"{name.id}[{index}][:, None]"
            yield Mutant("per_sample_weights", line, rw.replaced(statement, position, rw.parse_expr(text)), None,
                         {"array": name.id, "index": index})


def kernel_and_axes(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    arrays = _arrays(ctx)
    for position, node in enumerate(rw.nodes_of(statement)):
        if not isinstance(node, ast.Subscript):
            continue
        elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        flips = [e for e in elements if isinstance(e, ast.Slice) and ast.unparse(e) == "::-1"]
        if flips and all(isinstance(e, ast.Slice) for e in elements):
            yield Mutant("flipped_kernel", line, rw.replaced(statement, position, node.value), None,
                         {"kernel": ast.unparse(node.value)})
        if isinstance(node.slice, ast.Tuple):
            for i in range(len(elements)):
                for j in range(i + 1, len(elements)):
                    if ast.unparse(elements[i]) != ast.unparse(elements[j]):
                        swapped = list(elements)
                        swapped[i], swapped[j] = swapped[j], swapped[i]
                        new = ast.Subscript(node.value, ast.Tuple(swapped, ast.Load()), node.ctx)
                        yield Mutant("swapped_axes", line, rw.replaced(statement, position, new), None,
                                     {"indices": f"{ast.unparse(elements[i])} and {ast.unparse(elements[j])}"})
    for position, name in rw.name_positions(statement):
        value = arrays.get(name.id)
        if value is not None and value.ndim == 4:
            new = rw.parse_expr(f"{name.id}[:, :, ::-1, ::-1]")
            yield Mutant("flipped_kernel", line, rw.replaced(statement, position, new), None, {"kernel": name.id})


def inplace_overwrite(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    """An in-place update of entries of a value that was right before it (``g["w1"][3, 1] *= -1``): without the
    line, the value is the true one."""
    target = statement.target if isinstance(statement, ast.AugAssign) else (
        statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None)
    if isinstance(target, ast.Subscript) and line == ctx.last.line:
        kept = ast.copy_location(ast.Pass(), statement)
        yield Mutant("inplace_overwrite", line, kept, None, {"array": ast.unparse(target.value)})


SIMPLE_DETECTORS = (constant_factor, substitution, derivative_of_wrong_quantity, missing_derivative,
                    transposition, misplaced_term, missing_sum, repeated_index, missing_term, indexing,
                    kernel_and_axes, inplace_overwrite)


# --- tier 2: rewrites to a known formula ---------------------------------------------------------


def softmax_diagonal(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    if not isinstance(statement, (ast.Assign, ast.AugAssign)):
        return
    arrays = _arrays(ctx)
    names = [n for n in sorted(_rhs_names(statement)) if n in arrays and arrays[n].shape == ctx.true.shape]
    for upstream in names:
        for probabilities in names:
            if upstream != probabilities and ctx.is_forward(arrays[probabilities]):
                text = f"{probabilities} * ({upstream} - ({upstream} * {probabilities}).sum(axis=-1, keepdims=True))"
                yield Mutant("softmax_diagonal", line, rw.with_value(statement, rw.parse_expr(text)), None,
                             {"upstream": upstream, "probabilities": probabilities})


def other_function_derivative(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    numpy = _numpy_name(ctx)
    if numpy is None or not isinstance(statement, (ast.Assign, ast.AugAssign)):
        return
    arrays = _arrays(ctx)
    forward = _forward_arrays(ctx)
    upstreams = [n for n in sorted(_rhs_names(statement)) if n in arrays and n not in forward]
    for upstream in upstreams:
        for x, value in forward.items():
            if value.shape != arrays[upstream].shape:
                continue
            for function, template in KNOWN_DERIVATIVES.items():
                text = f"{upstream} * ({template.format(x=x)})".replace("np.", f"{numpy}.")
                yield Mutant("wrong_formula", line, rw.with_value(statement, rw.parse_expr(text)), None,
                             {"function": function, "input": x})


def pooled_routing(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    if not (isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Subscript)):
        return
    target = statement.target
    spread = statement.value
    if isinstance(spread, ast.BinOp) and isinstance(spread.op, ast.Div):
        spread = spread.left  # the even split's 1/(window size) goes with routing to the maximum
    accumulator = ctx.last.namespace.get(ast.unparse(target.value))
    for name, value in _forward_arrays(ctx).items():
        if accumulator is None or value.shape != np.shape(accumulator):
            continue
        window = ast.unparse(ast.Subscript(ast.Name(name, ast.Load()), target.slice, ast.Load()))
        text = f"({window} == {window}.max(axis=(-2, -1), keepdims=True)) * {ast.unparse(spread)}"
        yield Mutant("pool_routing", line, rw.with_value(statement, rw.parse_expr(text)), None, {"input": name})


def block_sum(ctx: Context, line: int, statement: ast.stmt) -> Iterator[Mutant]:
    arrays = _arrays(ctx)
    for position, node in enumerate(rw.nodes_of(statement)):
        if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in arrays):
            continue
        elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        steps = [e.step.value for e in elements[-2:] if isinstance(e, ast.Slice) and isinstance(e.step, ast.Constant)]
        shape = arrays[node.value.id].shape
        if len(elements) != len(shape) or len(steps) != 2 or min(steps) < 2:
            continue
        ky, kx = steps
        lead = ", ".join(str(d) for d in shape[:-2])
        text = f"{node.value.id}.reshape({lead}, {shape[-2] // ky}, {ky}, {shape[-1] // kx}, {kx}).sum(axis=(-3, -1))"
        yield Mutant("missing_block_sum", line, rw.replaced(statement, position, rw.parse_expr(text)), None,
                     {"array": node.value.id, "block": f"{ky}x{kx}"})


FORMULA_DETECTORS = (softmax_diagonal, other_function_derivative, pooled_routing, block_sum)


# --- sentences -------------------------------------------------------------------------------------


def describe(m: Mutant) -> str:
    d = m.details
    texts = {
        "constant_factor": lambda: f"the line's result is off by a constant factor: the true value is {d.get('factor')} "
                                   "yours",
        "sign": lambda: "the sign is flipped: the true value is minus yours",
        "wrong_quantity": lambda: (f"the {d['derivative']} derivative is applied to {d['written']} instead of {d['meant']}"
                                   if "derivative" in d else f"{d['written']} is used where {d['meant']} belongs"),
        "wrong_mask": lambda: f"the mask is taken from {d['written']} instead of {d['meant']}",
        "missing_derivative": lambda: f"the {d['derivative']} derivative (of {d['of']}) is missing",
        "transposition": lambda: f"{d['transposed']} is transposed wrongly",
        "misplaced_term": lambda: f"the term {d['term']} is added on the wrong side of a derivative factor",
        "missing_sum": lambda: f"the line overwrites the variable on each of its {d['runs']} runs instead of summing",
        "repeated_index": lambda: f"fancy-index += on {d['array']} counts a repeated index once; np.add.at counts each",
        "missing_term": lambda: f"a term {d['term']} is missing",
        "broadcast": lambda: f"{d['array']} broadcasts against the wrong axis (shape (m,) against (m, 1))",
        "per_sample_weights": lambda: f"{d['array']} is applied per column; it belongs per sample, as {d['array']}[{d['index']}]",
        "flipped_kernel": lambda: f"the kernel {d['kernel']} is flipped where it should not be (or not where it should)",
        "swapped_axes": lambda: f"the indices {d['indices']} are swapped",
        "softmax_diagonal": lambda: "only the diagonal of the softmax Jacobian is used; the off-diagonal term is missing",
        "wrong_formula": lambda: f"the derivative is not that of the forward's function: the {d['function']} derivative "
                                 f"of {d['input']} fits",
        "pool_routing": lambda: "the gradient is spread over the pooling window instead of routed to its maximum",
        "missing_block_sum": lambda: f"one entry per {d['block']} block is taken instead of the block's sum",
        "inplace_overwrite": lambda: (f"the line overwrites entries of {d['array']} in place, and {d['array']} was "
                                      f"right without it: the line should not be there"),
    }
    return texts[m.kind]()

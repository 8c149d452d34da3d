"""Generated NumPy code that is checked before it is printed: right, of the right shape, and safe.

The source text a user would copy is executed here, in the same run, at random sizes, and
compared with the index form (evaluated entry by entry). Where the direct translation of a
matrix form overflows (``exp(x) / (exp(x) + 1)**2`` at x = 710), stable rewrites are tried
(a sigmoid through tanh, a softmax shifted by its row maximum); a rewrite is used only if it
agrees with the index form too. Code that disagrees is never printed as an answer.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy as sp

from derivcheck.numeric.compare import ABSOLUTE_BELOW_ONE, relative_gap
from derivcheck.checker.gradient import check_gradient
from derivcheck.symbolic.compile import compiled_gradient, layer_code_parameters, matrix_form_code, values_by_name
from derivcheck.symbolic.layer_chain import chain_derivation, chain_vjp
from derivcheck.symbolic.matrix_form import MatrixForm, reduce_axis

# Sizes drawn for the check of generated code (two draws, sizes from 2 so that no axis is trivial).
_DRAWS = (101, 202)
# Inputs scaled by this much probe numerical safety (exp overflows beyond about 709).
_EXTREME = 1000.0
_AGREEMENT = 1e-9

# Helpers a rewrite may call; each is printed with the code that uses it.
HELPERS = {
    "_sigmoid": "def _sigmoid(x):\n    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow, unlike 1 / (1 + exp(-x))",
    "_rowmax": "def _rowmax(x, axis):\n    return x.max(axis=axis, keepdims=True)",
}
IMPORT = "import numpy as np"


class _sigmoid(sp.Function):  # noqa: N801 - printed as the helper of the same name
    pass


class _rowmax(sp.Function):  # noqa: N801
    pass


@dataclass(frozen=True)
class CheckedCode:
    """The source to print (None where nothing verified), and what the check found."""

    source: str | None
    note: str


def checked_code(d: Any, arg_name: str) -> CheckedCode:
    """The generated code for one gradient, verified against the index form (and made safe where it can be)."""
    g = d.gradients[arg_name]
    if g.matrix.kind == "none":
        return CheckedCode(None, g.matrix.note)
    candidates = [("direct", g.matrix), *[(label, form) for label, form in _rewrites(g.matrix)]]
    unsafe = None
    for label, form in candidates:
        source = _with_helpers(matrix_form_code(d.built, form, arg_name))
        problem = code_disagreement(d, arg_name, source)
        if problem is not None:
            if label == "direct":
                return CheckedCode(None, f"DEFECT, not shown: the generated code {problem}")
            continue
        if _safe(d, arg_name, source):
            return CheckedCode(source, "verified against the index form" + ("" if label == "direct" else f" ({label})"))
        unsafe = unsafe or source
    return CheckedCode(unsafe, "verified against the index form; NOT numerically safe for inputs of magnitude 1000 "
                               "(an exp overflows): rescale, or use a log-sum-exp form")


def _rewrites(form: MatrixForm) -> list[tuple[str, MatrixForm]]:
    if form.kind != "elementwise" or not form.expr.has(sp.exp):
        return []
    out = []
    sig = _sigmoid_rewrite(form.expr)
    if sig is not None:
        out.append(("exp(x) / (1 + exp(x)) written as a stable sigmoid", replace(form, expr=sig)))
    shifted = _softmax_rewrite(form.expr)
    if shifted is not None:
        out.append(("softmax shifted by its row maximum", replace(form, expr=shifted)))
    return out


def _sigmoid_rewrite(expr: sp.Expr) -> sp.Expr | None:
    """exp(u) = s / (1 - s) with s = sigmoid(u): expressions in exp(u) / (1 + exp(u)) become exp-free."""
    out = expr
    for e in sorted(expr.atoms(sp.exp), key=sp.default_sort_key):
        s = sp.Dummy("s")
        candidate = sp.factor(sp.simplify(out.subs(e, s / (1 - s))))
        if candidate.has(sp.exp) and candidate.atoms(sp.exp) >= out.atoms(sp.exp):
            return None
        out = candidate.subs(s, _sigmoid(e.args[0]))
    return None if out.has(sp.exp) else out


def _softmax_rewrite(expr: sp.Expr) -> sp.Expr | None:
    """exp(u) -> exp(u - rowmax(u)) where exp(u) appears only over its own row sum (the ratio is unchanged)."""
    sums = [r for r in expr.atoms(reduce_axis) if isinstance(r.args[0], sp.exp)]
    if not sums:
        return None
    mapping = {}
    for r in sums:
        u, axis = r.args[0].args[0], r.args[1]
        mapping[r.args[0]] = sp.exp(u - _rowmax(u, axis))
    return expr.xreplace(mapping)


def _with_helpers(source: str | None) -> str | None:
    """The function after the helpers it calls (each printed once; the import goes above the whole block)."""
    if source is None:
        return None
    used = [name for name in HELPERS if f"{name}(" in source]
    return "\n\n\n".join([*[HELPERS[n] for n in used], source])


def _function(source: str, arg_name: str) -> Callable[..., Any]:
    """The function defined by the printed text, executed as printed (with the one import printed above it)."""
    namespace: dict[str, Any] = {}
    exec(compile(f"{IMPORT}\n\n\n{source}", f"<generated grad_{arg_name}>", "exec"), namespace)  # noqa: S102
    return namespace[f"grad_{arg_name}"]


def code_arguments(d: Any, arrays: dict[str, np.ndarray], upstream: Any, sizes: dict[str, int]) -> list[Any]:
    """The arguments a printed function takes, in its order: dy, the layer's inputs, constants, hyperparameters."""
    return [*([] if d.layer.is_loss else [upstream]), *[arrays[a.name] for a in d.layer.inputs],
            *[d.layer.constants[k] for k in d.built.constants], *[int(sizes[h]) for h in d.layer.hyper]]


def _call(d: Any, fn: Callable[..., Any], arrays: dict[str, np.ndarray], upstream: Any, sizes: dict[str, int]) -> Any:
    return fn(*code_arguments(d, arrays, upstream, sizes))


def draw_inputs(d: Any, seed: int, scale: float = 1.0,
                integers: bool = False) -> tuple[dict[str, np.ndarray], Any, dict[str, int]]:
    """Random sizes, inputs and upstream gradient for layer ``d.layer``, the same for a seed in every run."""
    from derivcheck.catalog.sampling import complete_sizes, output_shape, random_sizes, sample_inputs

    rng = np.random.default_rng(seed)
    sizes = complete_sizes(d.layer, random_sizes(d.layer, rng, low=2))
    arrays = sample_inputs(d.layer, sizes, rng)
    if scale != 1.0 or integers:
        real = {a.name for a in d.layer.inputs if a.domain in ("real", "away_from_zero")}
        arrays = {k: (np.round(v * scale) if integers and k in real else v * scale if k in real else v)
                  for k, v in arrays.items()}
    upstream = rng.standard_normal(output_shape(d.layer, sizes)) if not d.layer.is_loss else 1.0
    return arrays, upstream, sizes


def _draws() -> list[tuple[int, bool]]:
    """Two draws of random sizes and inputs, and one with integer inputs (ReLU at exactly 0, ties)."""
    return [(seed, False) for seed in _DRAWS] + [(_DRAWS[0], True)]


def code_disagreement(d: Any, arg_name: str, source: str | None,
                       draws: list[tuple[int, bool]] | None = None) -> str | None:
    """None when the printed code matches the index form at every draw (by default integer inputs too, where
    the conventions at kinks show); otherwise what went wrong."""
    if source is None:
        return "could not be generated"
    index = compiled_gradient(d.layer.name, arg_name, "index")
    try:
        fn = _function(source, arg_name)
    except Exception as exc:  # noqa: BLE001 - generated text that does not even run
        return f"does not run ({type(exc).__name__}: {exc})"
    for seed, integers in _draws() if draws is None else draws:
        arrays, upstream, sizes = draw_inputs(d, seed, integers=integers)
        want = index(arrays, upstream, sizes)
        try:
            with np.errstate(all="ignore"):
                got = np.asarray(_call(d, fn, arrays, upstream, sizes), dtype=float)
        except Exception as exc:  # noqa: BLE001
            return f"raises {type(exc).__name__} at sizes {sizes}: {exc}"
        if got.shape != want.shape:
            return f"returns shape {got.shape}, not the parameter's {want.shape}, at sizes {sizes}"
        gap = relative_gap(got, want, ABSOLUTE_BELOW_ONE)
        if not gap <= _AGREEMENT:
            return f"differs from the index form by {gap:.3g} (relative) at sizes {sizes}"
    return None


def _safe(d: Any, arg_name: str, source: str) -> bool:
    """Finite output for inputs of magnitude about 1000, where a naive exp overflows."""
    fn = _function(source, arg_name)
    arrays, upstream, sizes = draw_inputs(d, _DRAWS[0], _EXTREME)
    with np.errstate(all="ignore"):
        try:
            out = np.asarray(_call(d, fn, arrays, upstream, sizes), dtype=float)
        except Exception:  # noqa: BLE001
            return False
    return bool(np.all(np.isfinite(out)))


@dataclass(frozen=True)
class FormCheck:
    """Whether a gradient's matrix form and einsum agree with its index form (None: they do, or there is none)."""

    matrix: str | None
    einsum: str | None


_CHECKED: dict[tuple[str, str, str, str], FormCheck] = {}


def form_check(d: Any, arg_name: str) -> FormCheck:
    """The matrix form and the einsum of one gradient, evaluated against the index form at random sizes
    (once per process for each distinct form)."""
    g = d.gradients[arg_name]
    key = (d.layer.name, arg_name, sp.srepr(g.matrix.expr), str(g.matrix.einsum))
    if key not in _CHECKED:
        _CHECKED[key] = _form_check(d, arg_name)
    return _CHECKED[key]


def _form_check(d: Any, arg_name: str) -> FormCheck:
    from derivcheck.symbolic.compile import compile_matrix_form

    g = d.gradients[arg_name]
    if g.matrix.kind == "none" and not g.matrix.einsum:
        return FormCheck(None, None)  # nothing printed besides the index form itself
    index = compiled_gradient(d.layer.name, arg_name, "index")
    matrix = compile_matrix_form(d.built, g.matrix, g.arg.letters) if g.matrix.kind != "none" else None
    matrix_problem = einsum_problem = None
    for seed, integers in _draws():
        arrays, upstream, sizes = draw_inputs(d, seed, integers=integers)
        want = index(arrays, upstream, sizes)
        if matrix is not None and matrix_problem is None:
            matrix_problem = _compare(lambda: matrix(arrays, upstream, sizes), want, sizes)
        if g.matrix.einsum and einsum_problem is None:
            einsum_problem = _compare(lambda: _einsum(d, g.matrix.einsum, arrays, upstream, sizes), want, sizes)
    return FormCheck(matrix_problem, einsum_problem)


def _einsum(d: Any, text: str, arrays: dict[str, np.ndarray], upstream: Any, sizes: dict[str, int]) -> np.ndarray:
    values = values_by_name(d.built, arrays, upstream, sizes)
    values = {k: (v.reshape(-1) if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] == 1 else v) for k, v in values.items()}
    return np.asarray(eval(text, {"__builtins__": {}, "einsum": np.einsum, "numpy": np}, values), dtype=float)  # noqa: S307


def _compare(compute: Callable[[], Any], want: np.ndarray, sizes: dict[str, int]) -> str | None:
    try:
        with np.errstate(all="ignore"):
            got = np.asarray(compute(), dtype=float)
    except Exception as exc:  # noqa: BLE001 - a printed artefact that does not evaluate is a defect too
        return f"does not evaluate ({type(exc).__name__}) at sizes {sizes}"
    if got.shape != want.shape:
        if got.size == want.size:
            got = got.reshape(want.shape)
        else:
            return f"has shape {got.shape}, not {want.shape}, at sizes {sizes}"
    gap = relative_gap(got, want, ABSOLUTE_BELOW_ONE)
    if not gap <= _AGREEMENT:
        return f"differs from the index form by {gap:.3g} (relative) at sizes {sizes}"
    return None


def chain_code(layer: Any) -> CheckedCode:
    """A chain layer's step-by-step backward as one function of the layer's own arguments, in declaration order
    (``backward(dy, x, h, c, w, u, b)``, like every generated function), checked in this run: against finite
    differences of the layer's forward and, to rounding, against the chain's own verified backward."""
    d = chain_derivation(layer.name)
    if d.code is None:
        return CheckedCode(None, "DEFECT, not shown: the step-by-step backward did not verify")
    helpers, body = _split_program_code(d.code)
    source = "\n\n\n".join([*helpers, _layer_function(layer, body)])
    problem = _chain_disagreement(layer, source)
    if problem is not None:
        return CheckedCode(None, f"DEFECT, not shown: the generated code {problem}")
    return CheckedCode(source, "verified against finite differences of the layer's forward and against the "
                               "step-by-step backward")


def chain_code_block(layer: Any) -> str:
    """What ``derive NAME --format code`` prints for a chain layer: one import, then the checked function."""
    checked = chain_code(layer)
    if checked.source is None:
        return f"# {checked.note}"
    head = (f"# Generated from the step-by-step derivation of layer {layer.name!r}, executed as printed and, before "
            f"it was printed,\n# {checked.note}.")
    return f"{head}\n{IMPORT}\n\n\n{checked.source}"


def _split_program_code(code: str) -> tuple[list[str], ast.FunctionDef]:
    """The helper functions of a program's generated backward (as printed), and its ``backward`` function."""
    tree = ast.parse(code)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    helpers = [ast.get_source_segment(code, f) or ast.unparse(f) for f in functions if f.name != "backward"]
    return helpers, next(f for f in functions if f.name == "backward")


def _layer_function(layer: Any, program: ast.FunctionDef) -> str:
    """The program's backward with the layer's signature: split the layer's arrays into the program's inputs,
    run the steps, and put the blocks of each gradient back together."""
    spec = layer.chain
    lines = [f"def backward({', '.join(layer_code_parameters(layer))}):",
             f'    """dE/d({", ".join(a.name for a in layer.differentiable)}) of layer {layer.name!r}, step by step."""']
    if len(spec.upstream) > 1:
        lines.append(f"    {', '.join(spec.upstream)} = dy  # the gradients arriving at each part of the output")
    elif spec.upstream and spec.upstream[0] != "dy":
        lines.append(f"    {spec.upstream[0]} = dy")
    renamed = [(names[0], arg) for arg, names in spec.arguments.items() if len(names) == 1 and names[0] != arg]
    if renamed:  # the steps below use the names the derivation prints
        lines.append(f"    {', '.join(n for n, _ in renamed)} = {', '.join(a for _, a in renamed)}")
    for arg, names in spec.arguments.items():
        if len(names) > 1:
            lines.append(f"    {', '.join(names)} = np.split({arg}, {len(names)}, axis=-1)  # blocks of columns")
    *steps, ret = program.body
    lines += [f"    {ast.unparse(s)}" for s in steps]
    returned = {ast.literal_eval(k): ast.unparse(v) for k, v in zip(ret.value.keys, ret.value.values)}  # type: ignore[attr-defined]
    parts = []
    for arg in layer.differentiable:
        names = spec.arguments[arg.name]
        value = (returned[names[0]] if len(names) == 1
                 else f"np.concatenate([{', '.join(returned[n] for n in names)}], axis=-1)")
        parts.append(f"        {arg.name!r}: {value},")
    return "\n".join([*lines, "    return {", *parts, "    }"])


def _chain_disagreement(layer: Any, source: str) -> str | None:
    """None when the printed function passes a finite-difference check of the layer and matches the chain's
    verified backward at every draw; otherwise what went wrong."""
    namespace: dict[str, Any] = {}
    try:
        exec(compile(f"{IMPORT}\n\n\n{source}", f"<generated backward of {layer.name}>", "exec"), namespace)  # noqa: S102
    except Exception as exc:  # noqa: BLE001 - generated text that does not even run
        return f"does not run ({type(exc).__name__}: {exc})"
    fn = namespace["backward"]
    names = [a.name for a in layer.differentiable]
    for seed in _DRAWS:
        arrays, upstream, sizes = _layer_inputs(layer, seed)
        args = [*([] if layer.is_loss else [upstream]), *[arrays[a.name] for a in layer.inputs]]
        try:
            got = {k: np.asarray(v, dtype=float) for k, v in fn(*args).items()}
        except Exception as exc:  # noqa: BLE001
            return f"raises {type(exc).__name__} at sizes {sizes}: {exc}"
        want = chain_vjp(layer, arrays, upstream)
        for k in names:
            if got[k].shape != want[k].shape or not relative_gap(got[k], want[k], ABSOLUTE_BELOW_ONE) <= _AGREEMENT:
                return f"differs from the step-by-step backward in d{k} at sizes {sizes}"

        def loss(p: dict[str, np.ndarray], arrays: dict[str, np.ndarray] = arrays, sizes: dict[str, int] = sizes,
                 upstream: Any = upstream) -> float:
            return float(np.sum(upstream * layer.call_forward({**arrays, **p}, sizes)))

        report = check_gradient(loss, lambda p, got=got: {k: got[k] for k in names}, {k: arrays[k] for k in names},
                                seed=seed, trace=False)
        if report.verdict != "pass":
            return f"fails a finite-difference check ({report.verdict}) at sizes {sizes}"
    return None


def _layer_inputs(layer: Any, seed: int) -> tuple[dict[str, np.ndarray], Any, dict[str, int]]:
    from derivcheck.catalog.sampling import complete_sizes, output_shape, random_sizes, sample_inputs

    rng = np.random.default_rng(seed)
    sizes = complete_sizes(layer, random_sizes(layer, rng, low=2))
    upstream_shape = output_shape(layer, sizes)
    arrays = sample_inputs(layer, sizes, rng)
    return arrays, rng.standard_normal(upstream_shape) if not layer.is_loss else 1.0, sizes

"""Four witnesses, one verdict: index form, matrix form, finite differences, reference backward.

For one layer at random sizes and values: the lambdified index form, the lambdified matrix
form and the layer's hand-written NumPy backward must agree to rounding (they compute the
same formula), and the numeric checker must pass the reference backward against finite
differences of the reference forward. When something disagrees, every analytic witness is
checked against finite differences, so the report names the witness that is wrong.
"""

from __future__ import annotations

import time
from itertools import combinations
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivcheck.numeric.compare import ABSOLUTE_BELOW_ONE, PURELY_RELATIVE, relative_gap
from derivcheck.checker.gradient import check_gradient
from derivcheck.catalog.declarations import Layer
from derivcheck.catalog.registry import get_layer
from derivcheck.catalog.sampling import complete_sizes, output_shape, random_sizes, sample_inputs
from derivcheck.report.results import GradientVerification, LayerVerification
from derivcheck.report.verification import WITNESSES  # noqa: F401 - re-exported
from derivcheck.symbolic.models import witness_vjp
from derivcheck.symbolic.checked_code import code_disagreement, draw_inputs
from derivcheck.symbolic.compile import compile_matrix_form, compiled_gradient, values_of_symbols
from derivcheck.symbolic.derive import Derivation, derive
from derivcheck.symbolic.language_form import LanguageForm
from derivcheck.symbolic.matrix_form import MatrixForm

# The analytic witnesses evaluate one formula in float64 in different orders; sums of up to
# ~10^4 terms differ by at most a few thousand ulps of the largest entry.
AGREEMENT_ULPS = 4096.0
_EPS = float(np.finfo(np.float64).eps)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return relative_gap(a, b, PURELY_RELATIVE, both=True)


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and relative_gap(a, b, ABSOLUTE_BELOW_ONE, both=True) <= AGREEMENT_ULPS * _EPS


def verify_layer(
    layer: str | Layer,
    *,
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    backward: Callable[..., dict[str, Any]] | None = None,
) -> LayerVerification:
    """Compare the four witnesses for every gradient of a layer.

    ``backward`` replaces the layer's reference backward (to test a hand-written one, or a
    deliberately wrong one).

    Examples
    --------
    >>> v = verify_layer("dense", sizes={"N": 3, "D": 2, "M": 4})
    >>> v.ok, [r.arg for r in v.rows]
    (True, ['x', 'w', 'b'])
    """
    layer = get_layer(layer) if isinstance(layer, str) else layer
    start = time.perf_counter()
    if layer.chain is not None:
        return _verify_chain_layer(layer, sizes, seed, backward, start)
    derivation = derive(layer)
    sample = _draw(layer, sizes, seed, backward)
    try:
        reference_fd = sample.fd_verdicts(sample.reference)
    except Exception as exc:  # noqa: BLE001 - a wrong-shaped mutant lands here
        reference_fd = {k: f"error: {exc}" for k in sample.names}
    stepwise = _stepwise_matrix_forms(layer, sample.inputs, sample.upstream)
    rows = tuple(_verify_gradient(sample, derivation, name, reference_fd, stepwise) for name in sample.names)
    return LayerVerification(layer.name, sample.sizes, rows, derivation.seconds, time.perf_counter() - start)


@dataclass(frozen=True)
class _Sample:
    """One layer at one set of sizes: inputs, a random upstream gradient, the reference backward's gradients."""

    layer: Layer
    sizes: dict[str, int]
    inputs: dict[str, Any]
    upstream: Any
    reference: dict[str, np.ndarray]
    names: tuple[str, ...]
    seed: int

    def loss(self, p: dict[str, np.ndarray]) -> float:
        return float(np.sum(self.upstream * self.layer.call_forward({**self.inputs, **p}, self.sizes)))

    def fd_verdicts(self, grads: dict[str, np.ndarray]) -> dict[str, str]:
        """Each argument's verdict when ``grads`` is checked against finite differences of the layer."""
        report = check_gradient(self.loss, lambda p: {k: grads[k] for k in self.names},
                                {k: self.inputs[k] for k in self.names}, seed=self.seed)
        return {r.name: r.verdict for r in report.params}


def _draw(layer: Layer, sizes: Mapping[str, int] | None, seed: int, backward: Callable[..., Any] | None) -> _Sample:
    rng = np.random.default_rng(seed)
    # The main job shows real kernels and batches: sizes from 2 (the property tests reach 1).
    sizes = complete_sizes(layer, dict(sizes) if sizes is not None else random_sizes(layer, rng, low=2))
    inputs = sample_inputs(layer, sizes, rng)
    upstream = rng.standard_normal(output_shape(layer, sizes)) if not layer.is_loss else float(rng.uniform(0.5, 2.0))
    reference = {k: np.asarray(v, dtype=float) for k, v in layer.call_backward(upstream, inputs, sizes, backward).items()}
    return _Sample(layer, sizes, inputs, upstream, reference, tuple(a.name for a in layer.differentiable), seed)


def _verify_gradient(s: _Sample, derivation: Derivation, name: str, reference_fd: dict[str, str],
                     stepwise: dict[str, np.ndarray] | None) -> GradientVerification:
    """One row: the witnesses of one argument's gradient compared with each other and with finite differences."""
    t0 = time.perf_counter()
    g = derivation.gradients[name]
    values = {"index form": compiled_gradient(s.layer.name, name, "index")(s.inputs, s.upstream, s.sizes)}
    matrix_fn = compiled_gradient(s.layer.name, name, "matrix")
    kind = g.matrix.kind
    if matrix_fn is not None:
        values["matrix form"] = matrix_fn(s.inputs, s.upstream, s.sizes)
    elif g.language is not None:  # the matrix language's reading of the index form: the form that is printed
        values["matrix form"], kind = g.language.values(derivation.built, s.inputs, s.upstream, s.sizes), "language"
    elif stepwise is not None:
        values["matrix form"], kind = stepwise[name], "steps"
    values["reference backward"] = s.reference.get(name, np.full(values["index form"].shape, np.nan))
    analytic = list(values)
    if all(_agree(values[a], values[b]) for a in analytic for b in analytic if a < b) and reference_fd.get(name) == "pass":
        agreeing, disagreeing, message = (*analytic, "finite differences"), (), "all agree"
    else:
        agreeing, disagreeing, message = _judge_by_finite_differences(s, name, values, reference_fd)
    pairs = [_rel(values[a], values[b]) for a in analytic for b in analytic if a < b and values[a].shape == values[b].shape]
    if _trace_disagrees(s, derivation, g, values["index form"]):
        disagreeing = (*disagreeing, "matrix calculus cross-check")
        message = f"{message}; SymPy's Trace(G^T Y) derivative differs from the index form"
    return GradientVerification(s.layer.name, name, agreeing, disagreeing, max(pairs, default=0.0), kind,
                                time.perf_counter() - t0, message)


def _judge_by_finite_differences(s: _Sample, name: str, values: dict[str, np.ndarray],
                                 reference_fd: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """Where the analytic witnesses differ, each one is checked against finite differences on its own."""
    analytic = list(values)
    verdicts = {"reference backward": reference_fd.get(name, "missing")}
    for w in analytic:
        if w != "reference backward":
            same_shape = values[w].shape == values["index form"].shape
            verdicts[w] = s.fd_verdicts({**s.reference, name: values[w]}).get(name, "fail") if same_shape else "fail"
    agreeing = tuple(w for w in analytic if verdicts[w] == "pass")
    disagreeing = tuple(w for w in analytic if verdicts[w] != "pass")
    agreeing = (*agreeing, "finite differences") if agreeing else agreeing
    if not agreeing:
        disagreeing = (*disagreeing, "finite differences")
    message = "; ".join(f"{w}: {verdicts[w]}" for w in analytic if verdicts[w] != "pass") or \
        f"{_witnesses_differ(values)}, each within the finite differences' tolerance"
    return agreeing, disagreeing, message


def _witnesses_differ(values: dict[str, np.ndarray]) -> str:
    """How far apart analytic witnesses are, as measured: no claim about their rounding beyond the threshold (a
    badly conditioned formula, batch norm over two samples, amplifies its inputs' rounding past it)."""
    gap = max((relative_gap(a, b, ABSOLUTE_BELOW_ONE, both=True) for a, b in combinations(values.values(), 2)
               if a.shape == b.shape), default=0.0)
    return (f"analytic witnesses differ by up to {gap:.1e} of their largest entry or of 1, whichever is larger (more "
            f"than {AGREEMENT_ULPS:.0f} ulps)")


def _trace_disagrees(s: _Sample, derivation: Derivation, g: Any, index_values: np.ndarray) -> bool:
    """SymPy's matrix calculus on Trace(G^T Y), where it gave a result, against the index form."""
    if g.trace is None:
        return False
    traced = compile_matrix_form(derivation.built, MatrixForm("matrix", g.trace), g.arg.letters)
    return traced is not None and not _agree(traced(s.inputs, s.upstream, s.sizes), index_values)


def _stepwise_matrix_forms(layer: Layer, inputs: Mapping[str, Any], upstream: Any) -> dict[str, np.ndarray] | None:
    """The gradients from a layer's step-by-step matrix form (its ``steps``), or None without one."""
    if not layer.steps:
        return None
    from derivcheck.symbolic.layer_chain import steps_vjp

    return steps_vjp(layer, inputs, upstream)


def _verify_chain_layer(layer: Layer, sizes: Mapping[str, int] | None, seed: int,
                        backward: Callable[..., dict[str, Any]] | None, start: float) -> LayerVerification:
    """A layer declared as a chain of primitive steps: its verified step-by-step backward, the
    reference backward and finite differences of the forward must agree."""
    from derivcheck.symbolic.layer_chain import chain_derivation, chain_vjp
    from derivcheck.catalog.sampling import complete_sizes

    derivation = chain_derivation(layer.name)
    rng = np.random.default_rng(seed)
    sizes = complete_sizes(layer, dict(sizes) if sizes is not None else random_sizes(layer, rng, low=2))
    inputs = sample_inputs(layer, sizes, rng)
    upstream = rng.standard_normal(output_shape(layer, sizes))
    names = [a.name for a in layer.differentiable]
    witnesses = {"step-by-step derivation": chain_vjp(layer, inputs, upstream)}
    try:
        witnesses["reference backward"] = {k: np.asarray(v, dtype=float)
                                           for k, v in layer.call_backward(upstream, inputs, sizes, backward).items()}
    except Exception as exc:  # noqa: BLE001 - a wrong-shaped mutant lands here
        witnesses["reference backward"] = {}
        broken = f"error: {exc}"
    else:
        broken = ""

    def loss(p: dict[str, np.ndarray]) -> float:
        return float(np.sum(upstream * layer.call_forward({**inputs, **p}, sizes)))

    verdicts = {}
    for w, grads in witnesses.items():
        if not all(k in grads and np.shape(grads[k]) == np.shape(inputs[k]) for k in names):
            verdicts[w] = {k: broken or "missing or misshapen" for k in names}
            continue
        report = check_gradient(loss, lambda p, g=grads: {k: g[k] for k in names}, {k: inputs[k] for k in names}, seed=seed)
        verdicts[w] = {r.name: r.verdict for r in report.params}
    rows = []
    for name in names:
        agreeing = tuple(w for w in witnesses if verdicts[w].get(name) == "pass")
        disagreeing = tuple(w for w in witnesses if verdicts[w].get(name) != "pass")
        a, b = (witnesses[w].get(name) for w in witnesses)
        pair = _rel(a, b) if a is not None and b is not None and np.shape(a) == np.shape(b) else float("nan")
        message = "all agree" if not disagreeing else "; ".join(f"{w}: {verdicts[w].get(name)}" for w in disagreeing)
        rows.append(GradientVerification(layer.name, name, (*agreeing, "finite differences") if agreeing else (),
                                         disagreeing, pair, "chain", 0.0, message))
    return LayerVerification(layer.name, sizes, tuple(rows), derivation.seconds, time.perf_counter() - start)


def verify_model(name: Any, *, sizes: Mapping[str, int] | None = None, seed: int = 0) -> LayerVerification:
    """The four witnesses for a model (a catalog name or a Sequential of your own): chains of index-form,
    matrix-form and reference VJPs, and finite differences of the model's loss."""
    from derivcheck.catalog.declarations import Arg
    from derivcheck.catalog.registry import get_model

    model = get_model(name) if isinstance(name, str) else name
    name = model.name
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    sizes = dict(sizes) if sizes is not None else model.draw_sizes(rng)
    from derivcheck.catalog.sampling import sample_arg

    values = {k: sample_arg(Arg(k, dims, model.domains.get(k, "real")), sizes, rng) for k, dims in model.inputs.items()}
    chains = {w: model.backward(values, vjp) for w, vjp in (("index form", witness_vjp("index")), ("matrix form", witness_vjp("matrix")), ("reference backward", None))}

    def loss(p: dict[str, np.ndarray]) -> float:
        return model.loss({**values, **p})

    def fd(grads: dict[str, np.ndarray]) -> dict[str, str]:
        report = check_gradient(loss, lambda p: grads, {k: values[k] for k in model.params}, seed=seed)
        return {r.name: r.verdict for r in report.params}

    verdicts = {w: fd(g) for w, g in chains.items()}
    rows = []
    for p in model.params:
        t0 = time.perf_counter()
        agreeing = tuple(w for w in chains if verdicts[w][p] == "pass")
        disagreeing = tuple(w for w in chains if verdicts[w][p] != "pass")
        pairs = [_rel(chains[a][p], chains[b][p]) for a in chains for b in chains if a < b]
        # Said whatever the finite differences decided: an inconclusive loss must not hide chains that disagree.
        differ = [_witnesses_differ({w: chains[w][p] for w in chains})] * (
            not all(_agree(chains[a][p], chains[b][p]) for a in chains for b in chains if a < b))
        disagreeing = (*disagreeing, *differ)
        not_passed = [f"{w}: {verdicts[w][p]}" for w in chains if verdicts[w][p] != "pass"]
        message = "; ".join(not_passed + differ) or "all agree"
        rows.append(
            GradientVerification(
                name, p, (*agreeing, "finite differences") if agreeing else (), disagreeing, max(pairs),
                "chain", time.perf_counter() - t0, message,
            )
        )
    return LayerVerification(name, sizes, tuple(rows), 0.0, time.perf_counter() - start)


def failed_verification(name: str, exc: BaseException, seconds: float) -> LayerVerification:
    """A layer that could not be derived, compiled or evaluated: one failing row with the reason."""
    reason = f"could not be verified: {type(exc).__name__}: {exc}"
    row = GradientVerification(name, "-", (), ("derivation",), float("nan"), "none", seconds, reason)
    return LayerVerification(name, {}, (row,), 0.0, seconds)


# Two evaluations of the same gradient (the index form entry by entry, the tree with whole arrays): rounding only.
_LANGUAGE_AGREEMENT = 1e-9
_LANGUAGE_DRAWS = (101, 202)


_LANGUAGE_CHECKED: dict[tuple[str, str, Any], str | None] = {}


def language_form_check(d: Any, arg_name: str) -> str | None:
    """None when the gradient's language form agrees with its index form in this run (checked once per process for
    each distinct form); otherwise what went wrong."""
    form = d.gradients[arg_name].language
    if form is None:
        return "there is no language form"
    key = (d.layer.name, arg_name, (form.node, form.named, form.index))
    if key not in _LANGUAGE_CHECKED:
        _LANGUAGE_CHECKED[key] = _language_disagreement(d, arg_name, form)
    return _LANGUAGE_CHECKED[key]


def reading_check(d: Any, arg_name: str) -> str | None:
    """None when the matrix language's reading of a gradient SymPy also holds agrees with its index form in this run
    (checked once per process for each distinct reading); otherwise what went wrong."""
    form = d.gradients[arg_name].reading
    if form is None:
        return "there is no reading by the matrix language"
    key = (d.layer.name, arg_name, ("reading", form.node))
    if key not in _LANGUAGE_CHECKED:
        _LANGUAGE_CHECKED[key] = _language_disagreement(d, arg_name, form)
    return _LANGUAGE_CHECKED[key]


_NAMED_CHECKED: dict[tuple[str, str, Any], str | None] = {}


def named_index_check(d: Any, arg_name: str) -> str | None:
    """None when the gradient's index form in its statistics' names (μ, σ, x̂ from their definitions) agrees with
    the index form as derived, at the language forms' draws (checked once per process); otherwise what went wrong."""
    g = d.gradients[arg_name]
    if g.named is None:
        return "there is no index form in named statistics"
    key = (d.layer.name, arg_name, (g.named.expr, g.named.definitions))
    if key not in _NAMED_CHECKED:
        _NAMED_CHECKED[key] = _named_disagreement(d, g)
    return _NAMED_CHECKED[key]


def _named_disagreement(d: Any, g: Any) -> str | None:
    index = compiled_gradient(d.layer.name, g.arg.name, "index")
    for seed in _LANGUAGE_DRAWS:
        arrays, upstream, sizes = draw_inputs(d, seed)
        want = index(arrays, upstream, sizes)
        with np.errstate(all="ignore"):
            symbols = values_of_symbols(d.built, arrays, upstream, sizes)
            got = g.named.values(d.built, g.index.free, g.arg.letters, symbols, upstream, sizes)
        gap = relative_gap(got, want, ABSOLUTE_BELOW_ONE)
        if not gap <= _LANGUAGE_AGREEMENT:
            return f"differs from the index form by {gap:.3g} (relative) at sizes {sizes}"
    return None


def _language_disagreement(d: Any, arg_name: str, form: LanguageForm) -> str | None:
    """None when the tree agrees with the index form at two random draws; otherwise what went wrong."""
    index = compiled_gradient(d.layer.name, arg_name, "index")
    for seed in _LANGUAGE_DRAWS:
        arrays, upstream, sizes = draw_inputs(d, seed)
        want = index(arrays, upstream, sizes)
        try:
            with np.errstate(all="ignore"):
                got = form.values(d.built, arrays, upstream, sizes)
        except Exception as exc:  # noqa: BLE001 - a tree that does not evaluate is a defect, reported
            return f"does not evaluate ({type(exc).__name__}: {exc})"
        if got.shape != want.shape:
            return f"has shape {got.shape}, not the gradient's {want.shape}"
        gap = relative_gap(got, want, ABSOLUTE_BELOW_ONE)
        if not gap <= _LANGUAGE_AGREEMENT:
            return f"differs from the index form by {gap:.3g} (relative) at sizes {sizes}"
        if form.index is not None:  # the index form in the statistics' names, printed beside it
            named = form.index_values(d.built, d.gradients[arg_name].index.free, arrays, upstream, sizes)
            gap = relative_gap(named, want, ABSOLUTE_BELOW_ONE)
            if not gap <= _LANGUAGE_AGREEMENT:
                return f"is written in names whose index form differs from the one derived by {gap:.3g} at sizes {sizes}"
    return None


def reading_code(d: Any, arg_name: str) -> str | None:
    """The generated NumPy source of a verified reading (:func:`reading_check`), or None where there is none or it
    does not agree with the index form when executed as printed (checked once per process)."""
    g = d.gradients[arg_name]
    if g.reading is None or reading_check(d, arg_name) is not None:
        return None
    key = (d.layer.name, arg_name, ("reading code", g.reading.node))
    if key not in _LANGUAGE_CHECKED:
        source = g.reading.source(d.built, arg_name)
        draws = [(seed, False) for seed in _LANGUAGE_DRAWS]  # the draws its tree was checked at
        _LANGUAGE_CHECKED[key] = source if code_disagreement(d, arg_name, source, draws) is None else None
    return _LANGUAGE_CHECKED[key]


def language_code(d: Any, arg_name: str) -> str | None:
    """The generated NumPy source of a verified language form, or None where there is none or it does not agree
    with the index form when executed as printed (checked once per process)."""
    g = d.gradients[arg_name]
    if g.language is None or language_form_check(d, arg_name) is not None:
        return None
    key = (d.layer.name, arg_name, ("code", g.language.node, g.language.named))
    if key not in _LANGUAGE_CHECKED:
        source = g.language.source(d.built, arg_name)
        draws = [(seed, False) for seed in _LANGUAGE_DRAWS]  # the draws its tree was checked at
        _LANGUAGE_CHECKED[key] = source if code_disagreement(d, arg_name, source, draws) is None else None
    return _LANGUAGE_CHECKED[key]

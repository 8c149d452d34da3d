"""Four witnesses, one verdict: index form, matrix form, finite differences, reference backward.

For one layer at random sizes and values: the lambdified index form, the lambdified matrix
form and the layer's hand-written NumPy backward must agree to rounding (they compute the
same formula), and the numeric checker must pass the reference backward against finite
differences of the reference forward. When something disagrees, every analytic witness is
checked against finite differences, so the report names the witness that is wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivcheck.checker.gradient import check_gradient
from derivcheck.catalog.declarations import Layer
from derivcheck.catalog.registry import get_layer
from derivcheck.catalog.sampling import output_shape, random_sizes, sample_inputs
from derivcheck.symbolic.compile import compile_matrix_form, compiled_gradient
from derivcheck.symbolic.derive import derive

WITNESSES = ("index form", "matrix form", "finite differences", "reference backward")

# The analytic witnesses evaluate one formula in float64 in different orders; sums of up to
# ~10^4 terms differ by at most a few thousand ulps of the largest entry.
AGREEMENT_ULPS = 4096.0
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class GradientVerification:
    """One row: one argument's gradient, the witnesses that agree, the largest difference."""

    layer: str
    arg: str
    agreeing: tuple[str, ...]
    disagreeing: tuple[str, ...]
    max_rel_error: float
    matrix_kind: str
    seconds: float
    message: str

    @property
    def ok(self) -> bool:
        return not self.disagreeing


@dataclass(frozen=True)
class LayerVerification:
    """All rows of one layer at one set of sizes."""

    layer: str
    sizes: dict[str, int]
    rows: tuple[GradientVerification, ...]
    derive_seconds: float
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def _repr_markdown_(self) -> str:
        from derivcheck.report.verification import render_verification_markdown

        return render_verification_markdown([self])

    def _repr_html_(self) -> str:
        from derivcheck.report.verification import render_verification_html

        return render_verification_html([self])

    def _repr_latex_(self) -> str:
        from derivcheck.report.verification import render_verification_latex

        return render_verification_latex([self])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)), 1.0)
    return a.shape == b.shape and float(np.max(np.abs(a - b), initial=0.0)) <= AGREEMENT_ULPS * _EPS * scale


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
    rng = np.random.default_rng(seed)
    # The main job shows real kernels and batches: sizes from 2 (the property tests reach 1).
    sizes = dict(sizes) if sizes is not None else random_sizes(layer, rng, low=2)
    from derivcheck.catalog.sampling import complete_sizes

    sizes = complete_sizes(layer, sizes)
    inputs = sample_inputs(layer, sizes, rng)
    upstream = rng.standard_normal(output_shape(layer, sizes)) if not layer.is_loss else float(rng.uniform(0.5, 2.0))
    reference = {k: np.asarray(v, dtype=float) for k, v in layer.call_backward(upstream, inputs, sizes, backward).items()}
    names = [a.name for a in layer.differentiable]

    def loss(p: dict[str, np.ndarray]) -> float:
        return float(np.sum(upstream * layer.call_forward({**inputs, **p}, sizes)))

    def fd_passes(grads: dict[str, np.ndarray]) -> dict[str, str]:
        report = check_gradient(loss, lambda p: {k: grads[k] for k in names}, {k: inputs[k] for k in names}, seed=seed)
        return {r.name: r.verdict for r in report.params}

    try:
        reference_fd = fd_passes(reference)
    except Exception as exc:  # noqa: BLE001 - a wrong-shaped mutant lands here
        reference_fd = {k: f"error: {exc}" for k in names}
    stepwise = _stepwise_matrix_forms(layer, inputs, upstream)
    rows = []
    for name in names:
        t0 = time.perf_counter()
        g = derivation.gradients[name]
        values = {"index form": compiled_gradient(layer.name, name, "index")(inputs, upstream, sizes)}
        matrix_fn = compiled_gradient(layer.name, name, "matrix")
        kind = g.matrix.kind
        if matrix_fn is not None:
            values["matrix form"] = matrix_fn(inputs, upstream, sizes)
        elif stepwise is not None:
            values["matrix form"], kind = stepwise[name], "steps"
        values["reference backward"] = reference.get(name, np.full(values["index form"].shape, np.nan))
        analytic = list(values)
        cross_check_failed = False
        if g.trace is not None:
            from derivcheck.symbolic.matrix_form import MatrixForm

            traced = compile_matrix_form(derivation.built, MatrixForm("matrix", g.trace), g.arg.letters)
            cross_check_failed = traced is not None and not _agree(traced(inputs, upstream, sizes), values["index form"])
        all_agree = all(_agree(values[a], values[b]) for a in analytic for b in analytic if a < b)
        if all_agree and reference_fd.get(name) == "pass":
            agreeing, disagreeing, message = (*analytic, "finite differences"), (), "all agree"
        else:
            verdicts = {"reference backward": reference_fd.get(name, "missing")}
            for w in analytic:
                if w != "reference backward":
                    verdicts[w] = fd_passes({**reference, **{name: values[w]}}).get(name, "fail") if values[w].shape == values["index form"].shape else "fail"
            agreeing = tuple(w for w in analytic if verdicts[w] == "pass")
            disagreeing = tuple(w for w in analytic if verdicts[w] != "pass")
            agreeing = (*agreeing, "finite differences") if agreeing else agreeing
            if not agreeing:
                disagreeing = (*disagreeing, "finite differences")
            message = "; ".join(f"{w}: {verdicts[w]}" for w in analytic if verdicts[w] != "pass") or "analytic witnesses differ beyond rounding"
        pairs = [_rel(values[a], values[b]) for a in analytic for b in analytic if a < b and values[a].shape == values[b].shape]
        if cross_check_failed:
            disagreeing = (*disagreeing, "matrix calculus cross-check")
            message = f"{message}; SymPy's Trace(G^T Y) derivative differs from the index form"
        rows.append(
            GradientVerification(
                layer.name, name, agreeing, disagreeing, max(pairs, default=0.0), kind,
                time.perf_counter() - t0, message,
            )
        )
    return LayerVerification(layer.name, sizes, tuple(rows), derivation.seconds, time.perf_counter() - start)


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


def verify_model(name: str, *, sizes: Mapping[str, int] | None = None, seed: int = 0) -> LayerVerification:
    """The four witnesses for a model: chains of index-form, matrix-form and reference VJPs,
    and finite differences of the model's loss."""
    from derivcheck.catalog.declarations import Arg
    from derivcheck.catalog.registry import get_model

    model = get_model(name)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    sizes = dict(sizes) if sizes is not None else model.draw_sizes(rng)
    from derivcheck.catalog.sampling import sample_arg

    values = {k: sample_arg(Arg(k, dims, model.domains.get(k, "real")), sizes, rng) for k, dims in model.inputs.items()}
    chains = {w: model.backward(values, rules) for w, rules in (("index form", "index"), ("matrix form", "matrix"), ("reference backward", "reference"))}

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
        if not all(_agree(chains[a][p], chains[b][p]) for a in chains for b in chains if a < b) and not disagreeing:
            disagreeing = ("analytic witnesses differ beyond rounding",)
        message = "all agree" if not disagreeing else "; ".join(f"{w}: {verdicts[w][p]}" for w in chains if verdicts[w][p] != "pass")
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

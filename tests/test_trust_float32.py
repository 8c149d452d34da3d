"""Rounding noise a line's own kinks explain as well stays with that line: float32 ReLU nets keep their power.

Truth here is independent of derivcheck: a planted kink at a known distance with a known slope, and the float32
nets' hand-written backward passes (tests/test_verdicts.py), whose correctness other tests pin by complex step.
"""

from __future__ import annotations

import numpy as np

import derivcheck as dc
from derivcheck.numeric.directional import Probe, directional_test
from derivcheck.numeric.finite_diff import central_difference
from tests.test_verdicts import _relu_net_in_float32

EPS = float(np.finfo(float).eps)
SEEDS = range(20)


def _kinked(t: float) -> float:
    # A kink of slope change 3e-8 at 1e-6 from 0: inside the first stencil (6e-6), stepped over by the next rung,
    # its fourth difference barely above the rounding model's threshold.
    return 1.0 + 0.4 * t + 3e-8 * max(t - 1e-6, 0.0)


def test_noise_charged_for_a_kink_stepped_over_is_this_lines_own_in_low_precision():
    d = central_difference(_kinked, _kinked(0.0), 6e-6, 2 * EPS)
    assert d.refined and d.unproven_noise and d.noise > 2 * EPS
    assert abs(d.value - 0.4) <= 4 * d.error  # truth: the slope on this side of the kink is 0.4

    # Along a kink 1e-3 away (inside float32's first stencil, 5e-3), then along a smooth direction. In float32 the
    # second test starts from the modelled noise: there a clean stencil is confirmed by the next rung anyway.
    e32 = 2.0**-23
    g = {"w": np.array([0.4, np.cos(0.3)])}
    x = {"w": np.array([0.0, 0.3])}

    def loss32(p: dict[str, np.ndarray]) -> float:
        t = float(p["w"][0])
        return float(np.float32(1.0 + 0.4 * t + 1e-2 * max(t - 1e-3, 0.0) + np.sin(p["w"][1])))

    model = 2 * e32 * loss32(x)
    probe = Probe(loss32, x, loss32(x), model, e32, e32)
    first = directional_test(probe, g, {"w": np.array([1.0, 0.0])})
    assert first.passed and first.derivative.unproven_noise and first.derivative.noise > 4 * model
    assert probe.noise == model
    second = directional_test(probe, g, {"w": np.array([0.0, 1.0])})
    assert second.passed and second.derivative.noise < first.derivative.noise

    # In float64 nothing confirms a clean stencil: the charge is carried to the tests after it.
    def loss(p: dict[str, np.ndarray]) -> float:  # the kink at 3e-6: the directional test's first step is 1e-5
        t = float(p["w"][0])
        return 1.0 + 0.4 * t + 3e-8 * max(t - 3e-6, 0.0) + float(np.sin(p["w"][1]))

    probe = Probe(loss, x, loss(x), 2 * EPS, EPS, EPS)
    first = directional_test(probe, g, {"w": np.array([1.0, 0.0])})
    assert first.passed and first.derivative.unproven_noise
    assert probe.noise == first.derivative.noise > 2 * EPS


def test_float32_nets_keep_power_after_the_relu():
    """The loss is smooth in b2 (after the ReLU): its rows pass with single-entry power at most seeds, once the
    noise charged to a b1 entry's stepped-over kinks no longer widens every later test; one entry of db2 off by 2%
    never passes and fails at 19 of 20 seeds (6 of 20 while the charge spread)."""
    passed, failed = 0, 0
    for seed in SEEDS:
        params, loss, grad = _relu_net_in_float32(seed)
        report = dc.check_gradient(loss, grad, params, seed=seed, trace=False)
        assert report.verdict != "fail", seed
        row = next(r for r in report.params if r.name == "b2")
        assert row.verdict != "pass" or row.single_entry_floor <= 1e-2, (seed, row)
        passed += row.verdict == "pass"

        def wrong(p: dict[str, np.ndarray], grad=grad) -> dict[str, np.ndarray]:
            out = dict(grad(p))
            db2 = out["b2"].copy()
            db2[int(np.argmax(np.abs(db2)))] *= 1.02
            out["b2"] = db2
            return out

        verdict = dc.check_gradient(loss, wrong, params, seed=seed, trace=False).verdict
        assert verdict != "pass", seed
        failed += verdict == "fail"
    assert passed >= 16 and failed >= 19, (passed, failed)


def _sure_softmax_in_float32(seed: int) -> tuple[np.ndarray, object, object, np.ndarray]:
    """A cross-entropy over 8 predictions sure to a margin of 12, its parameters float32; the loss takes float64
    copies, and the gradient computes softmax minus one-hot at whatever dtype it is given, returning float32."""
    z = np.random.default_rng(seed).standard_normal((8, 10)).astype(np.float32)
    z[:, 0] += 12

    def loss(z):
        m = z.max(1, keepdims=True)
        return float(np.mean(m[:, 0] + np.log(np.exp(z - m).sum(1)) - z[:, 0]))

    def grad(z):
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[:, 0] -= 1  # 1 - 2e-4 in float32 rounds at 6e-8 of 1: a thousandth of p - 1
        return (p / 8).astype(np.float32)

    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[:, 0] = -(p[:, 1:].sum(1))  # truth: p - 1 without the cancellation
    return z, loss, grad, p / 8


def test_a_float32_gradient_is_judged_by_the_rounding_it_was_computed_with():
    # Truth: the exact gradient in float64 (p - 1 as minus the other probabilities). The float32 code's p - 1 is off
    # by 1e-3 of itself, 1,500 times float32's rounding of the gradient's largest entry: a tolerance of a few ulps
    # failed it at every seed. The gradient at the float64 copy measures that rounding, one more gradient call, and
    # the check says so. It passes, or where that rounding hides a single entry's 1% is inconclusive; 5% off still
    # fails; the float64 reference passes alone.
    passed = 0
    for seed in SEEDS:
        z, loss, grad, truth = _sure_softmax_in_float32(seed)
        assert np.max(np.abs(grad(z) - truth)) > 100 * 2.0**-24 * np.max(np.abs(truth))  # far above a few ulps
        report = dc.check_gradient(loss, grad, z, seed=seed, trace=False)
        assert report.verdict != "fail", (seed, str(report))
        passed += report.ok
        assert any("own rounding at float32" in f.message for f in report.findings)
        off = dc.check_gradient(loss, lambda z: 1.05 * grad(z), z, seed=seed, trace=False)
        assert off.verdict == "fail", seed
        assert dc.check_gradient(loss, lambda z: truth, z.astype(np.float64), seed=seed, trace=False).ok
    assert passed >= 15


def test_a_gradient_that_depends_on_its_dtype_is_not_excused_as_rounding():
    # Truth: the derivative of sum(sin w) is cos w. This gradient is right when given float64, and in float32 one of
    # its 40 entries is off by 5% of the largest: along the joint directions a small disagreement, which rounding
    # might explain, so the float64 call is made; it differs from the float32 one by far more than rounding, so
    # nothing is charged, the report says why, and the FAIL stands. Off by 30% everywhere, no call is spent.
    for seed in SEEDS:
        w = np.random.default_rng(seed).standard_normal(40).astype(np.float32)

        def grad(w):
            g = np.cos(w)
            if w.dtype == np.float32:
                g[3] += 0.05 * np.max(np.abs(g))
            return g

        report = dc.check_gradient(lambda w: float(np.sum(np.sin(w))), grad, w, seed=seed, trace=False)
        assert report.verdict == "fail", seed
        assert any("more than rounding" in f.message for f in report.findings), seed
        far = dc.check_gradient(lambda w: float(np.sum(np.sin(w))), lambda w: np.cos(w) * (1.0 if w.dtype == np.float64
                                else 1.3), w, seed=seed, trace=False)
        assert far.verdict == "fail" and far.evaluations.grad == 3, seed


def test_a_gradient_that_refuses_a_finer_precision_is_judged_without_it():
    # Truth: d/dw sum(sin w) = cos w, here 1% off. A gradient that raises on any dtype but its own gives no finer
    # measure of its rounding: the check goes on without it, and the 1% still fails (float32 and float64).
    for dtype in (np.float32, np.float64):
        for seed in SEEDS:
            w = np.random.default_rng(seed).standard_normal(5).astype(dtype)

            def grad(v, dtype=dtype):
                if v.dtype != dtype:
                    raise TypeError(f"expected {np.dtype(dtype).name}")
                return 1.01 * np.cos(v)

            report = dc.check_gradient(lambda v: float(np.sum(np.sin(v))), grad, w, seed=seed, trace=False)
            assert report.verdict == "fail", (dtype, seed)


def _tanh_softmax_casting_its_argument(seed: int) -> tuple[dict, object, object]:
    """float32 parameters, float64 data and one-hot labels, and a loss that casts its argument to float32 first (as
    a float32 pipeline does): it accepts float64 copies, and rounds them. Its gradient is exact, at the float32
    point, rounded to float32."""
    rng = np.random.default_rng(seed)
    x, labels = rng.standard_normal((6, 4)), np.eye(3)[rng.integers(0, 3, 6)]
    params = {"w1": rng.standard_normal((4, 5)).astype(np.float32), "b1": np.zeros(5, np.float32),
              "w2": rng.standard_normal((5, 3)).astype(np.float32)}

    def forward(p):
        h = np.tanh(x @ p["w1"] + p["b1"])
        z = h @ p["w2"]
        e = np.exp(z - z.max(1, keepdims=True))
        return h, e / e.sum(1, keepdims=True)

    def loss(p):
        p = {k: np.asarray(v).astype(np.float32) for k, v in p.items()}  # rounds a float64 copy back
        return float(-np.sum(labels * np.log(forward(p)[1])) / 6)

    def grad(p):
        p = {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}
        h, prob = forward(p)
        dz = (prob - labels) / 6
        dh = (dz @ p["w2"].T) * (1 - h**2)
        return {k: v.astype(np.float32) for k, v in {"w1": x.T @ dh, "b1": dh.sum(0), "w2": h.T @ dz}.items()}

    return params, loss, grad


def test_a_loss_that_rounds_its_float64_copies_back_to_float32_is_differenced_in_float32():
    """Differenced in float64, its values stay put below a float32 step and jump at one: a correct gradient failed
    at most seeds. The check sees the rounding (a quarter step changes nothing, four steps do) and says so."""
    for seed in range(20):
        params, loss, grad = _tanh_softmax_casting_its_argument(seed)
        report = dc.check_gradient(loss, grad, params, seed=seed, trace=False)
        assert report.verdict == "pass" and report.evaluated_in == "float32", (seed, report.verdict)
        assert any(f.kind == "float32" and "rounds its argument back" in f.message for f in report.findings)
        wrong = dc.check_gradient(loss, lambda p: {k: 1.05 * v for k, v in grad(p).items()}, params, seed=seed,
                                  trace=False)
        assert wrong.verdict == "fail", seed


def _catalog_cnn_in_float32(seed: int) -> tuple[dict, object, object]:
    """The catalog's conv net computed wholly in float32 (data, labels and parameters), and its exact gradient at
    the float32 point (the reference backward, verified against the symbolic witnesses) rounded to float32."""
    from derivcheck.catalog.declarations import Arg
    from derivcheck.catalog.registry import get_model
    from derivcheck.catalog.sampling import sample_arg

    model = get_model("cnn")
    rng = np.random.default_rng(seed)
    sizes = model.draw_sizes(rng)
    values = {k: sample_arg(Arg(k, dims, model.domains.get(k, "real")), sizes, rng) for k, dims in model.inputs.items()}
    low = {k: np.asarray(v).astype(np.float32) for k, v in values.items()}

    def loss(p):
        return model.loss({**low, **{k: np.asarray(v).astype(np.float32) for k, v in p.items()}})

    def grad(p):
        g = model.backward({**values, **{k: np.asarray(v, dtype=np.float64) for k, v in p.items()}}, None)
        return {k: g[k].astype(np.float32) for k in model.params}

    return {k: low[k] for k in model.params}, loss, grad


def test_a_float32_cross_entropy_on_a_stretched_grid_is_not_failed():
    """Confident float32 conv nets. At draw 48647418 the cross-entropy of 1e-3, -log p with p on float32's grid
    near 1, moves in steps of 2^-23 stretched by 1/p, a thousand of its own ulps, on no lattice the search reads:
    entry checks read at float32's own noise failed dk and dw. A walk's smallest change, far above the values' ulp,
    is now the step its slope test weighs, and a plain low-precision FAIL is read between its stencil's points; a
    gradient 5% off still fails. At draws 381654049 and 1058758870 the loss is 1e-14 and 4e-7 and never moves at
    a float32 step: differenced in float64 (no quarter-step probe reached far enough) or walked out to where p
    rounds to 1 and the loss sits at 0, every correct entry failed. They are undecided now: no step resolves
    gradients of 1e-6 there."""
    for draw in (48647418, 381654049, 1058758870):
        params, loss, grad = _catalog_cnn_in_float32(draw)
        assert dc.check_gradient(loss, grad, params, seed=draw, trace=False).verdict != "fail", draw
    params, loss, grad = _catalog_cnn_in_float32(48647418)
    wrong = dc.check_gradient(loss, lambda p: {k: 1.05 * v for k, v in grad(p).items()}, params, seed=48647418,
                              trace=False)
    assert wrong.verdict == "fail"

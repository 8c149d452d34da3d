"""A low-precision stencil proven free of kinks by the gradient's own slopes at its points.

Truth is independent of derivcheck: closed-form functions and derivatives (sines, a planted kink or jump at a known
place), and a float32 tanh net whose hand-written backward is pinned here by complex step on its float64 twin.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import derivcheck as dc
from derivcheck.checker.outcome import Tested as Recorded  # (not collected as a test class)
from derivcheck.numeric.directional import DirectionalTest, Probe, _finer_certified
from derivcheck.numeric.finite_diff import Derivative, certified_difference, proven_again
from derivcheck.report.gradient import _direction_rows
from derivcheck.report.results import Evaluations, GradientReport
from derivcheck.numeric.tolerances import ESTIMATE_SAFETY
from tests.test_verdicts import _relu_net_in_float32

SEEDS = range(20)
E32 = 2.0**-23


def _rounded32(f):
    return lambda t: float(np.float32(f(t)))


def _exact_slopes(df, rounding=1e-16):
    return lambda h: ((df(-h), df(-h / 2), df(0.0), df(h / 2), df(h)), rounding)


waves = st.lists(st.tuples(st.floats(0.1, 2.0), st.floats(0.2, 20.0), st.floats(0.0, 6.3)), min_size=1, max_size=4)


@given(waves, st.sampled_from([5e-3, 2e-2]))
def test_a_proven_stencil_covers_the_true_slope_of_a_smooth_float32_line(terms, h):
    def f(t):
        return 1.0 + sum(a * math.sin(b * t + c) for a, b, c in terms)

    def df(t):
        return sum(a * b * math.cos(b * t + c) for a, b, c in terms)

    noise = 2 * E32 * max(1.0, abs(f(0.0)) + sum(a for a, _, _ in terms))
    d = certified_difference(_rounded32(f), float(np.float32(f(0.0))), h, noise, _exact_slopes(df))
    if isinstance(d, Derivative):
        assert d.certified and abs(d.value - df(0.0)) <= ESTIMATE_SAFETY * d.error


@given(st.floats(0.05, 0.95), st.sampled_from([-1.0, 1.0]), st.floats(0.2, 5.0), st.floats(-2.0, 2.0))
def test_a_kink_inside_the_stencil_is_never_proven_into_a_false_value(where, side, jump, slope):
    """One kink at any distance inside the stencil (not at 0): what is proven still covers the slope at 0."""
    h = 2e-2
    s0 = side * where * h

    def f(t):
        return 1.0 + slope * t + jump * max(t - s0, 0.0)

    def df(t):
        return slope + (jump if t > s0 else 0.0)

    d = certified_difference(f, f(0.0), h, 2 * E32, _exact_slopes(df, 1e-12))
    if isinstance(d, Derivative):
        assert abs(d.value - df(0.0)) <= ESTIMATE_SAFETY * d.error
    else:
        assert d in ("kinks", "noise")


def test_what_is_not_proven_says_why():
    smooth = _exact_slopes(math.cos)
    assert isinstance(certified_difference(math.sin, 0.0, 2e-2, 1e-16, smooth), Derivative)
    kinked = _exact_slopes(lambda t: 1.0 if t > 3e-3 else 0.0)
    assert certified_difference(lambda t: max(t - 3e-3, 0.0), 0.0, 2e-2, 1e-16, kinked) == "kinks"
    noisy = np.random.default_rng(0).standard_normal(64) * 1e-9
    values = iter(noisy)
    assert certified_difference(lambda t: math.sin(t) + next(values), 0.0, 2e-2, 1e-16, smooth) == "noise"
    # A jump of 1e-3 at 0 (odd: its fourth difference is zero): the slopes cannot explain D(h/2) - D(h).
    assert certified_difference(lambda t: math.sin(t) + math.copysign(5e-4, t) * (t != 0), 0.0, 2e-2, 1e-16,
                                smooth) == "jump"


def _tanh_net(seed: int, dtype=np.float32, sigmoid: bool = False):
    rng = np.random.default_rng(seed)
    n, d, h, m = (int(v) for v in rng.integers((8, 4, 8, 2), (40, 30, 60, 6)))
    x, y = rng.standard_normal((n, d)), rng.integers(0, m, n)
    params = {"w1": rng.standard_normal((d, h)) / np.sqrt(d), "b1": rng.standard_normal(h) * 0.1,
              "w2": rng.standard_normal((h, m)) / np.sqrt(h), "b2": np.zeros(m)}
    x, params = x.astype(dtype), {k: v.astype(dtype) for k, v in params.items()}
    onehot = np.eye(m, dtype=dtype)[y]

    def forward(p):
        p = {k: v.astype(dtype) for k, v in p.items()}  # computed in dtype, whatever it is given
        z = x @ p["w1"] + p["b1"]
        a = 0.5 * (1 + np.tanh(0.5 * z)) if sigmoid else np.tanh(z)
        s = a @ p["w2"] + p["b2"]
        e = np.exp(s - s.max(1, keepdims=True).real)
        return p, a, e / e.sum(1, keepdims=True)

    def loss(p):
        value = -np.log(forward(p)[2][np.arange(n), y]).mean()
        return value if np.iscomplexobj(value) else float(value)

    def grad(p):
        p, a, prob = forward(p)
        ds = (prob - onehot) / n
        dz = ds @ p["w2"].T * (a * (1 - a) if sigmoid else 1 - a**2)
        return {"w1": x.T @ dz, "b1": dz.sum(0), "w2": a.T @ ds, "b2": ds.sum(0)}

    return params, loss, grad


def tanh_net_in_float32(seed: int):
    """A tanh net computed in float32 whatever it is given: (params, loss, grad)."""
    return _tanh_net(seed)


def test_the_tanh_nets_backward_is_right_by_complex_step():
    for seed in (0, 4):
        params, loss, grad = _tanh_net(seed, np.complex128)
        real = {k: v.real.astype(float) for k, v in params.items()}
        g = grad(real)
        for k, v in real.items():
            for i in range(0, v.size, max(v.size // 7, 1)):
                bumped = {n: a.astype(np.complex128) for n, a in real.items()}
                bumped[k].reshape(-1)[i] += 1e-30j
                assert abs(loss(bumped).imag / 1e-30 - np.real(g[k]).reshape(-1)[i]) <= 1e-12


def test_a_smooth_float32_net_passes_with_single_entry_power_at_every_seed():
    params, loss, grad = tanh_net_in_float32(0)
    for seed in SEEDS:
        report = dc.check_gradient(loss, grad, params, seed=seed, trace=False)
        assert report.verdict == "pass", seed
        assert all(r.single_entry_floor <= 1e-2 for r in report.params), seed
        assert {d.kind for d in report.directions} == {"smooth"}, seed  # proven: no finer rung, no entry checks


def _planted(grad, params, name: str, how: str, size: float):
    at_x = grad(params)[name].reshape(-1)
    top, i = float(np.max(np.abs(at_x))), int(np.argsort(np.abs(at_x))[at_x.size // 2])  # a middling entry

    def wrong(p):
        out = grad(p)
        a = out[name].reshape(-1).copy()
        if how == "entry":  # a share of the largest entry at x, added to one fixed entry
            a[i] += size * top
        else:
            a *= 1 + size
        out[name] = a.reshape(out[name].shape).astype(np.float32)
        return out
    return wrong


def test_errors_a_smooth_float32_pass_claims_to_see_fail_at_every_seed():
    """The pass claims single-entry floors of 1% of each parameter's largest entry: one entry off by that much,
    or every entry off by 1%, fails at every seed."""
    params, loss, grad = tanh_net_in_float32(0)
    for name in params:
        for how in ("entry", "scale"):
            wrong = _planted(grad, params, name, how, 0.01)
            verdicts = {dc.check_gradient(loss, wrong, params, seed=s, trace=False).verdict for s in SEEDS}
            assert verdicts == {"fail"}, (name, how, verdicts)


def test_float32_relu_nets_are_never_failed_through_kinked_stencils():
    """The ReLU nets' wide first stencils cross kinks: the slopes say so, and a disagreement read through them is
    retried finer or left undecided, never failed."""
    for seed in SEEDS:
        params, loss, grad = _relu_net_in_float32(seed)
        assert dc.check_gradient(loss, grad, params, seed=seed, trace=False).verdict != "fail", seed


def _line_case():
    """A float32 line with slope 1 and a Derivative read through it that is off by 0.05 (as kinks would put it)."""
    phi = _rounded32(lambda t: 1.0 + t)
    kinked = Derivative(1.05, 1e-3, 1.05, 1.05, False, 1e-2, 4, False, 2 * E32)
    return phi, kinked


def test_a_disagreement_read_through_kinks_is_retried_finer_and_otherwise_undecided():
    phi, kinked = _line_case()
    tolerance_of = lambda d: ESTIMATE_SAFETY * d.error  # noqa: E731
    jumpy = lambda h: ((0.0, 2.0, 1.0, 0.0, 2.0), 1e-9)  # noqa: E731  (kinks at every scale tried)
    undecided = _finer_certified(Probe(phi, {}, 1.0, 2 * E32, E32, E32), phi, 1.0, kinked, 1.0, jumpy,
                                 tolerance_of, 4e-3, 2 * E32)
    assert undecided.passed and not undecided.decides and undecided.resolution == "kinks in the stencil"
    # The slopes of a straight line prove the finer stencil: its value (1) stands, the analytic 1 passes.
    straight = _exact_slopes(lambda t: 1.0, 1e-9)
    proven = _finer_certified(Probe(phi, {}, 1.0, 2 * E32, E32, E32), phi, 1.0, kinked, 1.0, straight,
                              tolerance_of, 4e-3, 2 * E32)
    assert proven.passed and proven.decides and proven.derivative.certified
    # A wrong analytic value fails on the proven stencil.
    wrong = _finer_certified(Probe(phi, {}, 1.0, 2 * E32, E32, E32), phi, 1.0, kinked, 1.2, straight,
                             tolerance_of, 4e-3, 2 * E32)
    assert not wrong.passed and wrong.decides
    # Rounding the ladder measured beyond the model, and no stencil proven: the ladder's FAIL stands.
    noisy = replace(kinked, noise=1e-3)
    stands = _finer_certified(Probe(phi, {}, 1.0, 2 * E32, E32, E32), phi, 1.0, noisy, 1.0, jumpy,
                              tolerance_of, 4e-3, 2 * E32)
    assert not stands.passed and stands.decides


def test_an_undecided_direction_is_shown_as_deciding_nothing():
    phi, kinked = _line_case()
    test = DirectionalTest(kinked, 1.0, 4e-3, True, "kinks in the stencil")
    check = Recorded("random", {"w": np.ones(3)}, test, []).as_check()
    assert check.kind == "kinks"
    report = GradientReport("inconclusive", (), {}, (), (), None, Evaluations(0, 0), 0.0, 0, "float32",
                            directions=(check,))
    row = _direction_rows(report)[0]
    assert row[-2:] == ("kinks", "-")


def test_a_proven_disagreement_stands_only_where_half_the_step_proves_it_again():
    # Smooth: the residual shrinks 16-fold and the values agree.
    d = certified_difference(math.sin, 0.0, 2e-2, 1e-16, _exact_slopes(math.cos))
    assert isinstance(d, Derivative) and proven_again(math.sin, 0.0, d, 1e-16, _exact_slopes(math.cos))

    # A kink at 0.1 h whose residual a second kink at 0.9 h cancels (jumps 1 and 3: 1 - 4 + 3 = 0): the stencil at h
    # proven by fiat, as a cancellation would; at h/2 the far kink drops out and the residual stays.
    h = 2e-2

    def f(t):
        return 0.5 * t + max(t - 0.1 * h, 0.0) + 3 * max(t - 0.9 * h, 0.0)

    def df(t):
        return 0.5 + (1.0 if t > 0.1 * h else 0.0) + (3.0 if t > 0.9 * h else 0.0)

    fooled = Derivative(0.83, 1e-6, 0.83, 0.83, False, h, 4, False, 1e-16, certified=True, residual=0.0)
    assert not proven_again(f, f(0.0), fooled, 1e-16, _exact_slopes(df))


def test_a_random_part_that_drew_no_entry_is_not_tested():
    """9 bias entries split in 4 random parts: a part may draw none, and a direction of zeros sees nothing."""
    params, loss, grad = _tanh_net(5, sigmoid=True)
    report = dc.check_gradient(loss, grad, params, seed=2, trace=False)
    parts = [d for d in report.directions if " part " in d.label]
    assert report.verdict != "fail" and parts and all(d.analytic != 0 or d.numeric != 0 for d in parts)
    assert "signs, b1 part 3/4" in [d.label for d in parts]  # the parts were tested in order, past the third
    assert "signs, b1 part 4/4" not in [d.label for d in parts]  # the part of this draw that holds no entry

"""Causes that were printed for bugs they did not explain, each pinned: the bug is planted, the truth is
the forward itself (the checker differentiates it), and the test asserts the false cause is gone while the
verdict stays a failure."""

from __future__ import annotations

import numpy as np
import pytest

import derivcheck as dc

SEEDS = range(3)


def _errors(report: dc.GradientReport) -> list[dc.Finding]:
    return [f for f in report.findings if f.severity == "error"]


def _text(report: dc.GradientReport) -> str:
    return " ".join(f.message for f in _errors(report))


# --- max-pool backward passes that mishandle ties: no shift, no "small and spread" --------------------

def _pool(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _winners(x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2)
    return win == win.max(axis=(3, 5), keepdims=True)


def pool_drops_tied_windows(dout, x):
    mask = _winners(x)
    mask = mask & (mask.sum(axis=(3, 5), keepdims=True) == 1)
    return ((mask * dout[:, :, :, None, :, None]).reshape(x.shape),)


def pool_copies_to_every_tie(dout, x):
    return ((_winners(x) * dout[:, :, :, None, :, None]).reshape(x.shape),)


def pool_swaps_height_and_width(dout, x):
    return ((_winners(x) * np.swapaxes(dout, 2, 3)[:, :, :, None, :, None]).reshape(x.shape),)


@pytest.mark.parametrize("backward", [pool_drops_tied_windows, pool_copies_to_every_tie, pool_swaps_height_and_width])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_pooling_backward_wrong_at_ties_is_not_called_a_shift_or_small_and_spread(backward, seed):
    x = np.random.default_rng(3 + seed).integers(0, 3, (2, 2, 6, 6)).astype(float)  # integer images: many ties
    report = dc.check_backward(_pool, backward, (x,), seed=seed)
    assert report.verdict == "fail"
    assert "shift" not in [f.kind for f in _errors(report)], str(report)
    assert "small and spread" not in _text(report) and "padding" not in _text(report)


def test_when_every_entry_passes_alone_the_report_says_so_and_names_the_kinks():
    x = np.random.default_rng(3).integers(0, 3, (2, 2, 6, 6)).astype(float)
    report = dc.check_backward(_pool, pool_copies_to_every_tie, (x,))
    text = _text(report)
    if "within its own valid range" in text:  # the per-entry evidence showed nothing wrong on its own
        assert "sit at kinks" in text and "No single cause" in text


# --- an embedding updated with fancy-index += (a repeated id counted once), as a whole loss ----------

@pytest.mark.parametrize("seed", SEEDS)
def test_a_repeated_id_counted_once_is_not_called_a_shift(seed):
    rng = np.random.default_rng(seed)
    ids = np.array([1, 4, 1, 0, 4, 4, 2, 6, 9, 9])
    target = rng.standard_normal((ids.size, 5))

    def loss(w):
        return float(np.sum((w[ids] - target) ** 2) / 2)

    def grad(w):
        dw = np.zeros_like(w)
        dw[ids] += w[ids] - target  # counts a repeated id once
        return dw

    report = dc.check_gradient(loss, grad, rng.standard_normal((10, 5)), seed=seed)
    assert report.verdict == "fail"
    assert "shift" not in [f.kind for f in _errors(report)], str(report)


# --- a pattern along an axis whose meaning is unknown is stated, not explained -----------------------

def test_only_one_right_row_of_a_weight_is_a_pattern_not_time_or_a_first_sample():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    t = rng.standard_normal((6, 3))

    def loss(w):
        return float(np.sum((x @ w - t) ** 2) / 2)

    def grad(w):
        g = x.T @ (x @ w - t)
        g[1:] *= 3.0 + np.arange(3)[:, None] * np.array([0.5, 1.5, 2.0])  # only row 0 is right, no common factor
        return g

    report = dc.check_gradient(loss, grad, rng.standard_normal((4, 3)), mode="full")
    text = _text(report)
    assert report.verdict == "fail"
    assert "through time" not in text and "dh_next" not in text and "first sample" not in text, text


# --- one wrong entry: the entry, not a guessed cause -------------------------------------------------

@pytest.mark.parametrize("shape", [(1,), (5,), (3, 4)])
def test_one_wrong_entry_is_listed_without_a_guessed_indexing_slip(shape):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(shape)

    def grad(v):
        g = 2 * v
        g.reshape(-1)[0] *= 32.0
        return g

    report = dc.check_gradient(lambda v: float(np.sum(v**2)), grad, w)
    assert report.verdict == "fail"
    assert "indexing slip" not in _text(report) and "off-by-one" not in _text(report), str(report)


# --- second order: the finding speaks of what was checked ---------------------------------------------

def test_an_all_zero_hessian_is_not_called_a_gradient_never_written():
    w = np.array([0.3, -0.7, 1.1])
    hvp = dc.check_hvp(np.cos, lambda v, u: np.zeros_like(v), w)
    hessian = dc.check_hessian(lambda v: float(np.sum(np.sin(v))), lambda v: np.zeros((3, 3)), w)
    for report, subject in ((hvp, "Hessian-vector product"), (hessian, "Hessian")):
        zero = [f for f in _errors(report) if f.kind == "zero"]
        assert zero and all(f"the {subject} is never written" in f.message for f in zero), str(report)
        assert "the gradient is never written" not in _text(report)


# --- batch norm with an eps mismatch: not blamed on the batch reduction --------------------------------

def _bn_forward(x, g, b, eps=1e-5):
    xh = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)
    return g * xh + b


def _bn_backward_other_eps(dout, x, g, b, eps=1e-3):
    n = x.shape[0]
    xh = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)
    dxh = dout * g
    dx = (dxh * n - dxh.sum(0) - xh * (dxh * xh).sum(0)) / (n * np.sqrt(x.var(0) + eps))
    return dx, (dout * xh).sum(0), dout.sum(0)


@pytest.mark.parametrize("scale", [1.0, 0.1, 0.01])
def test_a_batch_norm_eps_mismatch_is_not_blamed_on_the_batch_reduction(scale):
    rng = np.random.default_rng(1)
    x = scale * rng.standard_normal((8, 4))
    report = dc.check_backward(_bn_forward, _bn_backward_other_eps, (x, rng.standard_normal(4), rng.standard_normal(4)))
    assert report.verdict == "fail"
    assert all(f.kind not in ("batch_size_one", "mean_vs_sum") for f in report.findings), str(report)


def test_a_wrong_batch_reduction_in_a_per_sample_layer_is_still_named():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    report = dc.check_backward(lambda x, w, b: x @ w + b,
                               lambda dy, x, w, b: (dy @ w.T, x.T @ dy, dy.mean(axis=0)), (x, w, b))
    assert report.verdict == "fail"
    assert {"batch_size_one", "mean_vs_sum"} & {f.kind for f in report.findings}, str(report)

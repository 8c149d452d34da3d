"""Parameters as the structures users have: nested dicts, lists, tuples, named tuples, dataclasses;
layers with several outputs and with inputs that are not arrays (held fixed)."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import derivcheck as dc
from derivcheck.checker.parameters import tree_flatten, tree_unflatten
from derivcheck.errors import GradientShapeError, InputError

Pair = namedtuple("Pair", "w b")


@dataclass(frozen=True)
class Layer:
    w: np.ndarray
    b: np.ndarray


def _tree(draw_leaf):
    """Nested dicts, lists, tuples, named tuples and dataclasses of leaves."""
    return st.recursive(
        draw_leaf,
        lambda kids: st.one_of(
            st.dictionaries(st.sampled_from("abcd"), kids, min_size=1, max_size=3),
            st.lists(kids, min_size=1, max_size=3),
            st.lists(kids, min_size=1, max_size=3).map(tuple),
            st.tuples(kids, kids).map(lambda t: Pair(*t)),
            st.tuples(kids, kids).map(lambda t: Layer(*t)),
        ),
        max_leaves=6,
    )


@given(_tree(st.text(max_size=2)))
def test_flatten_then_unflatten_is_the_identity_and_names_are_unique(tree):
    leaves, d = tree_flatten(tree)
    assert tree_unflatten(d, [v for _, v in leaves]) == tree
    names = [n for n, _ in leaves]
    assert len(set(names)) == len(names) or not isinstance(tree, (dict, list, tuple, Pair, Layer))


def _loss(p):  # the same function of the same arrays, whatever the structure holds them
    return float(np.sum(np.sin(p["enc"]["w"])) + np.sum(p["enc"]["b"] ** 3) + np.sum(p["layers"][0].w * p["layers"][1].b))


def _grad(p, bug=False):
    l0, l1 = p["layers"]
    return {"enc": {"w": np.cos(p["enc"]["w"]), "b": (2 if bug else 3) * p["enc"]["b"] ** 2},
            "layers": [Pair(l1.b, np.zeros_like(l0.b)), Layer(np.zeros_like(l1.w), l0.w)]}


def _params(rng):
    return {"enc": {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)},
            "layers": [Pair(rng.standard_normal(4), rng.standard_normal(1)), Layer(rng.standard_normal(3), rng.standard_normal(4))]}


def test_a_nested_structure_is_checked_with_its_leaves_named_by_path(rng):
    params = _params(rng)
    before = {n: a.copy() for n, a in tree_flatten(params)[0]}
    report = dc.check_gradient(_loss, _grad, params)
    assert report.verdict == "pass", str(report)
    assert [p.name for p in report.params] == ["enc.w", "enc.b", "layers[0].w", "layers[0].b", "layers[1].w", "layers[1].b"]
    wrong = dc.check_gradient(_loss, lambda p: _grad(p, bug=True), params)
    assert wrong.verdict == "fail" and [p.name for p in wrong.params if p.verdict == "fail"] == ["enc.b"]
    assert all(np.array_equal(a, before[n]) for n, a in tree_flatten(params)[0])  # never modified


def test_a_gradient_of_another_structure_is_an_error_naming_where(rng):
    params = _params(rng)

    def missing(p):
        g = _grad(p)
        del g["enc"]["b"]
        return g

    with pytest.raises(GradientShapeError, match=r"at 'enc' with keys \['w'\]; expected exactly the parameters' keys \['w', 'b'\]"):
        dc.check_gradient(_loss, missing, params)
    with pytest.raises(InputError, match="dict, list, tuple, named tuple or dataclass"):
        dc.check_gradient(_loss, _grad, {1, 2})


# --- layers: several outputs (cs231n's LSTM step), non-array inputs held fixed (batch norm's bn_param) ----

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_step_forward(x, prev_h, prev_c, wx, wh, b):
    h = prev_h.shape[1]
    a = x @ wx + prev_h @ wh + b
    i, f, o, g = _sigmoid(a[:, :h]), _sigmoid(a[:, h:2 * h]), _sigmoid(a[:, 2 * h:3 * h]), np.tanh(a[:, 3 * h:])
    next_c = f * prev_c + i * g
    return o * np.tanh(next_c), next_c, (x, prev_h, prev_c, wx, wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache, forget_path=True):
    x, prev_h, prev_c, wx, wh, i, f, o, g, next_c = cache
    t = np.tanh(next_c)
    dc_ = (dnext_c if forget_path else 0) + dnext_h * o * (1 - t ** 2)
    da = np.hstack([dc_ * g * i * (1 - i), dc_ * prev_c * f * (1 - f), dnext_h * t * o * (1 - o), dc_ * i * (1 - g ** 2)])
    return da @ wx.T, da @ wh.T, dc_ * f, x.T @ da, prev_h.T @ da, da.sum(0)


def _lstm_inputs(rng, n=3, d=4, h=2):
    return (rng.standard_normal((n, d)), rng.standard_normal((n, h)), rng.standard_normal((n, h)),
            rng.standard_normal((d, 4 * h)), rng.standard_normal((h, 4 * h)), rng.standard_normal(4 * h))


def test_a_layer_with_two_outputs_gets_one_upstream_gradient_each(rng):
    inputs = _lstm_inputs(rng)
    report = dc.check_backward(lstm_step_forward, lstm_step_backward, inputs)
    assert report.verdict == "pass", str(report)
    assert any("2 outputs and a cache" in f.message for f in report.findings)
    # Dropping dnext_c from dc makes every gradient that flows through the cell wrong.
    wrong = dc.check_backward(lstm_step_forward, lambda dh, dc_, cache: lstm_step_backward(dh, dc_, cache, False), inputs)
    assert wrong.verdict == "fail" and "prev_c" in [p.name for p in wrong.params if p.verdict == "fail"]


def test_plain_several_outputs_take_backward_of_each_upstream_then_the_inputs(rng):
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    forward = lambda x, w: (np.tanh(x @ w), x @ w)  # noqa: E731

    def backward(dh, dz, x, w):
        da = dh * (1 - np.tanh(x @ w) ** 2) + dz
        return da @ w.T, x.T @ da

    assert dc.check_backward(forward, backward, (x, w)).verdict == "pass"
    assert dc.check_backward(forward, lambda dh, dz, x, w: backward(dh, 0 * dz, x, w), (x, w)).verdict == "fail"


def batchnorm_forward(x, gamma, beta, bn_param):
    mu, var = x.mean(0), x.var(0)
    bn_param["running_mean"] = 0.9 * bn_param.get("running_mean", 0.0) + 0.1 * mu  # updated in place, as cs231n does
    xh = (x - mu) / np.sqrt(var + bn_param["eps"])
    return gamma * xh + beta, (xh, gamma, var, bn_param["eps"])


def batchnorm_backward(dout, cache):
    xh, gamma, var, eps = cache
    dxh = dout * gamma
    dx = (len(dout) * dxh - dxh.sum(0) - xh * (dxh * xh).sum(0)) / (len(dout) * np.sqrt(var + eps))
    return dx, (dout * xh).sum(0), dout.sum(0)


def test_non_array_inputs_are_held_fixed_and_left_untouched(rng):
    bn_param = {"mode": "train", "eps": 1e-5}
    inputs = (rng.standard_normal((6, 3)), rng.standard_normal(3), rng.standard_normal(3), bn_param)
    report = dc.check_backward(batchnorm_forward, batchnorm_backward, inputs)
    assert report.verdict == "pass", str(report)
    assert [p.name for p in report.params] == ["x", "gamma", "beta"]
    assert bn_param == {"mode": "train", "eps": 1e-5}  # the user's dict, never updated by derivcheck's calls
    assert any("held fixed" in f.message and "bn_param" in f.message for f in report.findings)
    wrong = dc.check_backward(batchnorm_forward, lambda d, c: (batchnorm_backward(d, c)[0], d.sum(0), d.sum(0)), inputs)
    assert wrong.verdict == "fail" and [p.name for p in wrong.params if p.verdict == "fail"] == ["gamma"]


def test_a_scalar_hyperparameter_is_held_fixed_too(rng):
    x = rng.standard_normal((4, 3))
    forward = lambda x, alpha: np.where(x > 0, x, alpha * x)  # noqa: E731
    report = dc.check_backward(forward, lambda dy, x, alpha: (dy * np.where(x > 0, 1.0, alpha), None), (x, 0.1))
    assert report.verdict == "pass" and [p.name for p in report.params] == ["x"]


def test_a_backward_may_answer_for_the_arrays_only_leaving_out_options_held_fixed(rng):
    x, y = rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])

    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def forward(x, y, options):
        return -np.log(softmax(x)[np.arange(4), y]) * options["weight"]

    def backward(dl, x, y, options):  # (dx, dy): one per array, none for the options dict
        p = softmax(x)
        p[np.arange(4), y] -= 1
        return dl[:, None] * p * options["weight"], None

    assert dc.check_backward(forward, backward, (x, y, {"weight": 2.0})).verdict == "pass"
    wrong = lambda dl, x, y, o: (backward(dl, x, y, o)[0] / o["weight"], None)  # noqa: E731
    assert dc.check_backward(forward, wrong, (x, y, {"weight": 2.0})).verdict == "fail"

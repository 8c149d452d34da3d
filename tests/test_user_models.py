"""A learner's own model from catalog layers: conv -> pool -> sigmoid -> flatten -> dense, with its deltas."""

from __future__ import annotations

import numpy as np
import pytest

import derivcheck as dc
from derivcheck.catalog.compose import Sequential, Step
from derivcheck.catalog.registry import get_layer
from derivcheck.symbolic.presentation import render_derivation

CNN = Sequential(
    "my_cnn",
    steps=(
        Step("conv2d", {"x": "x", "w": "k", "b": "kb"}, "y", hyper={"stride": 1, "pad": 0}),
        Step("maxpool2d", {"x": "y"}, "p", hyper={"kernel": 2, "stride": 2}),
        Step("sigmoid", {"x": "p"}, "s"),
        Step("flatten", {"x": "s"}, "f"),
        Step("dense", {"x": "f", "w": "w", "b": "b"}, "h"),
        Step("half_sse", {"y": "h", "t": "t"}, "E"),
    ),
    inputs={"x": "N C H S", "k": "F C KH KW", "kb": "F", "w": "P M", "b": "M", "t": "N M"},
    fixed=("x", "t"),
)


def _values(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((2, 1, 5, 5)), "k": rng.standard_normal((1, 1, 2, 2)), "kb": rng.standard_normal(1),
            "w": rng.standard_normal((4, 2)), "b": rng.standard_normal(2), "t": rng.standard_normal((2, 2))}


def test_flatten_lets_a_dense_layer_follow_a_pool_and_every_delta_is_right() -> None:
    rng = np.random.default_rng(0)
    values = _values(rng)
    deltas = CNN.deltas(values)
    assert deltas["f"].shape == (2, 4) and deltas["s"].shape == (2, 1, 2, 2)
    np.testing.assert_array_equal(deltas["s"], deltas["f"].reshape(2, 1, 2, 2))  # flatten's backward is a reshape
    # The pool routes each pooled delta to its window's arg-max: exactly 4 nonzero entries per sample.
    assert (np.count_nonzero(deltas["y"].reshape(2, -1), axis=1) == 4).all()
    params = {k: values[k] for k in CNN.params}
    report = dc.check_gradient(lambda p: CNN.loss({**values, **p}), lambda p: CNN.backward({**values, **p}), params)
    assert report.ok, str(report)

    env = CNN.forward_values(values)

    def loss_at_s(s: np.ndarray) -> float:  # the loss as a function of the sigmoid's output alone
        h = s.reshape(2, -1) @ values["w"] + values["b"]
        return float(0.5 * np.sum((h - values["t"]) ** 2))

    assert dc.check_gradient(loss_at_s, lambda s: deltas["s"], env["s"]).ok


def test_a_missing_hyperparameter_names_itself() -> None:
    broken = Sequential("no_stride", steps=(Step("maxpool2d", {"x": "x"}, "p", hyper={"kernel": 2}),
                                            Step("global_avgpool", {"x": "p"}, "E")), inputs={"x": "N C H S"})
    with pytest.raises(dc.InputError, match=r"layer 'maxpool2d' needs the hyperparameter\(s\) stride"):
        broken.forward_values({"x": np.zeros((1, 1, 4, 4))})


def test_render_derivation_takes_a_users_sequential() -> None:
    out = render_derivation(CNN, "latex")
    assert r"G_{f}" in out and r"\frac{\partial E}{\partial W}" in out
    with pytest.raises(dc.InputError, match="a layer or model name, or a Sequential"):
        render_derivation(42)


def test_flatten_is_derived_as_a_reshape_of_the_upstream_gradient() -> None:
    from derivcheck.symbolic.derive import derive

    g = derive("flatten").gradients["x"].index.expr
    assert "G[p, H*S*q + S*r + s]" in str(g)
    assert get_layer("flatten").backward(np.arange(6.0).reshape(1, 6), np.zeros((1, 1, 2, 3)))["x"].shape == (1, 1, 2, 3)


def test_code_format_prints_a_runnable_verified_backward_for_pooling() -> None:
    out = render_derivation("maxpool2d", "code")
    assert "verified in this run against the index form and finite differences" in out
    source = out
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 - the printed code must run as printed
    x = np.array([[[[1.0, 3.0], [2.0, 0.0]]]])
    assert namespace["_max_backward"](np.ones((1, 1, 1, 1)), x, 2, 2)["x"].tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]

"""Plots: a Figure made without pyplot or a backend switch, n-D parameters, kinks drawn as the verdict
judges them, colour in units of the tolerance, and report.plot() from the report alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import derivcheck as dc

pytest.importorskip("matplotlib")


def test_plotting_touches_neither_the_backend_nor_pyplot():
    code = (
        "import sys, numpy as np, matplotlib, derivcheck as dc\n"
        "matplotlib.use('svg')\n"
        "w = np.linspace(-1, 1, 6).reshape(2, 3)\n"
        "fig = dc.check_gradient(lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w).plot()\n"
        "from matplotlib.figure import Figure\n"
        "print(type(fig) is Figure, matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.split() == ["True", "svg", "False"], run.stderr


def test_a_4d_parameter_is_drawn_flattened_and_says_so_with_its_wrong_entry_marked(rng):
    k = rng.standard_normal((2, 3, 2, 2))

    def grad(k):
        g = np.cos(k)
        g[1, 2, 0, 1] *= 2
        return g

    report = dc.check_gradient(lambda k: float(np.sum(np.sin(k))), grad, k)
    heat = report.plot().axes[1]
    assert report.verdict == "fail"
    assert heat.images[0].get_array().shape == (2, 12)
    assert "axes 1-3 (3x2x2) flattened in C order" in heat.get_title()
    assert [tuple(line.get_xydata()[0]) for line in heat.lines] == [(9.0, 1.0)]  # (2, 0, 1) of 3x2x2 is column 9


def test_at_relu_kinks_a_pass_looks_like_a_pass_and_a_wrong_subgradient_does_not(rng):
    x = np.array([[-1.0, 0.0, 2.0], [0.0, 3.0, -0.5]])
    u = rng.standard_normal((2, 3))

    def loss(x):
        return float(np.sum(u * np.maximum(x, 0)))

    report = dc.check_gradient(loss, lambda x: u * (x > 0), x)
    figure = report.plot()
    heat = figure.axes[1]
    scaled = np.asarray(heat.images[0].get_array())
    assert report.verdict == "pass" and np.all(np.abs(scaled) < 1), scaled  # within tolerance at the kinks too
    assert "2 at a kink" in heat.get_title()
    wrong = dc.check_gradient(loss, lambda x: u * ((x > 0) + 2.0 * (x == 0)), x)  # outside every subgradient
    scaled = np.asarray(wrong.plot().axes[1].images[0].get_array())
    assert wrong.verdict == "fail" and np.all(np.abs(scaled[x == 0]) > 1) and np.all(np.abs(scaled[x != 0]) < 1)


def test_rounding_noise_is_pale_and_a_wrong_entry_saturated(rng):
    w = rng.standard_normal((4, 5))
    loss = lambda w: 1e3 + float(np.sum(np.tanh(w) ** 2))  # noqa: E731 - an offset: visible rounding noise

    def grad(w):
        g = 2 * np.tanh(w) * (1 - np.tanh(w) ** 2)
        g[3, 1] += 1e-3
        return g

    report = dc.check_gradient(loss, grad, w)
    image = report.plot().axes[1].images[0]
    scaled = np.asarray(image.get_array())
    others = np.delete(scaled.ravel(), 3 * 5 + 1)
    assert report.verdict == "fail" and abs(scaled[3, 1]) > 1 and np.all(np.abs(others) < 0.5)
    lo, hi = image.get_clim()
    assert (lo, hi) == (-2.0, 2.0)  # colour in tolerances, not in the largest difference


def test_report_plot_needs_nothing_but_the_report_and_json_does_not_carry_the_functions(tmp_path):
    w = np.linspace(-1.0, 1.0, 4)
    report = dc.check_gradient(lambda w: float(np.sum(w ** 3)), lambda w: 3 * w ** 2, w)
    figure = report.plot(path=str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 1000 and len(figure.axes) >= 2
    assert "plot_source" not in dc.report.to_dict(report)

"""Notebooks and the console: a report at the prompt shows its table; a real notebook, executed by a
Jupyter kernel through nbclient, displays reports and verification tables as HTML."""

from __future__ import annotations

import numpy as np
import pytest

import derivcheck as dc


def _wrong_report():
    return dc.check_gradient(lambda w: float(np.sum(w ** 3)), lambda w: 2 * w ** 2, np.ones((2, 3)))


def test_a_report_at_the_console_shows_its_table_not_a_dataclass_dump():
    text = repr(_wrong_report())
    lines = text.splitlines()
    assert lines[0].startswith("derivcheck gradient check: FAIL") and "GradientReport(" not in text
    assert lines[2].split()[:3] == ["param", "shape", "method"] and "params  2x3" in lines[4]
    assert "diagnosis: dparams is 0.666667 times the true gradient" in text
    assert len(lines) < len(str(_wrong_report()).splitlines())  # the first lines; print() shows them all


def test_a_verification_at_the_console_shows_its_table():
    text = repr(dc.verify_layer("dense"))
    assert text.splitlines()[0].split()[:2] == ["layer", "gradient"] and "LayerVerification(" not in text
    assert "3/3 gradients verified" in text


_CELLS = [
    "import numpy as np, derivcheck as dc\n"
    "report = dc.check_gradient(lambda w: float(np.sum(w ** 3)), lambda w: 2 * w ** 2, np.ones((2, 3)))\n"
    "report",
    "dc.verify_layer('dense')",
]


def test_a_real_notebook_displays_reports_and_verifications_as_html():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in _CELLS])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    report, verification = (cell.outputs[-1]["data"] for cell in nb.cells)
    assert "<table" in report["text/html"] and "FAIL" in report["text/html"]
    assert report["text/markdown"].count("|") > 10
    assert report["text/plain"].startswith("derivcheck gradient check: FAIL")
    assert "<table" in verification["text/html"] and "dense" in verification["text/html"]
    assert verification["text/plain"].startswith("layer")

"""A wrong witness planted into verify is reported as a disagreement: the four-way check can fail."""

from __future__ import annotations

import pytest

from derivcheck.symbolic import verify as verify_module
from derivcheck.symbolic.compile import compiled_gradient
from derivcheck.symbolic.verify import verify_layer


@pytest.mark.parametrize(("layer", "arg"), [("dense", "w"), ("sigmoid", "x"), ("softmax", "x")])
def test_a_matrix_form_at_twice_the_index_form_is_a_disagreement(monkeypatch: pytest.MonkeyPatch, layer: str,
                                                                   arg: str) -> None:
    def planted(layer_name: str, arg_name: str, form: str):  # noqa: ANN202 - a compiled gradient
        fn = compiled_gradient(layer_name, arg_name, form)
        if form != "matrix" or (layer_name, arg_name) != (layer, arg) or fn is None:
            return fn
        return lambda inputs, upstream, sizes: 2 * fn(inputs, upstream, sizes)

    monkeypatch.setattr(verify_module, "compiled_gradient", planted)
    v = verify_layer(layer, seed=0)
    row = next(r for r in v.rows if r.arg == arg)
    assert not v.ok and not row.ok and "matrix form" in row.disagreeing
    assert {"index form", "reference backward", "finite differences"} <= set(row.agreeing)
    assert all(r.ok for r in v.rows if r.arg != arg)


def test_without_the_plant_the_same_rows_agree() -> None:
    assert all(verify_layer(name, seed=0).ok for name in ("dense", "sigmoid", "softmax"))

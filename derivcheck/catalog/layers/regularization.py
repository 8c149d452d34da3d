"""Dropout with a fixed mask: the mask is data, so the VJP routes dy through the kept units."""

from __future__ import annotations

from derivcheck.catalog.declarations import Arg, def_layer

dropout = def_layer(
    "dropout",
    inputs=(Arg("x", "N D"), Arg("mask", "N D", domain="binary", differentiable=False)),
    output="N D",
    # Inverted dropout: kept units are scaled by 1/(1 - rate) in training.
    forward=lambda x, mask, rate: x * mask / (1 - rate),
    backward=lambda dy, x, mask, rate: {"x": dy * mask / (1 - rate)},
    index_form=lambda s: s.X[s.out] * s.MASK[s.out] / (1 - s.rate),
    constants={"rate": 0.25},
    question="How does the gradient pass through dropout? (Only through the kept units, scaled.)",
)

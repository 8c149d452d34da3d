"""A two-layer sigmoid MLP with a mean squared error, as a chain of catalog layers."""

from derivcheck.compose import Step, def_model

mlp2 = def_model(
    "mlp2",
    steps=(
        Step("dense", {"x": "x", "w": "w1", "b": "b1"}, "z1"),
        Step("sigmoid", {"x": "z1"}, "a1"),
        Step("dense", {"x": "a1", "w": "w2", "b": "b2"}, "z2"),
        Step("mse", {"y": "z2", "t": "t"}, "E"),
    ),
    inputs={"x": "N D", "w1": "D H", "b1": "H", "w2": "H M", "b2": "M", "t": "N M"},
    fixed=("x", "t"),
    question="Why is my 2-layer sigmoid net's gradient off by a factor of two? Backprop as a chain of deltas.",
)

"""A two-layer sigmoid MLP with a mean squared error, as a chain of catalog layers."""

from derivcheck.catalog.compose import Step, def_model

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

rnn3 = def_model(
    "rnn3",
    steps=(
        Step("rnn_step", {"x": "x1", "h": "h0", "wx": "wx", "wh": "wh", "b": "b"}, "h1"),
        Step("rnn_step", {"x": "x2", "h": "h1", "wx": "wx", "wh": "wh", "b": "b"}, "h2"),
        Step("rnn_step", {"x": "x3", "h": "h2", "wx": "wx", "wh": "wh", "b": "b"}, "h3"),
        Step("half_sse", {"y": "h3", "t": "t"}, "E"),
    ),
    inputs={"x1": "N D", "x2": "N D", "x3": "N D", "h0": "N M", "wx": "D M", "wh": "M M", "b": "M", "t": "N M"},
    fixed=("x1", "x2", "x3", "h0", "t"),
    question="Backprop through time: three RNN steps share Wx, Wh, b, so their gradients add up.",
)

lstm3 = def_model(
    "lstm3",
    steps=(
        Step("lstm_step", {"x": "x1", "h": "h0", "c": "c0", "w": "w", "u": "u", "b": "b"}, "s1"),
        Step("take_first", {"s": "s1"}, "h1"),
        Step("take_second", {"s": "s1"}, "c1"),
        Step("lstm_step", {"x": "x2", "h": "h1", "c": "c1", "w": "w", "u": "u", "b": "b"}, "s2"),
        Step("take_first", {"s": "s2"}, "h2"),
        Step("take_second", {"s": "s2"}, "c2"),
        Step("lstm_step", {"x": "x3", "h": "h2", "c": "c2", "w": "w", "u": "u", "b": "b"}, "s3"),
        Step("take_first", {"s": "s3"}, "h3"),
        Step("half_sse", {"y": "h3", "t": "t"}, "E"),
    ),
    inputs={
        "x1": "N D", "x2": "N D", "x3": "N D", "h0": "N M", "c0": "N M",
        "w": "D Q", "u": "M Q", "b": "Q", "t": "N M",
    },
    fixed=("x1", "x2", "x3", "h0", "c0", "t"),
    sizes={"Q": lambda s: 4 * s["M"]},
    question="Backprop through time in an LSTM: the cell state carries the forget gate's path.",
)

cnn = def_model(
    "cnn",
    steps=(
        Step("conv2d", {"x": "x", "w": "k", "b": "kb"}, "z1", hyper={"stride": 1, "pad": 1}),
        Step("relu", {"x": "z1"}, "a1"),
        Step("maxpool2d", {"x": "a1"}, "p1", hyper={"kernel": 2, "stride": 2}),
        Step("global_avgpool", {"x": "p1"}, "g1"),
        Step("dense", {"x": "g1", "w": "w", "b": "b"}, "z2"),
        Step("softmax_cross_entropy", {"z": "z2", "t": "t"}, "E"),
    ),
    inputs={"x": "N C H S", "k": "F C KH KW", "kb": "F", "w": "F M", "b": "M", "t": "N M"},
    fixed=("x", "t"),
    sizes={"KH": 3, "KW": 3, "H": 4, "S": 4},
    domains={"t": "onehot_rows"},
    question="A small CNN checked end to end: conv -> ReLU -> max-pool -> global average -> dense -> softmax CE.",
)

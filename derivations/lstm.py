"""Backprop through an LSTM step: the forget gate's gradient reaches it through the cell state."""

from derivcheck.render import render_derivation

if __name__ == "__main__":
    print(render_derivation("lstm_step", "latex"))

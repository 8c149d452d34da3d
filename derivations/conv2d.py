"""The conv layer's backward: the input gradient is a correlation with the flipped kernel."""

from __future__ import annotations

from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("What is the backward of a 2-D convolution (cross-correlation with stride and zero padding), and which "
            "kernel orientation does the input gradient use?")


def build(a: Answer) -> None:
    a.say("Forward: each output position is a dot product of the kernel with a window of the (padded) input. "
          "Each input entry x_{n,c,a,b} is read by every window that covers it, so its gradient sums g over those "
          "windows, each weighted by the kernel entry that touched it: a 'full' correlation of g with the kernel "
          "flipped in both spatial axes. The kernel's gradient correlates the input with g; the bias sums g.")
    a.derivation("conv2d")


if __name__ == "__main__":
    main("conv2d", QUESTION, build)

"""Declarations in the matrix language, as plain data (layer files import this and nothing heavier)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Program:
    """Forward steps ``(name, expression)`` in order, a scalar objective, and the inputs differentiated by."""

    steps: tuple[tuple[str, str], ...]
    objective: str
    wrt: tuple[str, ...]
    shapes: Mapping[str, str]


@dataclass(frozen=True)
class LayerChain:
    """A layer written as a program of primitive steps, and how the layer's arrays map onto the program's.

    ``arguments[a]`` names the program inputs that make up the layer's argument ``a``: several
    names are blocks concatenated along the last axis (the four gates of an LSTM weight).
    ``upstream`` names the program inputs that make up ``dy``, stacked along its first axis
    (one name: ``dy`` itself).
    """

    program: Program
    arguments: Mapping[str, tuple[str, ...]]
    upstream: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

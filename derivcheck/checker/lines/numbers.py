"""A fitted factor named as a person would write it: "twice", "1/N", "1/T", never 2.0000000000013."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# A factor is exactly a simple number when it is this close relatively (it was fitted from
# values measured to ~1e-9 relative; a different number is off by far more).
SAME_NUMBER = 1e-6
SMALL_DENOMINATOR = 12  # 1/12 is still a number people write; 7/13 is a coincidence
SIMPLE_DENOMINATOR = 4  # twice, half, a third: said as words before any size they might also be
WORDS = {Fraction(2): "twice", Fraction(1, 2): "half", Fraction(-1): "minus", Fraction(3): "three times",
         Fraction(1, 3): "a third of", Fraction(4): "four times", Fraction(1, 4): "a quarter of"}


@dataclass(frozen=True)
class Named:
    value: float
    phrase: str  # "1/N", "twice"
    operator: str  # "*" or "/"
    operand: str  # source text: "N", "2", "(k * k)", "X.shape[0]"


def close(a: float, b: float) -> bool:
    return abs(a - b) <= SAME_NUMBER * max(abs(a), abs(b))


def sizes_in(namespace: dict) -> list[tuple[str, float]]:
    """Named numbers a factor may be: int and float scalars, their pairwise products, array sizes."""
    scalars = [(n, float(v)) for n, v in namespace.items()
               if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               and not n.startswith("_") and v not in (0, 1)]
    found = list(scalars)
    found += [(f"({a} * {b})", x * y) for i, (a, x) in enumerate(scalars) for b, y in scalars[i:]]
    for name, value in namespace.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            found += [(f"{name}.shape[{axis}]", float(d)) for axis, d in enumerate(value.shape) if d > 1]
    return found


def name_factor(c: float, namespace: dict, preferred: set[str] = frozenset()) -> Named | None:
    """Named scalars first (those the line mentions before others), then small simple numbers,
    then array sizes."""
    if not np.isfinite(c) or c == 0:
        return None
    mentioned = lambda n: all(part in preferred for part in n.strip("()").split(" * "))  # noqa: E731
    sizes = sorted(sizes_in(namespace), key=lambda nv: not mentioned(nv[0]))
    named = [(n, v) for n, v in sizes if ".shape[" not in n]
    shapes = [(n, v) for n, v in sizes if ".shape[" in n]
    return _from_sizes(c, named) or _simple(c, SIMPLE_DENOMINATOR) or _from_sizes(c, shapes) \
        or _simple(c, SMALL_DENOMINATOR)


def _from_sizes(c: float, sizes: list[tuple[str, float]]) -> Named | None:
    sign = "-" if c < 0 else ""
    for name, value in sizes:
        if close(abs(c), 1 / value):
            return Named(c, f"{sign}1/{name}", "/", f"{sign}{name}")
        if close(abs(c), value):
            return Named(c, f"{sign}{name}", "*", f"{sign}{name}")
    return None


def _simple(c: float, largest: int) -> Named | None:
    fraction = Fraction(c).limit_denominator(largest)
    if not close(float(fraction), c) or abs(fraction.numerator) > largest:
        return None
    phrase = WORDS.get(fraction, str(fraction))
    if abs(fraction.numerator) == 1 and fraction.denominator != 1:
        return Named(c, phrase, "/", str(fraction.denominator * fraction.numerator))
    return Named(c, phrase, "*", f"({fraction})" if fraction.denominator != 1 else str(fraction.numerator))

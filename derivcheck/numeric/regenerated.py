"""Directions of a large parameter made chunk by chunk whenever they are read, never kept whole.

A check keeps every direction it tested (localization reads them again). At 10^7 entries each
is 80 MB, and a handful of them is most of a check's memory. A ``Regenerated`` direction keeps
only how to make it: the user's gradient and point for the gradient direction, the generator's
state for a random one (PCG64 jumps to any chunk with ``advance``). Every chunk comes out with
the same bits as the whole array would have, so a test made on the array and a later reading of
the chunks see one and the same direction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from derivcheck.numeric.blocks import CHUNK
from derivcheck.numeric.tolerances import entry_scale

# A parameter of at least this many entries (8 MB in float64) has its kept directions regenerated and its
# perturbed point written into one reused buffer. Below it a check's copies are small against the loss's own
# temporaries, and plain arrays (which a loss may keep) cost nothing to speak of.
LARGE_ENTRIES = 1 << 20


class Regenerated:
    """A direction that writes its entries ``[lo, hi)`` on demand; ``np.asarray`` makes it whole.

    ``make(lo, hi, out)`` writes the entries into ``out``: a chunk is made into memory already in use (a fresh
    half-megabyte array per chunk costs its page faults, more than drawing the numbers).

    Examples
    --------
    >>> v = Regenerated((2, 3), lambda lo, hi, out: np.copyto(out, np.arange(lo, hi)))
    >>> v.reshape(-1)[1:4].tolist(), float(v.reshape(-1)[5]), np.asarray(v).shape
    ([1.0, 2.0, 3.0], 5.0, (2, 3))
    """

    dtype = np.dtype(np.float64)

    def __init__(self, shape: tuple[int, ...], make: Callable[[int, int, np.ndarray], object]) -> None:
        self.shape = tuple(shape)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.ndim = len(self.shape)
        self._make = make

    def chunk(self, lo: int, hi: int, out: np.ndarray | None = None) -> np.ndarray:
        """Entries ``lo`` to ``hi`` of the flattened direction (written into ``out`` when given)."""
        lo, hi = max(lo, 0), min(hi, self.size)
        out = np.empty(max(hi - lo, 0)) if out is None else out[:max(hi - lo, 0)]
        if hi > lo:
            self._make(lo, hi, out)
        return out

    def chunks(self) -> Any:
        """``(lo, entries)`` over the whole direction, CHUNK entries at a time; each ``entries`` is valid until the
        next is made (one buffer serves them all)."""
        buffer = np.empty(min(CHUNK, self.size))
        for lo in range(0, self.size, CHUNK):
            yield lo, self.chunk(lo, lo + CHUNK, buffer)

    def reshape(self, *shape: Any) -> Regenerated | np.ndarray:
        flat = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        if tuple(flat) in ((-1,), (self.size,)):
            return Regenerated((self.size,), self._make)
        return np.asarray(self).reshape(*shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        if self.ndim == 1 and isinstance(key, slice) and key.step in (None, 1):
            lo, hi, _ = key.indices(self.size)
            return self.chunk(lo, hi)
        if self.ndim == 1 and isinstance(key, (int, np.integer)):
            i = int(key) + (self.size if key < 0 else 0)
            return float(self.chunk(i, i + 1)[0])
        return np.asarray(self)[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.empty(self.size)
        for lo in range(0, self.size, CHUNK):
            self.chunk(lo, lo + CHUNK, out[lo:lo + CHUNK])
        out = out.reshape(self.shape)
        return out if dtype is None else out.astype(dtype, copy=False)


def whole(v: Any) -> np.ndarray:
    """A direction as an array: a regenerated one made whole, an array as it is."""
    return np.asarray(v) if isinstance(v, Regenerated) else v


def inner_chunked(g: np.ndarray, v: Regenerated) -> float:
    """``<g, v>`` read chunk by chunk."""
    flat = g.reshape(-1)
    # einsum, not BLAS: a threaded BLAS call per chunk waits for its threads, milliseconds on a busy machine.
    return float(sum(np.einsum("i,i->", flat[lo:lo + part.size], part) for lo, part in v.chunks()))


def min_abs(v: Any) -> float:
    """``min |v|`` (inf for an empty direction), chunk by chunk for a regenerated one."""
    if isinstance(v, Regenerated):
        return min((float(np.min(np.abs(part))) for _, part in v.chunks() if part.size), default=float("inf"))
    return float(np.min(np.abs(v), initial=np.inf))


def _part(scratch: np.ndarray, n: int) -> np.ndarray:
    """``n`` entries of a chunk's scratch buffer (a fresh array for a longer, unchunked read)."""
    return scratch[:n] if n <= scratch.size else np.empty(n)


def _scale_into(out: np.ndarray, x: np.ndarray, scratch: np.ndarray) -> None:
    """``out *= entry_scale(x)`` with the same bits, its temporary written into ``scratch``."""
    np.abs(x, out=scratch)
    np.maximum(scratch, 1.0, out=scratch)
    out *= scratch


def along_gradient(x: np.ndarray, g: np.ndarray, top: float) -> Regenerated:
    """``g / top`` at each entry's scale: the same bits as ``scale_by_entry(g / top, x)``."""
    flat_x, flat_g = x.reshape(-1), g.reshape(-1)
    scratch = np.empty(min(CHUNK, x.size))

    def make(lo: int, hi: int, out: np.ndarray) -> None:
        np.divide(flat_g[lo:hi], top, out=out)
        _scale_into(out, flat_x[lo:hi], _part(scratch, hi - lo))

    return Regenerated(x.shape, make)


def random_signs(x: np.ndarray, rng: np.random.Generator, low: float) -> Regenerated:
    """Signs times magnitudes in ``[low, 1]`` at each entry's scale, from one draw ``u = random()`` per entry: the
    sign is ``u >= 1/2``, the magnitude ``low + (1 - low) frac(2 u)``, uniform and independent of the sign. One
    draw, not one for each: the direction is made again at each reading, and drawing is most of its cost. ``rng``
    moves on past the draws."""
    if not isinstance(rng.bit_generator, np.random.PCG64):
        raise TypeError("a regenerated direction needs a PCG64 generator (it jumps to a chunk with advance)")
    state, size, flat_x = rng.bit_generator.state, x.size, x.reshape(-1)
    rng.bit_generator.advance(size)  # one 64-bit draw per double
    scratch = np.empty(min(CHUNK, size))

    def make(lo: int, hi: int, out: np.ndarray) -> None:
        gen = np.random.Generator(np.random.PCG64())
        gen.bit_generator.state = state
        gen.bit_generator.advance(lo)
        gen.random(out=out)
        out *= 2.0  # exact: 2u in [0, 2), its whole part the sign, its fraction the magnitude
        halves = _part(scratch, hi - lo)
        np.floor(out, out=halves)
        out -= halves
        out *= 1.0 - low
        out += low
        halves -= 0.5  # -1/2 where u < 1/2: copysign makes the entry negative there
        np.copysign(out, halves, out=out)
        _scale_into(out, flat_x[lo:hi], halves)

    return Regenerated(x.shape, make)


def unit_entry(shape: tuple[int, ...], flat: int, scale: float) -> Regenerated:
    """The direction of one entry, at its scale."""

    def make(lo: int, hi: int, out: np.ndarray) -> None:
        out[:] = 0.0
        if lo <= flat < hi:
            out[flat - lo] = scale

    return Regenerated(shape, make)

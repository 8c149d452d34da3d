"""Directions of a large parameter made chunk by chunk whenever they are read, never kept whole.

A check keeps every direction it tested (localization reads them again). At 10^7 entries each
is 80 MB, and a handful of them is most of a check's memory. A ``Regenerated`` direction keeps
only how to make it: the user's gradient and point for the gradient direction, the generator's
state for a random one (PCG64 jumps to any chunk with ``advance``). Every chunk comes out with
the same bits as the whole array would have, so a test made on the array and a later reading of
the chunks see one and the same direction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from derivcheck.numeric.blocks import CHUNK
from derivcheck.numeric.tolerances import largest_magnitude

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

    def __init__(self, shape: tuple[int, ...], make: Callable[[int, int, np.ndarray], object],
                 dense: bool = False, support: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.dense = dense  # no entry is 0 (a random direction's): a mask of its nonzero entries is all ones
        self.support = support  # (flat indices, values) of a direction zero elsewhere (one entry's)
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
            return Regenerated((self.size,), self._make, self.dense, self.support)
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


def concatenated(parts: list[np.ndarray | Regenerated | int]) -> Regenerated:
    """Flat directions one after another, each part made when read (an int stands for that many zeros): several
    blocks' directions as one, with no copy of their size.

    >>> v = concatenated([np.array([1.0, 2.0]), 2, random_signs(np.zeros(3), np.random.default_rng(0), 0.75)])
    >>> np.asarray(v)[:4].tolist(), bool(np.all(np.abs(np.asarray(v)[4:]) >= 0.75))
    ([1.0, 2.0, 0.0, 0.0], True)
    """
    sizes = [p if isinstance(p, int) else p.size for p in parts]
    starts = np.cumsum([0, *sizes])[:-1].tolist()

    def make(lo: int, hi: int, out: np.ndarray) -> None:
        for part, start, size in zip(parts, starts, sizes):
            a, b = max(lo, start), min(hi, start + size)
            if a >= b:
                continue
            piece = out[a - lo:b - lo]
            if isinstance(part, int):
                piece[:] = 0.0
            elif isinstance(part, Regenerated):
                part.chunk(a - start, b - start, piece)
            else:
                piece[:] = part.reshape(-1)[a - start:b - start]

    return Regenerated((sum(sizes),), make)


def whole(v: Any) -> np.ndarray:
    """A direction as an array: a regenerated one made whole, an array as it is."""
    return np.asarray(v) if isinstance(v, Regenerated) else v


def min_abs(v: Any) -> float:
    """``min |v|`` (inf for an empty direction), chunk by chunk for a regenerated one."""
    if isinstance(v, Regenerated):
        return min((float(np.min(np.abs(part))) for _, part in v.chunks() if part.size), default=float("inf"))
    return float(np.min(np.abs(v), initial=np.inf))


# One set of scratch chunks per thread serves every direction's making (a make never runs inside another's): a
# chunk kept per direction is half a megabyte, and a check keeps every direction it tested.
_SCRATCH = threading.local()


def _scratch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's scratch chunks: float64, int16 and int32."""
    if not hasattr(_SCRATCH, "chunks"):
        _SCRATCH.chunks = (np.empty(CHUNK), np.empty(CHUNK, dtype=np.int16), np.empty(CHUNK, dtype=np.int32))
    return _SCRATCH.chunks


def _part(n: int) -> np.ndarray:
    """``n`` entries of the float64 scratch chunk (a fresh array for a longer, unchunked read)."""
    return _scratch()[0][:n] if n <= CHUNK else np.empty(n)


def _scale_into(out: np.ndarray, x: np.ndarray, scratch: np.ndarray) -> None:
    """``out *= entry_scale(x)`` with the same bits, its temporary written into ``scratch``."""
    np.abs(x, out=scratch)
    np.maximum(scratch, 1.0, out=scratch)
    out *= scratch


def along_gradient(x: np.ndarray, g: np.ndarray, top: float) -> Regenerated:
    """``g / top`` at each entry's scale: the same bits as ``scale_by_entry(g / top, x)``."""
    flat_x, flat_g = x.reshape(-1), g.reshape(-1)

    def make(lo: int, hi: int, out: np.ndarray) -> None:
        np.divide(flat_g[lo:hi], top, out=out)
        _scale_into(out, flat_x[lo:hi], _part(hi - lo))

    return Regenerated(x.shape, make)


# A random direction's entries are drawn this many to one 64-bit draw: 16 bits each, the sign and 15 bits of
# magnitude. Drawing is most of a regenerated direction's cost (a 64-bit draw per entry took 17 ms at 10^7), and the
# direction is made again at every evaluation that moves along it.
_PER_DRAW = 4
_MAGNITUDE_LEVELS = 1 << 15


def random_signs(x: np.ndarray, rng: np.random.Generator, low: float) -> Regenerated:
    """Signs times magnitudes in ``[low, 1]`` at each entry's scale, 16 random bits per entry read as a signed
    integer ``s``: the entry is ``(1 - low) s / 2^15`` moved away from 0 by ``low``, so its sign is that of ``s`` and
    its magnitude uniform on 32,768 levels between ``low`` and 1, independent of the sign. ``rng`` moves on past the
    draws.

    Examples
    --------
    >>> v = random_signs(np.zeros(6), np.random.default_rng(0), 0.75)
    >>> bool(np.all((np.abs(np.asarray(v)) >= 0.75) & (np.abs(np.asarray(v)) <= 1)))
    True
    >>> bool(np.array_equal(v.chunk(3, 5), np.asarray(v)[3:5]))
    True
    """
    if not isinstance(rng.bit_generator, np.random.PCG64):
        raise TypeError("a regenerated direction needs a PCG64 generator (it jumps to a chunk with advance)")
    # The entry is (s +- L) (1 - low) / 2^15 with L = low 2^15 / (1 - low), in integers until that one product.
    offset = low * _MAGNITUDE_LEVELS / (1.0 - low)
    if offset != int(offset):
        raise ValueError(f"low must make low 2^15 / (1 - low) a whole number (3/4, 1/2, 0); got {low}")
    state, size, flat_x = rng.bit_generator.state, x.size, x.reshape(-1)
    rng.bit_generator.advance(-(-size // _PER_DRAW))
    # Where no entry exceeds 1 every entry's scale is 1: the scaling is skipped, with the same bits.
    scaled = largest_magnitude(flat_x) > 1.0
    source = np.random.PCG64()
    cursor = [-1]  # the entry the source's next draw starts at (chunks read in order draw on, uninterrupted)

    def make(lo: int, hi: int, out: np.ndarray) -> None:
        first = lo - lo % _PER_DRAW
        if cursor[0] != first:
            source.state = state
            source.advance(first // _PER_DRAW)
        bits = source.random_raw(-(-hi // _PER_DRAW) - first // _PER_DRAW).view(np.int16)[lo - first:hi - first]
        cursor[0] = hi if hi % _PER_DRAW == 0 else -1
        n = hi - lo
        _, signs, ints = _scratch()
        sign, m = (signs[:n], ints[:n]) if n <= CHUNK else (np.empty(n, np.int16), np.empty(n, np.int32))
        np.right_shift(bits, 15, out=sign)  # -1 where s < 0, else 0
        np.multiply(sign, 2 * int(offset), out=m, dtype=np.int32)
        m += bits
        m += int(offset)  # s + L, or s - L where s < 0
        np.multiply(m, (1.0 - low) / _MAGNITUDE_LEVELS, out=out)
        if scaled:
            _scale_into(out, flat_x[lo:hi], _part(n))

    return Regenerated(x.shape, make, dense=low > 0)


def unit_entry(shape: tuple[int, ...], flat: int, scale: float) -> Regenerated:
    """The direction of one entry, at its scale."""

    def make(lo: int, hi: int, out: np.ndarray) -> None:
        out[:] = 0.0
        if lo <= flat < hi:
            out[flat - lo] = scale

    return Regenerated(shape, make, support=(np.array([flat]), np.array([scale])))

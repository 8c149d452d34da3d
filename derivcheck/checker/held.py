"""The user's gradient at x, held through the loss calls only where it is small.

At 10^7 float64 entries the gradient is as large as a loss evaluation's own memory, and a check
that held it through its loss calls peaked at three arrays of that size: the gradient, the
perturbed point and the loss's temporaries. A large gradient is let go of before every call of
the user's functions and fetched again, by one more gradient call at x, when it is next read.
What lines read of it (their slopes and roundings) is read before their loss calls, several
lines at a time, so that one fetch serves them all; single entries, once read, and each block's
largest magnitude, root mean square and zero columns, read with the first call, are kept.
Fetching again is sound because the state check is made just before the first fetch (its own
call at x, held when it repeats the first, is that fetch); a gradient that does not repeat is
held from then on, and so is one that a bisection reads between every pair of loss calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from derivcheck.checker.diagnosis.degenerate import zero_columns
from derivcheck.numeric.blocks import Blocks
from derivcheck.numeric.directional import root_mean_square
from derivcheck.numeric.regenerated import LARGE_ENTRIES
from derivcheck.numeric.tolerances import largest_magnitude


class HeldGradient(Mapping[str, np.ndarray]):
    """The gradient blocks at x; a ``lean`` one is let go of by ``release`` and fetched again when read. What is
    read of single entries, and each block's largest magnitude, root mean square and zero columns, are kept across
    fetches.

    Examples
    --------
    >>> calls = []
    >>> g = HeldGradient({"w": np.arange(4.0)}, lambda: calls.append(1) or {"w": np.arange(4.0)}, lean=True)
    >>> g.release(); float(g["w"].sum()), len(calls), g.fetches
    (6.0, 1, 1)
    >>> _ = g.entries("w", np.array([3])); g.release(); g.entries("w", np.array([3])).tolist(), g.top("w"), g.fetches
    ([3.0], 3.0, 1)
    """

    def __init__(self, blocks: Blocks, fetch: Callable[[], Blocks], lean: bool) -> None:
        self._blocks: Blocks | None = blocks
        self._fetch = fetch
        self._names = tuple(blocks)
        self.lean = lean
        self.fetches = 0
        # Run once, before the first fetch: the state check, which may hold the gradient its own call returned.
        self.before_first_fetch: Callable[[], None] | None = None
        self._entries: dict[str, dict[int, float]] = {k: {} for k in blocks}
        # Read now, while the first call's gradient is at hand: a lean one's are asked for after loss calls.
        self._tops = {k: largest_magnitude(v) for k, v in blocks.items()} if lean else {}
        self._rms = {k: root_mean_square(v.reshape(-1)) for k, v in blocks.items()} if lean else {}
        self._zero_columns = {k: zero_columns(v) for k, v in blocks.items()} if lean else {}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.blocks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    @property
    def blocks(self) -> Blocks:
        """The gradient, fetched again if it was let go of."""
        if self._blocks is None:
            self.run_before_first_fetch()
        if self._blocks is None:
            self._blocks = self._fetch()
            self.fetches += 1
        return self._blocks

    def run_before_first_fetch(self) -> None:
        """Run ``before_first_fetch`` now if it has not run (it runs once)."""
        if self.before_first_fetch is not None:
            hook, self.before_first_fetch = self.before_first_fetch, None
            hook()

    def entries(self, name: str, flat: np.ndarray) -> np.ndarray:
        """The entries at the flat indices ``flat`` of block ``name`` (fetched only if one was never read)."""
        if not self.lean:
            return self.blocks[name].reshape(-1)[flat]  # indexed by an array: a copy
        kept = self._entries[name]
        if not all(int(i) in kept for i in flat):
            values = self.blocks[name].reshape(-1)[flat]
            kept.update(zip((int(i) for i in flat), (float(v) for v in values)))
        return np.array([kept[int(i)] for i in flat], dtype=np.float64)

    def top(self, name: str) -> float:
        """``max |g|`` of block ``name``."""
        if name not in self._tops:
            self._tops[name] = largest_magnitude(self.blocks[name])
        return self._tops[name]

    def rms(self, name: str) -> float:
        """The root mean square of block ``name``, as ``_rounding_sums`` charges it."""
        if name not in self._rms:
            self._rms[name] = root_mean_square(self.blocks[name].reshape(-1))
        return self._rms[name]

    def zero_columns(self, name: str) -> np.ndarray:
        """The columns of a 2-D block that are exactly zero (``diagnosis.degenerate.zero_columns``)."""
        if name not in self._zero_columns:
            self._zero_columns[name] = zero_columns(self.blocks[name])
        return self._zero_columns[name]

    def hold(self, blocks: Blocks) -> None:
        """Hold ``blocks``, the gradient at x from another call that repeated the first (no fetch is then needed)."""
        self._blocks = blocks

    def release(self) -> None:
        """Let go of a lean gradient (called before each call of the user's functions)."""
        if self.lean:
            self._blocks = None


def lets_go(x: Blocks, native: Blocks, inplace: bool) -> bool:
    """Whether a check lets go of the gradient between its reads: some float64 parameter of LARGE_ENTRIES or more,
    evaluated at its own point (its perturbed point is written into one reused buffer, and the gradient would be
    the one other array of its size held at every loss call)."""
    return not inplace and any(v.dtype == np.float64 and v.size >= LARGE_ENTRIES and x[k] is native[k]
                               for k, v in x.items())

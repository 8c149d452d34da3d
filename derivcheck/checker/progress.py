"""Progress lines for long checks, on stderr only (stdout stays the report or the JSON).

A check that has run longer than ``after`` seconds says, at most every ``every`` seconds,
how many times it has called the user's functions and what it is doing. ``enabled=None``
means "only when stderr is a terminal", so logs, pipes and pytest's capture stay clean.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> p = Progress(True, stream=out, after=0.0, every=0.0)
>>> p.stage = "directions"
>>> p.tick(12, 1)
>>> p.finish()
>>> "12 loss + 1 gradient evaluations" in out.getvalue()
True
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


# A check quicker than this prints nothing; after it, a line at most this often.
AFTER_SECONDS = 2.0
EVERY_SECONDS = 1.0


class Progress:
    """Throttled progress lines: silent for the first ``after`` seconds, then one per ``every`` seconds."""

    def __init__(self, enabled: bool | None, stream: TextIO | None = None, after: float | None = None,
                 every: float | None = None, label: str = "derivcheck") -> None:
        self.stream = sys.stderr if stream is None else stream
        self.terminal = _isatty(self.stream)
        self.enabled = self.terminal if enabled is None else bool(enabled)
        self.after = AFTER_SECONDS if after is None else after
        self.every = EVERY_SECONDS if every is None else every
        self.label = label
        self.stage = ""
        self.start = time.perf_counter()
        self._last = -float("inf")
        self._shown = False

    def tick(self, loss_calls: int, grad_calls: int) -> None:
        """Called on every evaluation; prints only when it is time to."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.start < self.after or now - self._last < self.every:
            return
        self._last = now
        line = (f"{self.label}: {loss_calls} loss + {grad_calls} gradient evaluations, "
                f"{now - self.start:.1f} s" + (f" ({self.stage})" if self.stage else ""))
        # On a terminal the line is rewritten in place; elsewhere each is its own line.
        self.stream.write(("\r\033[K" + line) if self.terminal else line + "\n")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        """End a rewritten line so that the report starts on a fresh one."""
        if self._shown and self.terminal:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

"""How far an attractor computation may refine: points, time, and the measured growth.

The engines refine level by level (a finer resolution per level, GAIO-style). Before each new
level they ask :meth:`Budget.allows`: the next level's size and time are predicted from the
*measured* growth between the last two levels. With ``tol=None`` the engine then stops refining
and finishes at the finest level that fits; with an explicit ``tol`` that cannot be reached the
call raises :class:`~conservative.errors.SetTooLargeError` at once, with a suggested tolerance
that the levels already computed show to fit.
"""

from __future__ import annotations

import math
import time

from .._deadline import Deadline, NoProgress
from ..errors import SetTooLargeError, fail_message

__all__ = ["Budget", "AUTO_SECONDS"]

#: Seconds of refinement that ``tol=None`` allows itself when there is no time limit.
AUTO_SECONDS = 0.6


class Budget:
    """Limits of one attractor computation (immutable inputs, a record of measured levels)."""

    def __init__(self, *, max_points: int, deadline: Deadline, call: str, bar=None,
                 auto_seconds: float = AUTO_SECONDS):
        self.max_points = max_points
        self.deadline = deadline
        self.call = call
        self.bar = bar
        self.start = time.monotonic()
        self.auto_end = self.start + auto_seconds
        self.last_tick = self.start
        self.durations: list[float] = []

    def expired(self) -> bool:
        return self.deadline.expired()

    def tick(self, count: int) -> None:
        """One level or iteration done, holding ``count`` elements."""
        now = time.monotonic()
        self.durations.append(now - self.last_tick)
        self.last_tick = now
        if self.bar is not None:
            self.bar.update()
            if not isinstance(self.bar, NoProgress):     # no forced refresh: keep the delay
                self.bar.set_postfix_str(f"{count} elements", refresh=False)

    def predicted(self, count: int, counts: list) -> tuple[float, float]:
        """(size, seconds) predicted for the next, finer level."""
        growth = 2.0
        if len(counts) >= 2 and counts[-2] > 0:
            growth = max(1.0, counts[-1] / counts[-2])
        last = self.durations[-1] if self.durations else 0.0
        return count * growth, last * growth

    def allows(self, count: int, counts: list, what: str, tol, *, achieved: float,
               suggestion: float | None = None) -> bool:
        """May a finer level start? False (tol=None) or SetTooLargeError (explicit tol)."""
        size, seconds = self.predicted(count, counts)
        now = time.monotonic()
        limit_time = self.deadline.at if tol is not None else min(self.deadline.at,
                                                                  self.auto_end)
        fits_time = now + seconds <= limit_time or not math.isfinite(seconds)
        fits_size = size <= self.max_points
        if fits_size and (fits_time or tol is not None):
            return True           # an explicit tol that runs out of time returns a partial set
        if tol is None:
            return False
        raise SetTooLargeError(fail_message(
            self.call, f"tol={tol:.3g}, whose next level needs about {size:.3g} {what} (limit "
            f"max_points={self.max_points}; measured {count} at the last level that fits)",
            f"pass tol >= {suggestion if suggestion is not None else achieved:.3g} (a level "
            "measured to fit), tol=None for the finest that fits, or a larger max_points"),
            suggested_tol=suggestion if suggestion is not None else achieved)

"""Time limits that long calls keep, and the progress bar they show while they run.

A long call (``cv.jsr``, ``cv.certify_contraction``, ...) creates one :class:`Deadline` from
its ``time_limit`` and hands it to every phase. The rule every phase follows: *no new solver
call, exact check or search level starts once the deadline has passed*; a call already running
may finish (a single SDP solve cannot be interrupted). Phases that would take most of what is
left ask for a share of it (:meth:`Deadline.part`), so later phases still get their turn.

When a call stops early it says so: an uncertified result whose reason starts with
"time limit", or a bracket labelled partial.

The pattern of a long public call (its ``progress`` argument is None, True or False)::

    dl = Deadline.from_time_limit(time_limit, call=call)        # validates, starts the clock
    with progress_bar(total=attempts, desc=call,
                      enabled=check_progress(progress, call=call)) as bar:
        for attempt in range(attempts):
            if dl.expired():
                return refusal(f"time limit: {dl.describe()} reached after "
                               f"{dl.elapsed():.1f} s (attempt {attempt} of {attempts})")
            cert = certify_contraction(..., time_limit=dl.time_limit())   # nested call
            bar.update()

Internal functions that take ``deadline: float`` (``time.monotonic()`` seconds) get ``dl.at``,
or ``dl.part(0.3).at`` for a phase that should leave room for the next ones.

Examples
--------
>>> dl = Deadline(5.0)
>>> dl.expired(), 0 < dl.remaining() <= 5.0
(False, True)
>>> half = dl.part(0.5)                 # a phase that may use half of what is left
>>> half.at <= dl.at
True
>>> Deadline(None).remaining()          # no limit
inf
>>> with progress_bar(total=3, desc="demo", enabled=False) as bar:
...     for _ in range(3):
...         bar.update()
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from .errors import InputError, fail_message

__all__ = ["Deadline", "NoProgress", "progress_bar", "check_progress"]


class Deadline:
    """A point in time (``time.monotonic`` clock) by which a call must stop starting work.

    Parameters
    ----------
    seconds : float or None
        The budget from now; None or ``math.inf`` for no limit.

    Attributes
    ----------
    seconds : float
        The budget it was created with.
    at : float
        The deadline on the ``time.monotonic()`` clock (what internal functions that take a
        ``deadline: float`` expect).
    """

    def __init__(self, seconds: float | None):
        self.seconds = math.inf if seconds is None else float(seconds)
        self.start = time.monotonic()
        self.at = self.start + self.seconds

    @classmethod
    def from_time_limit(cls, time_limit: Any, *, call: str) -> "Deadline":
        """Validate a user's ``time_limit`` (positive seconds, ``None`` or inf for none).

        Examples
        --------
        >>> Deadline.from_time_limit(-1, call="cv.jsr")
        Traceback (most recent call last):
        ...
        conservative.errors.InputError: cv.jsr: received time_limit=-1;
        pass a positive number of seconds, or None for no limit.
        """
        if time_limit is None:
            return cls(None)
        real = isinstance(time_limit, (int, float, np.integer, np.floating))
        if real and not isinstance(time_limit, bool) and time_limit > 2 ** 1000:
            return cls(None)                    # a huge int: no limit (float() would overflow)
        if isinstance(time_limit, bool) or not real or not float(time_limit) > 0:
            raise InputError(fail_message(call, f"time_limit={time_limit!r}",
                                          "pass a positive number of seconds, or None for no "
                                          "limit"))
        return cls(float(time_limit))

    def expired(self) -> bool:
        """True once the deadline has passed: start no new solver call or check."""
        return time.monotonic() >= self.at

    def remaining(self) -> float:
        """Seconds left (0 once expired, inf without a limit)."""
        return max(self.at - time.monotonic(), 0.0)

    def elapsed(self) -> float:
        """Seconds since the deadline was created."""
        return time.monotonic() - self.start

    def part(self, fraction: float) -> "Deadline":
        """A deadline for one phase: at most ``fraction`` of the time left, never later.

        It keeps the parent's budget and start, so :meth:`describe` and :meth:`elapsed` still
        speak of the whole call.
        """
        now = time.monotonic()
        child = Deadline(None)
        child.seconds, child.start = self.seconds, self.start
        left = self.at - now
        child.at = self.at if not math.isfinite(left) else \
            min(self.at, now + fraction * max(left, 0.0))
        return child

    def time_limit(self) -> float | None:
        """The ``time_limit`` to pass to a nested public call: the seconds left (at least a
        millisecond, since public calls refuse 0), or None when there is no limit."""
        if not math.isfinite(self.at):
            return None
        return max(self.at - time.monotonic(), 1e-3)

    def fits(self, estimate: float) -> bool:
        """Whether work expected to take ``estimate`` seconds may start now.

        Not expired, and the estimate (e.g. the duration of the previous solver call of the
        same kind) ends before the deadline.
        """
        left = self.at - time.monotonic()
        return left > 0 and estimate <= left

    def describe(self) -> str:
        """``"time limit of 20 s"`` (for reasons and labels)."""
        return f"time limit of {self.seconds:g} s"


def check_progress(value: Any, *, call: str) -> bool | None:
    """``progress`` must be None (automatic), True or False."""
    if value is None or isinstance(value, bool):
        return value
    raise InputError(fail_message(call, f"progress={value!r}",
                                  "pass None (a bar when the call runs long and a terminal or "
                                  "notebook is attached), True or False"))


class NoProgress:
    """What :func:`progress_bar` yields when no bar is shown: the same methods, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass


def _attached() -> bool:
    """A terminal on stderr, or a running Jupyter kernel (where tqdm.auto draws a widget)."""
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        try:
            shell = ipython.get_ipython()
        except Exception:  # noqa: BLE001 -- an odd IPython: treat as not attached
            shell = None
        if getattr(shell, "kernel", None) is not None:
            return True
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress_bar(total: int | None = None, desc: str = "", enabled: bool | None = None, *,
             delay: float = 2.0) -> Iterator[Any]:
    """A progress bar for a long call, or a silent stand-in with the same methods.

    Parameters
    ----------
    total : int, optional
        Number of steps (phases, boxes, ...), if known.
    desc : str
        Label, e.g. ``"cv.jsr"``.
    enabled : bool or None
        None (automatic): a bar only when tqdm is installed and a terminal or notebook is
        attached, and only once the call has run for ``delay`` seconds (short calls stay
        silent). True: a bar at once (if tqdm is installed). False: never.
    delay : float
        Seconds before an automatic bar appears.

    Yields
    ------
    object with ``update(n=1)``, ``set_postfix_str(text)`` and ``set_description(text)``.
    """
    if enabled is False or (enabled is None and not _attached()):
        yield NoProgress()
        return
    try:
        import warnings
        with warnings.catch_warnings():     # a notebook without ipywidgets: the text bar
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm
    except ImportError:                     # tqdm is a dependency, but stay import-safe
        yield NoProgress()
        return
    bar = tqdm(total=total, desc=desc, delay=0.0 if enabled else delay, leave=False,
               file=sys.stderr)
    try:
        yield _Deferred(bar)
    finally:
        bar.close()


class _Deferred:
    """A tqdm bar whose postfix waits for the next update (tqdm's own ``set_postfix_str``
    redraws at once, which would show an automatic bar before its delay has passed)."""

    def __init__(self, bar):
        self._bar = bar

    def update(self, n: int = 1):
        return self._bar.update(n)

    def set_postfix_str(self, text: str = "", refresh: bool = False):
        return self._bar.set_postfix_str(text, refresh=refresh)

    def set_description(self, text: str = "", refresh: bool = False):
        return self._bar.set_description(text, refresh=refresh)

    def __getattr__(self, name):
        return getattr(self._bar, name)

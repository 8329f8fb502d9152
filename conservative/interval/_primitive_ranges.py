"""Interval ranges of the nonsmooth primitives ``relu``, ``clip`` and ``soft_threshold``.

They are kept together here so that each can move into its primitive's block (value, pieces,
partials and interval rule side by side) without touching the rest of the interval layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arith import check_domain, maximum, minimum
from ._core import Interval, as_interval_pair
from ._rounding import add_rd, add_ru, quiet

__all__ = ["relu", "clip", "soft_threshold"]


def relu(x: Any) -> Interval:
    """``max(x, 0)`` (exact).

    Examples
    --------
    >>> relu(Interval(-1.0, 2.0))
    Interval(lo=0.0, hi=2.0)
    """
    return maximum(x, 0.0)


def clip(z: Any, lo: Any, hi: Any) -> Interval:
    """``min(max(z, lo), hi)`` (exact; monotone in all three arguments, as ``np.clip``).

    Examples
    --------
    >>> clip(Interval(-2.0, 0.5), -1.0, 1.0)
    Interval(lo=-1.0, hi=0.5)
    """
    return minimum(maximum(z, lo), hi)


@quiet
def soft_threshold(z: Any, t: Any) -> Interval:
    """``sign(z) max(|z| - t, 0)`` for thresholds ``t >= 0``.

    Nondecreasing in ``z``; for fixed ``z`` its magnitude is nonincreasing in ``t``, so the
    range over a box is ``[S(z.lo, t.hi if z.lo >= 0 else t.lo), S(z.hi, t.lo if z.hi >= 0
    else t.hi)]``, computed as ``max(z - t, 0) + min(z + t, 0)`` with directed rounding.

    Raises
    ------
    InputError
        If ``t`` is certainly negative somewhere.
    UndecidedError
        If ``t`` may be negative (the map is discontinuous for negative thresholds).

    Examples
    --------
    >>> soft_threshold(Interval([-3.0, -0.5, 2.0], [-2.0, 0.5, 4.0]), 1.0)
    Interval(lo=[-2.0, 0.0, 1.0], hi=[-1.0, 0.0, 3.0])
    """
    call = "interval.soft_threshold"
    z, t = as_interval_pair(z, t, call)
    check_domain(t, 0.0, call, closed=True)
    lo = np.maximum(add_rd(z._lo, -t._hi), 0.0) + np.minimum(add_rd(z._lo, t._lo), 0.0)
    hi = np.maximum(add_ru(z._hi, -t._lo), 0.0) + np.minimum(add_ru(z._hi, t._hi), 0.0)
    return Interval._new(lo, hi)
